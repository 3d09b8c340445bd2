"""``slnl prepare <format> --raw SOURCE --out DIR``: a download (or a file another codebase made) → a prepared store.

The formats and what ``--raw`` is for each are ``FORMATS``; each has its module (``ntu``, ``kinetics``, ``msr3d``,
``nwucla``, ``sbu``, ``ctrgcn``, ``pyskl``, ``npz``, ``synthetic``) that plans its records, and all of them run
through the same pipeline (``slnl.data.pipeline``: parallel resumable parsing, the same checks, ``rejects.tsv``, the
summary) into the store layout of ``slnl.data.store``. This module only maps a format name and options to its
module, and parses the command line; errors reach the user as one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from . import ctrgcn, kinetics, msr3d, npz, ntu, nwucla, pyskl, sbu, synthetic
from .pipeline import Plan, format_summary, run_plan
from .store import check_target

RUN_OPTIONS = ("workers", "chunk_size", "keep_cache", "progress", "force")


@dataclass(frozen=True)
class Format:
    """One ``slnl prepare`` format: what ``--raw`` is, its planner, and the options it takes."""

    raw: str
    plan: Callable[..., Plan] | None  # plan(raw, **options); None for synthetic (it generates, then plans)
    options: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {
    "ntu60": Format("a directory of NTU RGB+D .skeleton files (searched recursively)",
                    functools.partial(ntu.plan, "ntu60"), ("missing_list", "max_frames")),
    "ntu120": Format("a directory of NTU RGB+D 120 .skeleton files (searched recursively)",
                     functools.partial(ntu.plan, "ntu120"), ("missing_list", "max_frames")),
    "kinetics": Format("ST-GCN's Kinetics-skeleton folder (kinetics_train/, kinetics_val/, label files)",
                       kinetics.plan, ("label_names", "max_frames")),
    "msr3d": Format("a directory of MSR Action3D aXX_sYY_eZZ_skeleton3D.txt files", msr3d.plan, ("used_list", "splits_mat")),
    "nwucla": Format("NW-UCLA's all_sqe/ folder of aAA_sSS_eEE_vVV.json clips", nwucla.plan),
    "sbu": Format("SBU Kinect Interaction (clean): <set>/<class>/<sequence>/skeleton_pos.txt", sbu.plan),
    "ctrgcn": Format("CTR-GCN's NTU60_CS.npz / NTU60_CV.npz / NTU120_CSub.npz / NTU120_CSet.npz", ctrgcn.plan,
                     ("split",)),
    "pyskl": Format("PYSKL's ntu60_3danno.pkl / ntu120_3danno.pkl (read without running code)", pyskl.plan),
    "npz": Format("a .npz in slnl's documented layout (slnl/data/npz.py)", npz.plan),
    "synthetic": Format("optional: where the generated .skeleton files go (default OUT/raw)", None,
                        ("num_classes", "per_class", "seed", "min_len", "max_len")),
}


def prepare_dataset(name: str, raw: str | os.PathLike | None, out: str | os.PathLike, **options) -> dict[str, Any]:
    """Prepare ``raw`` in format ``name`` (a key of ``FORMATS``) into the store ``out``; returns the summary.

    Run options: ``workers`` (default: all cores), ``chunk_size`` (records per resumable chunk, 128),
    ``keep_cache``, ``progress`` (tqdm bar), ``force`` (replace a complete store in ``out``; without it that is a
    ``StoreExistsError`` and nothing is touched), ``quiet``. Format options: ``missing_list`` (NTU), ``max_frames``
    (NTU/Kinetics, 300), ``label_names`` (Kinetics), ``used_list`` (MSR), ``split`` (CTR-GCN; default from the file
    name), ``num_classes``/``per_class``/``seed``/``min_len``/``max_len`` (synthetic). The summary is also stored in
    ``meta.json["summary"]``.
    """
    run_opts = {k: options.pop(k) for k in RUN_OPTIONS if k in options}
    quiet = options.pop("quiet", False)
    run_opts.setdefault("progress", not quiet)
    fmt = FORMATS.get(name)
    if fmt is None:
        raise ValueError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}")
    wrong = sorted(set(options) - set(fmt.options))
    if wrong:
        raise ValueError(f"option(s) {', '.join(wrong)} do not apply to {name}; it takes "
                         f"{', '.join(fmt.options) or 'no format options'} (and {', '.join(RUN_OPTIONS)}, quiet)")
    log = (lambda *_: None) if quiet else print
    check_target(out, run_opts.get("force", False))  # refuse before reading (or generating) anything
    if fmt.plan is None:
        return synthetic.prepare(out, raw=raw, log=log, run_opts=run_opts, **options)
    if raw is None:
        raise ValueError(f"prepare {name} needs raw=<{fmt.raw}>")
    p = fmt.plan(raw, **options)
    summary = run_plan(p, out, log=log, **run_opts)
    log(format_summary(summary, name if p.dataset == name else f"{name} ({p.dataset})", out))
    return summary


# ---------------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="slnl prepare", description="Turn a download into a prepared store (layout: slnl/data/store.py).\n\n"
        "formats (--raw):\n" + "\n".join(f"  {k:<10} {f.raw}" for k, f in FORMATS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  slnl prepare ntu60 --raw nturgb+d_skeletons --out data/ntu60 "
               "--missing-list NTU_RGBD_samples_with_missing_skeletons.txt\n"
               "  slnl prepare ctrgcn --raw NTU60_CS.npz --out data/ntu60-ctrgcn-cs\n"
               "  slnl prepare pyskl --raw ntu60_3danno.pkl --out data/ntu60-pyskl\n"
               "  slnl prepare kinetics --raw kinetics-skeleton --out data/kinetics\n"
               "  slnl prepare msr3d --raw MSRAction3DSkeletonReal3D --out data/msr3d\n"
               "  slnl prepare nwucla --raw all_sqe --out data/nwucla\n"
               "  slnl prepare sbu --raw sbu --out data/sbu\n"
               "  slnl prepare npz --check my_data.npz\n"
               "  slnl prepare npz --raw my_data.npz --out data/mine\n"
               "  slnl prepare synthetic --out results/data/synthetic")
    ap.add_argument("format", choices=list(FORMATS), metavar="format", help=", ".join(FORMATS))
    ap.add_argument("--raw", help="the source (see formats above)")
    ap.add_argument("--out", help="the store directory to write")
    ap.add_argument("--check", metavar="FILE", help="npz only: validate FILE and explain every problem")
    ap.add_argument("--missing-list", help="NTU: file of sample names with missing skeletons to leave out")
    ap.add_argument("--label-names", help="Kinetics: label_name.txt (line k+1 = class k); default: RAW/label_name.txt")
    ap.add_argument("--used-list", help="MSR Action3D: list of sequences to use; default: "
                                        "RAW/files_used_in_cvpr12_paper.txt")
    ap.add_argument("--splits-mat", help="MSR Action3D: the Lie group release's tr_te_splits.mat (its ten subject "
                                         "splits become lie1 ... lie10); default: RAW/tr_te_splits.mat when there")
    ap.add_argument("--max-frames", type=int, help="frames kept per clip (NTU/Kinetics default 300)")
    ap.add_argument("--split", help="CTR-GCN: the protocol of the file (xsub, xview, xset; CS, CV, CSub, CSet); "
                                    "default from the file name")
    ap.add_argument("--workers", type=int, help="parallel parser processes (default: all cores)")
    ap.add_argument("--chunk-size", type=int, default=128, help="files per resumable chunk (default 128)")
    ap.add_argument("--keep-cache", action="store_true", help="keep the parsed-chunk cache after finishing")
    ap.add_argument("--force", action="store_true", help="replace the store already in --out (without it, an "
                                                         "existing store is refused and left untouched)")
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
        if a.format != "npz":
            print("slnl prepare: --check is for `npz` files only", file=sys.stderr)
            return 2
        problems = npz.check(a.check)
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
    if a.raw is None and a.format != "synthetic":
        print(f"slnl prepare {a.format}: --raw is required ({FORMATS[a.format].raw})", file=sys.stderr)
        return 2
    opts: dict[str, Any] = {"chunk_size": a.chunk_size, "keep_cache": a.keep_cache, "force": a.force,
                            "progress": not a.no_progress}
    if a.workers:
        opts["workers"] = a.workers
    for k in ("missing_list", "label_names", "used_list", "splits_mat", "max_frames", "split", "num_classes", "per_class", "seed"):
        v = getattr(a, k)
        if v is not None:
            opts[k] = v
    try:
        prepare_dataset(a.format, a.raw, a.out, **opts)
    except (ValueError, RuntimeError, OSError) as e:  # DataFormatError, StoreError (StoreExistsError, ...), OSError
        text = " ".join(str(e).split())
        text = text.removeprefix(f"prepare {a.format}: ")  # the library names the step; the prefix here does
        print(f"slnl prepare {a.format}: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"slnl prepare {a.format}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
