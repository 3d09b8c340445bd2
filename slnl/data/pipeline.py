"""Bulk preparation, the same for every source format: plan → parse → check → write → install.

A format module (``ntu``, ``kinetics``, ``msr3d``, ``ctrgcn``, ``pyskl``, ``npz``) knows its files; this module knows
none of them. The format hands over a ``Plan``; ``run_plan`` does the rest:

1. *Plan* (the format's job): the records to read — usually one file each, ``Item(name, path, label, member)`` —
   with their split membership, the records left out before reading (``Reject``: not part of the dataset, named by
   ``--missing-list``, ``has_skeleton`` false, ...), the loader ``loader(path, **item.kwargs) -> (x (C, T, V, M),
   info)`` and the format's plausibility ``Bounds``.
2. *Parse* in fixed chunks of items on every core (``multiprocessing``, one numpy thread per worker, a tqdm bar; in
   the calling process for formats whose records live in one file already in memory, ``Plan.in_process``). Every
   clip passes ``check_clip`` — shape, at least one frame, finite, within the format's bounds, not all zero —
   whatever its format. A chunk's result (the clips of its good records and the reasons for its bad ones) is
   written atomically to ``<out>/.prepare/cache/`` under a key hashing the options and the chunk's records (names,
   sizes, mtimes). An interrupted run, re-run with the same arguments, skips every finished chunk.
3. *Write* the store into ``<out>/.prepare/store/``: ``x.npy`` through ``np.lib.format.open_memmap``, filled one chunk
   at a time (memory stays at one chunk whatever the dataset size; ``T_max`` is the longest kept clip), then
   ``labels.npy``, ``num_frames.npy``, ``splits.npz``, ``rejects.tsv`` and ``meta.json`` with the content
   fingerprint (``slnl.data.store.compute_fingerprint``) and the date.
4. *Install* it into ``<out>`` (``slnl.data.store.install``: old meta.json out first, new one in last) and delete
   ``.prepare/`` (``keep_cache=True`` keeps the chunk cache). ``<out>`` holding a complete store is refused unless
   ``force`` (``slnl.data.store.check_target``); the old store stays readable until the new one is complete.

Every record that is not kept appears in ``rejects.tsv`` (columns: name, file, status, reason, where, expected,
found): ``status`` is ``rejected`` (malformed: the ``DataFormatError`` fields), ``skipped`` (left out by rule before or
after parsing) or ``missing-listed`` (named by ``--missing-list``). When nothing can be kept, no store is written and
the error names ``.prepare/rejects.tsv``; when more than a tenth of the parsed records are rejected, a warning goes
to stderr.
"""
from __future__ import annotations

import csv
import datetime as _dt
import functools
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from slnl.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, git_commit, software_versions

from .errors import DataFormatError
from .store import STORE_FORMAT, check_target, compute_fingerprint, install, split_counts

BUILD_DIR = ".prepare"  # inside --out: cache/ (parsed chunks, kept on interruption) and store/ (being written)
REJECT_COLUMNS = ["name", "file", "status", "reason", "where", "expected", "found"]
WARN_REJECTED_FRACTION = 0.1  # warn (stderr) when more than this fraction of the parsed records is rejected


# ---------------------------------------------------------------------------------------------------------- types
@dataclass(frozen=True)
class Bounds:
    """Plausible values per channel: ``lo[c] <= value <= hi[c]``; ``unit`` says in what and why (for messages).

    Purpose: catch corrupted numbers (``1e30``, ``-3e38``), not judge poses — each format's bounds are the sensor's
    physical range with a generous margin, chosen to keep every real file (see the format module's docstring).
    Comparisons fail for NaN, so a non-finite value is always out of bounds.
    """

    channels: tuple[str, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    unit: str

    def expected(self, c: int) -> str:
        return f"{self.channels[c]} within [{self.lo[c]:g}, {self.hi[c]:g}] ({self.unit})"

    def first_violation(self, values: np.ndarray) -> tuple[int, int] | None:
        """``(row, channel)`` of the first value of ``values (n, C)`` outside the bounds (NaN included), else None."""
        ok = (values >= np.asarray(self.lo)) & (values <= np.asarray(self.hi))
        if ok.all():
            return None
        i, c = np.argwhere(~ok)[0]
        return int(i), int(c)

    def check(self, values: np.ndarray, file: str, where_of: Callable[[int, int], int | str]) -> None:
        """Raise ``DataFormatError`` at ``where_of(row, channel)`` for the first value outside the bounds."""
        bad = self.first_violation(values)
        if bad is not None:
            i, c = bad
            v = float(values[i, c])
            raise DataFormatError(file, where_of(i, c), "a finite value" if not np.isfinite(v) else self.expected(c),
                                  f"{v:g}")


@dataclass
class Item:
    """One record to read: ``loader(path, **kwargs)``. ``member``: ``{split: True (train) | False (test) | None
    (neither)}``. ``listed_missing``: named by ``--missing-list``. ``where``: the record's place inside ``path`` when
    a file holds many records (``x_train[12]``), used in messages."""

    name: str
    path: str
    label: int
    member: dict[str, bool | None]
    listed_missing: bool = False
    kwargs: dict[str, Any] | None = None
    where: str | None = None


@dataclass
class Reject:
    name: str
    file: str
    status: str  # rejected | skipped | missing-listed
    reason: str
    member: dict[str, bool | None] | None = None
    where: Any = None
    expected: str = ""
    found: str = ""

    def row(self) -> list[str]:
        return [self.name, self.file, self.status, self.reason, "" if self.where is None else str(self.where),
                self.expected, self.found]


@dataclass
class Plan:
    """What a format module hands to ``run_plan``."""

    format: str  # the `slnl prepare` format (recorded as meta["source_format"])
    dataset: str  # what the store holds (meta["dataset"], one of slnl.data.store.DATASETS for known data)
    items: list[Item]
    skipped: list[Reject]
    loader: Callable[..., tuple[np.ndarray, dict]]  # picklable (module-level function or partial) unless in_process
    shape: tuple[int, int, int]  # (C, V, M)
    class_names: list[str]
    splits: tuple[str, ...]
    max_frames: int | None
    options: dict[str, Any]
    bounds: Bounds | None  # None: finite values only (a user's own data has no known physical range)
    extra_meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # printed in the summary (e.g. missing-list disagreements)
    in_process: bool = False  # records read in this process (their source is already in memory)


def read_name_list(path: str | os.PathLike) -> list[str]:
    """Sample names, one per line (blank lines and ``#`` comments ignored; a file suffix such as ``.skeleton`` is
    stripped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        s = line.split("#", 1)[0].strip()
        if s:
            out.append(s.split(".")[0])
    return out


# ---------------------------------------------------------------------------------------------------------- checks
def check_clip(x: np.ndarray, file: str, shape: tuple[int, int, int], bounds: Bounds | None,
               at: str | None = None) -> None:
    """The checks every kept clip passes, whatever its format; ``DataFormatError`` naming the first problem.

    ``x`` must be ``(C, T, V, M)`` with ``(C, V, M) == shape`` and ``T >= 1``, finite, within ``bounds`` (frame,
    joint and person of the first offending value, 1-based, in the message), and not all zero (an all-zero clip is a
    missing sample, never data). ``at`` prefixes the location (the record inside a many-record file).
    """
    C, V, M = shape
    pre = f"{at}, " if at else ""
    if x.ndim != 4 or (x.shape[0], x.shape[2], x.shape[3]) != (C, V, M):
        raise DataFormatError(file, at, f"a clip of shape (C={C}, T, V={V}, M={M})", f"shape {tuple(x.shape)}")
    if x.shape[1] < 1:
        raise DataFormatError(file, at, ">= 1 valid frame", "0 valid frames")
    flat = x.transpose(1, 2, 3, 0).reshape(-1, C)  # rows in (frame, joint, person) order

    def where(i: int, c: int) -> str:
        t, rest = divmod(i, V * M)
        v, m = divmod(rest, M)
        name = bounds.channels[c] if bounds else f"channel {c + 1}"
        return f"{pre}frame {t + 1}, joint {v + 1}, person {m + 1}, {name}"

    if bounds is not None:
        bounds.check(flat, file, where)
    elif not np.isfinite(flat).all():
        i, c = np.argwhere(~np.isfinite(flat))[0]
        raise DataFormatError(file, where(int(i), int(c)), "a finite value", f"{float(flat[i, c]):g}")
    if not x.any():
        raise DataFormatError(file, at, "a clip with a non-zero value (an all-zero clip is a missing sample)",
                              f"all {x.size} values zero")


# ---------------------------------------------------------------------------------------------------------- parsing
def _init_worker() -> None:
    # One thread per process: N workers on N cores; more threads per worker only contend. (Workers parse text with
    # numpy and never enter torch or OpenMP, so a forked worker cannot hit a lock its parent's threads held.)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"


def worker_pool(workers: int):
    """A process pool for parsing. ``fork`` where available: unlike ``spawn``/``forkserver`` it does not re-import the
    caller's ``__main__``, so a plain script calling ``prepare_dataset`` or ``ensure_default()`` without an
    ``if __name__ == "__main__"`` guard works (under spawn it would re-run itself in every worker)."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(workers, initializer=_init_worker)


def _callable_id(f: Any) -> Any:
    """A stable description of the loader for the cache key (its qualified name and bound arguments)."""
    if isinstance(f, functools.partial):
        return [_callable_id(f.func), list(f.args), sorted(f.keywords.items())]
    g = getattr(f, "__func__", f)  # a bound method: its function
    return f"{getattr(g, '__module__', type(f).__module__)}.{getattr(g, '__qualname__', type(f).__qualname__)}"


def _chunk_key(plan: Plan, chunk: Sequence[Item]) -> str:
    h = hashlib.sha1()
    h.update(json.dumps([plan.format, plan.dataset, plan.options, _callable_id(plan.loader), plan.max_frames,
                         plan.shape, asdict(plan.bounds) if plan.bounds else None], sort_keys=True,
                        default=str).encode())
    for it in chunk:
        st = os.stat(it.path) if os.path.exists(it.path) else None
        h.update(f"{it.name}|{it.path}|{it.label}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}|"
                 f"{int(it.listed_missing)}|{json.dumps(it.kwargs, sort_keys=True)}\n".encode())
    return h.hexdigest()[:16]


def _parse_chunk(args: tuple) -> tuple[int, int]:
    """Read, check and (if needed) cut one chunk of records; write its shard atomically. Returns (chunk id, records)."""
    cid, items, loader, shape, bounds, max_frames, shard_path = args
    clips, lengths, kept, infos, rejects = [], [], [], [], []
    for k, it in enumerate(items):
        try:
            x, info = loader(it.path, **(it.kwargs or {}))
            check_clip(x, it.path, shape, bounds, it.where)
        except DataFormatError as e:
            rejects.append({"k": k, "where": e.where, "expected": e.expected, "found": e.found, "reason": str(e)})
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
    flat = np.concatenate(clips, axis=1) if clips else np.zeros((shape[0], 0, shape[1], shape[2]), np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=flat, lengths=np.asarray(lengths, np.int64), kept=np.asarray(kept, np.int64),
             info=np.array(json.dumps({"infos": infos, "rejects": rejects})))
    atomic_write_bytes(shard_path, buf.getvalue())
    return cid, len(items)


# ---------------------------------------------------------------------------------------------------------- run
def run_plan(plan: Plan, out: str | os.PathLike, workers: int | None = None, chunk_size: int = 128,
             keep_cache: bool = False, progress: bool = True, force: bool = False,
             log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Parse (parallel, resumable), check, write and install ``plan`` as the store ``out``; returns the summary.

    ``force`` replaces a complete store already in ``out`` (refused otherwise: ``StoreExistsError``). ``warn``
    receives the too-many-rejects warning (default: stderr, even when ``log`` is silent).
    """
    warn = warn or (lambda s: print(s, file=sys.stderr))
    t0 = time.time()
    out = Path(out)
    check_target(out, force)
    chunks = [plan.items[a : a + chunk_size] for a in range(0, len(plan.items), chunk_size)]
    keys = [_chunk_key(plan, c) for c in chunks]
    inputs_key = hashlib.sha1(json.dumps([plan.format, plan.dataset, plan.options, keys,
                                          [r.row() for r in plan.skipped]], sort_keys=True,
                                         default=str).encode()).hexdigest()[:16]
    build = out / BUILD_DIR
    cache = build / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shard = [cache / f"chunk{i:06d}_{k}.npz" for i, k in enumerate(keys)]
    todo = [i for i in range(len(chunks)) if not shard[i].exists()]
    done_files = len(plan.items) - sum(len(chunks[i]) for i in todo)
    if done_files:
        log(f"resuming: {len(chunks) - len(todo)} of {len(chunks)} chunks already parsed ({done_files} files)")
    workers = 1 if plan.in_process else max(1, min(workers or os.cpu_count() or 1, len(todo)))
    jobs = [(i, chunks[i], plan.loader, plan.shape, plan.bounds, plan.max_frames, str(shard[i])) for i in todo]
    bar = tqdm(total=len(plan.items), initial=done_files, unit="file", desc=f"prepare {plan.format}",
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

    kept, rejects = _collect(plan, chunks, shard)
    if not kept.names:
        _write_rejects(build / "rejects.tsv", rejects)
        n_rej = sum(r.status == "rejected" for r in rejects)
        first = next((r for r in rejects if r.status == "rejected"), rejects[0] if rejects else None)
        raise RuntimeError(f"prepare {plan.format}: nothing could be kept out of {len(plan.items)} record(s) "
                           f"({n_rej} rejected, {len(rejects) - n_rej} skipped); first: "
                           f"{first.reason if first else '-'}; every reason: {build / 'rejects.tsv'}")
    staging = build / "store"
    if staging.exists():
        shutil.rmtree(staging)  # a write interrupted earlier: the chunks are cached, the arrays are redone
    staging.mkdir()
    summary = _write(plan, staging, out, chunks, shard, kept, rejects, inputs_key, t_parse, t0)
    install(staging, out)
    if keep_cache:
        staging.rmdir()
    else:
        shutil.rmtree(build, ignore_errors=True)
    rate = summary["rejected"] / max(1, summary["kept"] + summary["rejected"])
    if rate > WARN_REJECTED_FRACTION:
        warn(f"WARNING: prepare {plan.format}: {summary['rejected']} of {summary['kept'] + summary['rejected']} "
             f"parsed records ({100 * rate:.0f}%) were rejected as malformed, more than a tenth; every reason is in "
             f"{summary['rejects_file']}. Is --raw the right source for this format?")
    return summary


@dataclass
class _Kept:
    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    mask: list[list[bool]] = field(default_factory=list)  # per chunk: which parsed clips are kept


def _collect(plan: Plan, chunks: list[list[Item]], shard: list[Path]) -> tuple[_Kept, list[Reject]]:
    """Read the chunks' results: the kept records in plan order, and every reject with its reason."""
    kept, rejects = _Kept(), list(plan.skipped)
    for i, c in enumerate(chunks):
        with np.load(shard[i]) as z:
            info = json.loads(str(z["info"]))
            idx, lens = z["kept"].tolist(), z["lengths"].tolist()
        mask = []
        for k, L, inf in zip(idx, lens, info["infos"]):
            it = c[k]
            if it.listed_missing:  # the list says "no skeleton" but the file has one: leave out, report
                rejects.append(Reject(it.name, it.path, "missing-listed", f"named by --missing-list, but the file "
                                      f"holds a skeleton in {L} frame(s): list and file disagree", it.member))
                mask.append(False)
                continue
            mask.append(True)
            kept.names.append(it.name)
            kept.labels.append(it.label)
            kept.lengths.append(L)
            kept.members.append(it.member)
            kept.infos.append(inf)
        kept.mask.append(mask)
        for r in info["rejects"]:
            it = c[r["k"]]
            if it.listed_missing:
                rejects.append(Reject(it.name, it.path, "missing-listed", "named by --missing-list (file agrees: "
                                      + r["found"] + ")", it.member, r["where"], r["expected"], r["found"]))
                continue
            reason = r["reason"]
            if plan.options.get("missing_list") and r["expected"].startswith("at least one body"):
                reason += " [not named by --missing-list: list and file disagree]"
            rejects.append(Reject(it.name, it.path, "rejected", reason, it.member, r["where"], r["expected"],
                                  r["found"]))
    rejects.sort(key=lambda r: (r.status, r.name))
    return kept, rejects


def _write_rejects(path: Path, rejects: list[Reject]) -> None:
    tsv = io.StringIO()
    w = csv.writer(tsv, delimiter="\t", lineterminator="\n")
    w.writerow(REJECT_COLUMNS)
    for r in rejects:
        w.writerow(r.row())
    atomic_write_text(path, tsv.getvalue())


def _write(plan: Plan, d: Path, out: Path, chunks: list[list[Item]], shard: list[Path], kept: _Kept,
           rejects: list[Reject], inputs_key: str, t_parse: float, t0: float) -> dict[str, Any]:
    """Write the store's files into ``d`` (one chunk in memory at a time); returns the summary."""
    N = len(kept.names)
    C, V, M = plan.shape
    T_max = int(max(kept.lengths))
    x = np.lib.format.open_memmap(d / "x.npy", mode="w+", dtype=np.float32, shape=(N, C, T_max, V, M))
    row = 0
    for i in range(len(chunks)):
        with np.load(shard[i]) as z:
            flat, lens = z["x"], z["lengths"]
        t = 0
        for L, keep in zip(lens.tolist(), kept.mask[i]):
            if keep:
                x[row, :, :L] = flat[:, t : t + L]
                x[row, :, L:] = 0.0
                row += 1
            t += L
    x.flush()
    del x
    np.save(d / "labels.npy", np.asarray(kept.labels, dtype=np.int64))
    np.save(d / "num_frames.npy", np.asarray(kept.lengths, dtype=np.int64))
    splits = {}
    for s in plan.splits:
        side = [m.get(s) for m in kept.members]
        splits[f"{s}_train"] = np.array([v is True for v in side], dtype=bool)
        splits[f"{s}_test"] = np.array([v is False for v in side], dtype=bool)
    np.savez(d / "splits.npz", **splits)
    _write_rejects(d / "rejects.tsv", rejects)
    counts = split_counts(splits)
    summary = _summary(plan, N, rejects, counts, kept.lengths, kept.infos, t_parse, time.time() - t0, out)
    meta = {
        "format": STORE_FORMAT,
        "dataset": plan.dataset,
        "source_format": plan.format,
        "layout": "x: (N, C, T_max, V, M) float32; frames >= num_frames are zero padding",
        "shape": {"N": N, "C": C, "T_max": T_max, "V": V, "M": M},
        "class_names": list(plan.class_names),
        "num_classes": len(plan.class_names),
        "splits": list(plan.splits),
        "counts": counts,
        "names": kept.names,
        **plan.extra_meta,
        "summary": summary,
        "provenance": {
            "inputs_key": inputs_key,
            "software": software_versions(),
            "git_commit": git_commit(),
            "options": plan.options,
            "bounds": asdict(plan.bounds) if plan.bounds else None,
            "host_cpus": os.cpu_count(),
        },
        "prepared_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta["fingerprint"] = compute_fingerprint(d, meta)
    meta["complete"] = True
    atomic_write_json(d / "meta.json", meta)
    return summary


def _summary(plan: Plan, N: int, rejects: list[Reject], counts: dict, lengths: list[int], infos: list[dict],
             t_parse: float, t_total: float, out: Path) -> dict[str, Any]:
    per_split: dict[str, dict[str, dict[str, int]]] = {}
    for s in plan.splits:
        d = {sub: {"kept": counts.get(s, {}).get(sub, 0), "rejected": 0, "skipped": 0, "missing-listed": 0}
             for sub in ("train", "test")}
        for r in rejects:
            side = (r.member or {}).get(s)
            if side is not None:
                d["train" if side else "test"][r.status] += 1
        per_split[s] = d
    by_status: dict[str, int] = {}
    for r in rejects:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    return {
        "files": len(plan.items) + len(plan.skipped),
        "kept": N,
        "rejected": by_status.get("rejected", 0),
        "skipped": by_status.get("skipped", 0),
        "missing_listed": by_status.get("missing-listed", 0),
        "per_split": per_split,
        "truncated_to_max_frames": sum(1 for i in infos if i.get("truncated_from")),
        "frames": {"min": int(min(lengths)), "mean": float(np.mean(lengths)), "max": int(max(lengths))},
        "notes": plan.notes,
        "rejects_file": str(out / "rejects.tsv"),
        "parse_seconds": round(t_parse, 2),
        "total_seconds": round(t_total, 2),
        "files_per_second": round(len(plan.items) / t_parse, 1) if t_parse > 0 else None,
    }


def format_summary(summary: dict[str, Any], what: str, out: str | os.PathLike) -> str:
    """A summary a user can act on: counts per split and subset, where the rejects are, time."""
    s = summary
    w = max([8, *(len(split) + 2 for split in s["per_split"])])  # the split column fits its longest name
    lines = [f"prepared {what} → {out}",
             f"  files: {s['files']}  kept: {s['kept']}  rejected: {s['rejected']}  skipped: {s['skipped']}  "
             f"missing-listed: {s['missing_listed']}",
             f"  frames per clip: min {s['frames']['min']}, mean {s['frames']['mean']:.1f}, max {s['frames']['max']}"
             + (f"; {s['truncated_to_max_frames']} clip(s) cut to the frame limit" if s["truncated_to_max_frames"]
                else ""),
             f"  {'split':<{w}}{'subset':<8}{'kept':>8}{'rejected':>10}{'skipped':>9}{'missing-listed':>16}"]
    for split, d in s["per_split"].items():
        for sub in ("train", "test"):
            c = d[sub]
            lines.append(f"  {split:<{w}}{sub:<8}{c['kept']:>8}{c['rejected']:>10}{c['skipped']:>9}"
                         f"{c['missing-listed']:>16}")
    for n in s.get("notes", []):
        lines.append(f"  note: {n}")
    if s["rejected"] or s["skipped"] or s["missing_listed"]:
        lines.append(f"  every left-out file, with its reason: {s['rejects_file']}")
    fps = f" ({s['files_per_second']} files/s)" if s.get("files_per_second") else ""
    lines.append(f"  time: parse {s['parse_seconds']} s{fps}, total {s['total_seconds']} s")
    return "\n".join(lines)
