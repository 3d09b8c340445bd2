"""``slnl prepare <dataset> --raw DIR --out DIR``: raw downloads → a prepared store (layout in ``slnl.data.store``).

Bulk preparation, the same for every source format:

1. *Plan* (per dataset, in its module's terms): the files to parse, each with a label and its split membership, and
   the files left out before parsing (not part of the dataset, in ``--missing-list``, ``has_skeleton`` false, ...).
2. *Parse* in fixed chunks of files on every core (``multiprocessing``, one numpy/torch thread per worker, a tqdm
   bar). A chunk's result — the trimmed clips of its good files and the reasons for its bad ones — is written
   atomically to ``<out>/.prepare_cache/`` under a key that hashes the options and the chunk's files (names, sizes,
   mtimes). An interrupted run, re-run with the same arguments, skips every finished chunk.
3. *Finalise*: ``x.npy`` is created with ``np.lib.format.open_memmap`` and filled one chunk at a time, so memory stays
   at one chunk whatever the dataset size; ``T_max`` is the longest kept clip. ``labels.npy``, ``num_frames.npy``,
   ``splits.npz``, ``rejects.tsv`` follow, and ``meta.json`` (with ``"complete": true``, versions, options, date)
   is written last, atomically. Then the chunk cache is deleted (``keep_cache=True`` keeps it).

Every file that is not kept appears in ``rejects.tsv`` (columns: name, file, status, reason, where, expected,
found): ``status`` is ``rejected`` (the file is malformed: the parser's ``DataFormatError`` fields), ``skipped`` (left
out by rule before or after parsing) or ``missing-listed`` (named by ``--missing-list``). The printed summary counts
kept / rejected / skipped / missing-listed per split and subset.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import importlib
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import DataFormatError

CACHE_DIR = ".prepare_cache"
REJECT_COLUMNS = ["name", "file", "status", "reason", "where", "expected", "found"]
DATASETS = ("ntu60", "ntu120", "kinetics", "msr3d", "npz", "synthetic")
DATASET_OPTIONS = {
    "ntu60": ("missing_list", "max_frames"), "ntu120": ("missing_list", "max_frames"),
    "kinetics": ("label_names", "max_frames"), "msr3d": ("used_list",), "npz": (),
    "synthetic": ("num_classes", "per_class", "seed", "min_len", "max_len"),
}


# ---------------------------------------------------------------------------------------------------------- plan
@dataclass
class Item:
    """One file to parse. ``member``: ``{split: is_train}``. ``listed_missing``: named by ``--missing-list``."""

    name: str
    path: str
    label: int
    member: dict[str, bool]
    listed_missing: bool = False
    kwargs: dict[str, Any] | None = None  # per-file loader arguments (e.g. the label the clip must declare)


@dataclass
class Reject:
    name: str
    file: str
    status: str  # rejected | skipped | missing-listed
    reason: str
    member: dict[str, bool] | None = None
    where: Any = None
    expected: str = ""
    found: str = ""

    def row(self) -> list[str]:
        return [self.name, self.file, self.status, self.reason, "" if self.where is None else str(self.where),
                self.expected, self.found]


@dataclass
class Plan:
    """What a dataset module hands to the bulk pipeline."""

    dataset: str
    items: list[Item]
    skipped: list[Reject]
    loader: tuple[str, str, dict]  # (module, function, kwargs): function(path, **kwargs) -> (x (C,T,V,M), info)
    shape: tuple[int, int, int]  # (C, V, M)
    class_names: list[str]
    splits: tuple[str, ...]
    max_frames: int | None
    options: dict[str, Any]
    extra_meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # printed in the summary (e.g. missing-list disagreements)


# ---------------------------------------------------------------------------------------------------------- workers
def _init_worker() -> None:
    # One thread per process: N workers on N cores; more threads per worker only contend. (Workers parse text with
    # numpy and never enter torch or OpenMP, so a forked worker cannot hit a lock its parent's threads held.)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def worker_pool(workers: int):
    """A process pool for parsing. ``fork`` where available: unlike ``spawn``/``forkserver`` it does not re-import the
    caller's ``__main__``, so a plain script calling ``prepare_dataset`` or ``ensure_default()`` without an
    ``if __name__ == "__main__"`` guard works (under spawn it would re-run itself in every worker)."""
    import multiprocessing as mp

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(workers, initializer=_init_worker)


def _chunk_key(plan: Plan, chunk: Sequence[Item]) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([plan.dataset, plan.loader, plan.max_frames], sort_keys=True, default=str).encode())
    for it in chunk:
        st = os.stat(it.path) if os.path.exists(it.path) else None
        h.update(f"{it.name}|{it.path}|{it.label}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}|"
                 f"{int(it.listed_missing)}|{json.dumps(it.kwargs, sort_keys=True)}\n".encode())
    return h.hexdigest()[:16]


def _parse_chunk(args: tuple) -> tuple[int, int]:
    """Worker: parse one chunk of files and write its shard atomically. Returns (chunk id, files)."""
    cid, items, loader, max_frames, shard_path = args
    mod, fn, kwargs = loader
    load_fn: Callable = getattr(importlib.import_module(mod), fn)
    clips, lengths, kept, infos, rejects = [], [], [], [], []
    for k, it in enumerate(items):
        try:
            x, info = load_fn(it.path, **kwargs, **(it.kwargs or {}))
            if x.shape[1] < 1:
                raise DataFormatError(it.path, None, ">= 1 valid frame", "0 valid frames")
            if not np.isfinite(x).all():  # parsers check already; a last guard before anything reaches the store
                raise DataFormatError(it.path, None, "finite values", "NaN or inf after parsing")
        except DataFormatError as e:
            rejects.append({"k": k, "where": e.where, "expected": e.expected, "found": e.found,
                            "reason": str(e)})
            continue
        except OSError as e:
            rejects.append({"k": k, "where": None, "expected": "a readable file", "found": repr(e),
                            "reason": f"{it.path}: {e}"})
            continue
        except Exception as e:  # a parser bug must not cost a 50 000-file run: record it loudly, keep going
            rejects.append({"k": k, "where": None, "expected": "a file the parser handles",
                            "found": f"{type(e).__name__}: {e}",
                            "reason": f"{it.path}: unexpected {type(e).__name__} in the parser (please report): {e}"})
            continue
        if max_frames is not None and x.shape[1] > max_frames:
            info = dict(info, truncated_from=int(x.shape[1]))
            x = x[:, :max_frames]
        clips.append(np.ascontiguousarray(x, dtype=np.float32))
        lengths.append(x.shape[1])
        kept.append(k)
        infos.append(info)
    C = clips[0].shape[0] if clips else 0
    flat = np.concatenate(clips, axis=1) if clips else np.zeros((0, 0), np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=flat, lengths=np.asarray(lengths, np.int64), kept=np.asarray(kept, np.int64),
             info=np.array(json.dumps({"infos": infos, "rejects": rejects, "C": C})))
    from slnl.utils import atomic_write_bytes

    atomic_write_bytes(shard_path, buf.getvalue())
    return cid, len(items)


# ---------------------------------------------------------------------------------------------------------- run
def run_plan(plan: Plan, out: str | os.PathLike, workers: int | None = None, chunk_size: int = 128,
             keep_cache: bool = False, progress: bool = True, force: bool = False,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Parse (parallel, resumable) and finalise ``plan`` into the store ``out``; returns the summary dict."""
    from slnl.utils import atomic_write_json, atomic_write_text, git_commit, software_versions

    from .store import read_meta, split_counts

    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chunks = [plan.items[a : a + chunk_size] for a in range(0, len(plan.items), chunk_size)]
    keys = [_chunk_key(plan, c) for c in chunks]
    fingerprint = hashlib.sha1(json.dumps([plan.dataset, plan.options, keys, [r.row() for r in plan.skipped]],
                                          sort_keys=True, default=str).encode()).hexdigest()[:16]
    old = read_meta(out)
    if old and old.get("complete") and old.get("provenance", {}).get("fingerprint") == fingerprint and not force:
        log(f"{out}: already prepared from the same files and options (fingerprint {fingerprint}); nothing to do")
        return old["summary"]
    if old is not None:  # about to overwrite arrays: first make the directory an unfinished store
        (out / "meta.json").unlink()

    cache = out / CACHE_DIR
    cache.mkdir(exist_ok=True)
    shard = [cache / f"chunk{i:06d}_{k}.npz" for i, k in enumerate(keys)]
    todo = [i for i in range(len(chunks)) if not shard[i].exists()]
    todo_set = set(todo)
    done_files = sum(len(c) for i, c in enumerate(chunks) if i not in todo_set)
    if done_files:
        log(f"resuming: {len(chunks) - len(todo)} of {len(chunks)} chunks already parsed ({done_files} files)")
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    jobs = [(i, chunks[i], plan.loader, plan.max_frames, str(shard[i])) for i in todo]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(plan.items), initial=done_files, unit="file", desc=f"prepare {plan.dataset}",
               disable=not progress, smoothing=0.05)
    t_parse = time.time()
    if workers == 1:
        for j in jobs:
            bar.update(_parse_chunk(j)[1])
    elif jobs:
        with worker_pool(workers) as pool:
            for _, n in pool.imap_unordered(_parse_chunk, jobs):
                bar.update(n)
    bar.close()
    t_parse = time.time() - t_parse

    # ---- finalise: lengths first, then one chunk at a time into the memory map
    lengths_all, names, labels, members, infos = [], [], [], [], []
    rejects: list[Reject] = list(plan.skipped)
    listed_with_body: list[str] = []
    kept_idx_per_chunk = []
    for i, c in enumerate(chunks):
        with np.load(shard[i]) as z:
            meta_c = json.loads(str(z["info"]))
            kept = z["kept"].tolist()
            lens = z["lengths"].tolist()
        keep_mask = []
        for k, L, info in zip(kept, lens, meta_c["infos"]):
            it = c[k]
            if it.listed_missing:  # the list says "no skeleton" but the file has one: leave out, report
                listed_with_body.append(it.name)
                rejects.append(Reject(it.name, it.path, "missing-listed", f"named by --missing-list, but the file "
                                      f"holds a skeleton in {L} frame(s): list and file disagree", it.member))
                keep_mask.append(False)
                continue
            keep_mask.append(True)
            lengths_all.append(L)
            names.append(it.name)
            labels.append(it.label)
            members.append(it.member)
            infos.append(info)
        kept_idx_per_chunk.append(keep_mask)
        for r in meta_c["rejects"]:
            it = c[r["k"]]
            if it.listed_missing:
                rejects.append(Reject(it.name, it.path, "missing-listed", "named by --missing-list (file agrees: "
                                      + r["found"] + ")", it.member, r["where"], r["expected"], r["found"]))
            else:
                reason = r["reason"]
                if plan.options.get("missing_list") and r["expected"].startswith("at least one body"):
                    reason += " [not named by --missing-list: list and file disagree]"
                rejects.append(Reject(it.name, it.path, "rejected", reason, it.member, r["where"], r["expected"],
                                      r["found"]))
    N = len(names)
    if N == 0:
        raise RuntimeError(f"prepare {plan.dataset}: no sample could be kept out of {len(plan.items)} files "
                           f"({len(rejects)} rejected/skipped; first: {rejects[0].row() if rejects else '-'})")
    C, V, M = plan.shape
    T_max = int(max(lengths_all))
    x = np.lib.format.open_memmap(out / "x.npy", mode="w+", dtype=np.float32, shape=(N, C, T_max, V, M))
    row = 0
    for i in range(len(chunks)):
        with np.load(shard[i]) as z:
            flat, lens = z["x"], z["lengths"]
        t = 0
        for L, keep in zip(lens.tolist(), kept_idx_per_chunk[i]):
            if keep:
                x[row, :, :L] = flat[:, t : t + L]
                if L < T_max:
                    x[row, :, L:] = 0.0
                row += 1
            t += L
    x.flush()
    del x
    np.save(out / "labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(out / "num_frames.npy", np.asarray(lengths_all, dtype=np.int64))
    splits = {}
    for s in plan.splits:
        tr = np.array([m[s] for m in members], dtype=bool)
        splits[f"{s}_train"], splits[f"{s}_test"] = tr, ~tr
    np.savez(out / "splits.npz", **splits)
    rejects.sort(key=lambda r: (r.status, r.name))
    tsv = io.StringIO()
    w = csv.writer(tsv, delimiter="\t", lineterminator="\n")
    w.writerow(REJECT_COLUMNS)
    for r in rejects:
        w.writerow(r.row())
    atomic_write_text(out / "rejects.tsv", tsv.getvalue())

    summary = _summary(plan, N, rejects, split_counts(splits), lengths_all, infos, t_parse, time.time() - t0, out,
                       len(plan.items) + len(plan.skipped))
    meta = {
        "format": 1,
        "dataset": plan.dataset,
        "layout": "x: (N, C, T_max, V, M) float32; frames >= num_frames are zero padding",
        "shape": {"N": N, "C": C, "T_max": T_max, "V": V, "M": M},
        "class_names": plan.class_names,
        "num_classes": len(plan.class_names),
        "splits": list(plan.splits),
        "counts": split_counts(splits),
        "names": names,
        **plan.extra_meta,
        "summary": summary,
        "provenance": {
            "fingerprint": fingerprint,
            "software": software_versions(),
            "git_commit": git_commit(),
            "options": plan.options,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host_cpus": os.cpu_count(),
        },
        "complete": True,
    }
    atomic_write_json(out / "meta.json", meta)
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    return summary


def _summary(plan: Plan, N: int, rejects: list[Reject], counts: dict, lengths: list[int], infos: list[dict],
             t_parse: float, t_total: float, out: Path, total_files: int) -> dict[str, Any]:
    per_split: dict[str, dict[str, dict[str, int]]] = {}
    for s in plan.splits:
        d = {sub: {"kept": counts[s][sub], "rejected": 0, "skipped": 0, "missing-listed": 0}
             for sub in ("train", "test")}
        for r in rejects:
            if r.member is not None and s in r.member:
                d["train" if r.member[s] else "test"][r.status] += 1
        per_split[s] = d
    by_status: dict[str, int] = {}
    for r in rejects:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    truncated = sum(1 for i in infos if i.get("truncated_from"))
    return {
        "files": total_files,
        "kept": N,
        "rejected": by_status.get("rejected", 0),
        "skipped": by_status.get("skipped", 0),
        "missing_listed": by_status.get("missing-listed", 0),
        "per_split": per_split,
        "truncated_to_max_frames": truncated,
        "frames": {"min": int(min(lengths)), "mean": float(np.mean(lengths)), "max": int(max(lengths))},
        "notes": plan.notes,
        "rejects_file": str(out / "rejects.tsv"),
        "parse_seconds": round(t_parse, 2),
        "total_seconds": round(t_total, 2),
        "files_per_second": round(len(plan.items) / t_parse, 1) if t_parse > 0 else None,
    }


def format_summary(summary: dict[str, Any], dataset: str, out: str | os.PathLike) -> str:
    """A summary a user can act on: counts per split and subset, where the rejects are, time."""
    s = summary
    lines = [f"prepared {dataset} → {out}",
             f"  files: {s['files']}  kept: {s['kept']}  rejected: {s['rejected']}  skipped: {s['skipped']}  "
             f"missing-listed: {s['missing_listed']}",
             f"  frames per clip: min {s['frames']['min']}, mean {s['frames']['mean']:.1f}, max {s['frames']['max']}"
             + (f"; {s['truncated_to_max_frames']} clip(s) cut to the frame limit" if s["truncated_to_max_frames"]
                else ""),
             f"  {'split':<8}{'subset':<8}{'kept':>8}{'rejected':>10}{'skipped':>9}{'missing-listed':>16}"]
    for split, d in s["per_split"].items():
        for sub in ("train", "test"):
            c = d[sub]
            lines.append(f"  {split:<8}{sub:<8}{c['kept']:>8}{c['rejected']:>10}{c['skipped']:>9}"
                         f"{c['missing-listed']:>16}")
    for n in s.get("notes", []):
        lines.append(f"  note: {n}")
    if s["rejected"] or s["skipped"] or s["missing_listed"]:
        lines.append(f"  every left-out file, with its reason: {s['rejects_file']}")
    fps = f" ({s['files_per_second']} files/s)" if s.get("files_per_second") else ""
    lines.append(f"  time: parse {s['parse_seconds']} s{fps}, total {s['total_seconds']} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- API
def prepare_dataset(name: str, raw: str | os.PathLike | None, out: str | os.PathLike, **options) -> dict[str, Any]:
    """Prepare dataset ``name`` (ntu60 | ntu120 | kinetics | msr3d | npz | synthetic) from ``raw`` into store ``out``.

    Common options: ``workers`` (default: all cores), ``chunk_size`` (files per resumable chunk, 128),
    ``keep_cache``, ``progress`` (tqdm bar), ``force`` (redo even if ``out`` is up to date), ``quiet``.
    Dataset options: ``missing_list`` (NTU), ``max_frames`` (NTU/Kinetics, 300), ``label_names`` (Kinetics),
    ``used_list`` (MSR), ``num_classes``/``per_class``/``seed`` (synthetic; see ``slnl.data.synthetic``).
    Returns the summary (also stored in ``meta.json["summary"]``).
    """
    run_opts = {k: options.pop(k) for k in ("workers", "chunk_size", "keep_cache", "progress", "force")
                if k in options}
    quiet = options.pop("quiet", False)
    allowed = DATASET_OPTIONS.get(name)
    if allowed is None:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    wrong = sorted(set(options) - set(allowed))
    if wrong:
        raise ValueError(f"option(s) {', '.join(wrong)} do not apply to {name}; it takes "
                         f"{', '.join(allowed) or 'no dataset options'} (and workers, chunk_size, keep_cache, "
                         "progress, force, quiet)")
    log = (lambda *_: None) if quiet else print
    if name == "npz":
        from .npz import convert

        if raw is None:
            raise ValueError("prepare npz needs raw=<file.npz>")
        return convert(raw, out, log=log, **options)
    if name == "synthetic":
        from .synthetic import prepare as prepare_synthetic

        return prepare_synthetic(out, raw=raw, log=log, run_opts=run_opts, **options)
    if raw is None:
        raise ValueError(f"prepare {name} needs raw=<directory of the downloaded files>")
    if name in ("ntu60", "ntu120"):
        from .ntu import plan as make_plan
    elif name == "kinetics":
        from .kinetics import plan as make_plan
    elif name == "msr3d":
        from .msr3d import plan as make_plan
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    p = make_plan(name, raw, **options) if name in ("ntu60", "ntu120") else make_plan(raw, **options)
    summary = run_plan(p, out, log=log, **run_opts)
    log(format_summary(summary, name, out))
    return summary


# ---------------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="slnl prepare", description="Turn a raw download into a prepared store (layout: slnl/data/store.py).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  slnl prepare ntu60 --raw nturgb+d_skeletons --out data/ntu60 "
               "--missing-list NTU_RGBD_samples_with_missing_skeletons.txt\n"
               "  slnl prepare kinetics --raw kinetics-skeleton --out data/kinetics\n"
               "  slnl prepare msr3d --raw MSRAction3DSkeletonReal3D --out data/msr3d\n"
               "  slnl prepare npz --check my_data.npz\n"
               "  slnl prepare npz --raw my_data.npz --out data/mine\n"
               "  slnl prepare synthetic --out results/data/synthetic")
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--raw", help="the raw download (a directory; a .npz file for `npz`)")
    ap.add_argument("--out", help="the store directory to write")
    ap.add_argument("--check", metavar="FILE", help="npz only: validate FILE and explain every problem")
    ap.add_argument("--missing-list", help="NTU: file of sample names with missing skeletons to leave out")
    ap.add_argument("--label-names", help="Kinetics: label_name.txt (line k+1 = class k); default: RAW/label_name.txt")
    ap.add_argument("--used-list", help="MSR Action3D: list of sequences to use; default: "
                                        "RAW/files_used_in_cvpr12_paper.txt")
    ap.add_argument("--max-frames", type=int, help="frames kept per clip (NTU/Kinetics default 300)")
    ap.add_argument("--workers", type=int, help="parallel parser processes (default: all cores)")
    ap.add_argument("--chunk-size", type=int, default=128, help="files per resumable chunk (default 128)")
    ap.add_argument("--keep-cache", action="store_true", help="keep the parsed-chunk cache after finishing")
    ap.add_argument("--force", action="store_true", help="re-prepare even if the store is up to date")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--num-classes", type=int, help="synthetic: number of classes (default 12)")
    ap.add_argument("--per-class", type=int, help="synthetic: clips per class (default 100)")
    ap.add_argument("--seed", type=int, help="synthetic: generator seed (default 0)")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "prepare":
        argv = argv[1:]
    a = _parser().parse_args(argv)
    if a.check:
        if a.dataset != "npz":
            print("slnl prepare: --check is for `npz` files only", file=sys.stderr)
            return 2
        from .npz import check

        problems = check(a.check)
        if problems:
            print(f"{a.check}: {len(problems)} problem(s):")
            for p in problems:
                print(f"  - {p}")
            return 1
        print(f"{a.check}: OK — a valid slnl .npz; convert it with `slnl prepare npz --raw {a.check} --out DIR`")
        return 0
    if a.out is None:
        print("slnl prepare: --out DIR is required", file=sys.stderr)
        return 2
    if a.raw is None and a.dataset != "synthetic":
        print(f"slnl prepare {a.dataset}: --raw is required", file=sys.stderr)
        return 2
    opts: dict[str, Any] = {"chunk_size": a.chunk_size, "keep_cache": a.keep_cache, "force": a.force,
                            "progress": not a.no_progress}
    if a.workers:
        opts["workers"] = a.workers
    for k in ("missing_list", "label_names", "used_list", "max_frames", "num_classes", "per_class", "seed"):
        v = getattr(a, k)
        if v is not None:
            opts[k] = v
    try:
        prepare_dataset(a.dataset, a.raw, a.out, **opts)
    except (DataFormatError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"slnl prepare {a.dataset}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
