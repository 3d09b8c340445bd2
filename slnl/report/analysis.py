"""Analyses of a trained model: what the frequency attention learned per class (Eq. 2's gates) and the non-local
affinity among joints (Eq. 8), computed from a run directory's final checkpoint on its test subset.

Every checkpoint is read by ``slnl.engine.checkpoint.load`` (the one reader of checkpoints in the package: it runs no
code from the file), from ``last.pt``: the paper reports the model of the final epoch. A run whose store no longer
holds the data it recorded (``store_fingerprint``) is refused (``slnl.engine.rundir.check_store``): its gates and
affinities would be computed on other samples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from slnl import data as sdata
from slnl.engine.config import TrainConfig
from slnl.engine.evaluation import load_model
from slnl.data.store import read_meta
from slnl.engine.rundir import check_store
from slnl.models import FrequencyAttention, SkeletonTransformer
from slnl.models.transform import CNNTransform


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, TrainConfig]:
    """``(model in eval mode on the CPU, TrainConfig)`` of a run directory's final checkpoint (``last.pt``, with the
    configuration it carries); refused, in one line, when the run's store changed since it trained."""
    model, cfg, _, _ = load_model(run_dir)
    check_store(cfg, f"run {run_dir}")
    return model, cfg


def _test_batches(cfg: TrainConfig, T: int, max_samples: int, batch_size: int = 64) -> Iterator[tuple[Any, Any, Any]]:
    """Test-subset batches ``(x, y, dataset)`` (central crop), at most ``max_samples`` samples spread evenly over
    the subset."""
    check_store(cfg, f"run {cfg.out}")
    ds = sdata.load(cfg.data, split=cfg.split, subset="test", T=T, train=False, seed=cfg.seed)
    n = len(ds)
    if n == 0:
        raise ValueError(f"{cfg.data} split {cfg.split!r}: empty test subset")
    idx = np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(int))
    for s in range(0, len(idx), batch_size):
        items = [ds[int(i)] for i in idx[s:s + batch_size]]
        yield torch.stack([torch.as_tensor(x) for x, _ in items]), torch.as_tensor([int(y) for _, y in items]), ds


def _streams(model) -> dict[str, Any]:
    return {name: s for name, s in (("position", model.position), ("velocity", model.velocity)) if s is not None}


def gate_components(attention: str) -> tuple[str, ...]:
    """What a variant gates: the amplitude spectrum for aFA, the cosine and sine parts otherwise (§3.2, §4.3)."""
    return ("amp",) if attention == "aFA" else ("cos", "sin")


def attention_gates(fa: FrequencyAttention, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gates, each ``(B, 1, T', N')``, that ``FrequencyAttention`` ``fa`` applies to its input ``x``, keyed by
    component (``gate_components``: ``amp`` for aFA, ``cos``/``sin`` otherwise) — Eq. 1–2 through the module's own
    ``spectrum()`` and ``gates()``, in the dtype its forward uses."""
    return dict(zip(gate_components(fa.attention), fa.gates(*fa.spectrum(x))))


def frequency_gates(run_dir: str | Path, max_samples: int = 512) -> dict[str, Any]:
    """What the frequency attention learned: the gates of Eq. 2 (``M_cos``, ``M_sin``; aFA's one amplitude gate) averaged
    per class over the test subset, for each stream. Returns {``gates``: {stream: {"cos"|"sin"|"amp": array
    (num_classes, T', N')}}, ``count``:
    samples per class, ``class_names``, ``attention``, ``run``}. Frequencies are in DFT order (u = 0 … T'−1 over
    time, v = 0 … N'−1 over joints); the figure shifts zero frequency to the centre.

    The gates are recomputed from the module's input with its own ``gates()`` method (a forward hook on
    ``FrequencyAttention`` captures the input; its ``spectrum()`` gives what its forward gates)."""
    model, cfg = load_run(run_dir)
    if model.config.attention == "none":
        raise ValueError(f"{run_dir}: the model has no frequency attention (attention='none'); pick a run with "
                         "aFA/sFA/dFA/rFA")
    streams = _streams(model)
    C = model.config.num_classes
    sums: dict[str, dict[str, np.ndarray]] = {}
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for name, s in streams.items():
        fa = s.frequency
        hooks.append(fa.register_forward_hook(lambda mod, inp, out, name=name: captured.__setitem__(name, inp[0])))
        sums[name] = {c: np.zeros((C, fa.T, fa.N)) for c in gate_components(fa.attention)}
    count = np.zeros(C, dtype=np.int64)
    class_names: list[str] = []
    try:
        with torch.no_grad():
            for x, y, ds in _test_batches(cfg, model.config.T, max_samples):
                class_names = list(ds.class_names)
                model(x)
                for name, s in streams.items():
                    # Persons are folded into the batch (B·M, ...); the gates of the first person (the performer;
                    # a second person is often absent, i.e. zero-filled) are the ones that describe the action.
                    h = captured[name].float()
                    h = h.reshape(len(y), model.config.num_persons, *h.shape[1:])[:, 0]
                    for comp, m in attention_gates(s.frequency, h).items():
                        np.add.at(sums[name][comp], y.numpy(), m[:, 0].double().numpy())
                np.add.at(count, y.numpy(), 1)
    finally:
        for h in hooks:
            h.remove()
    denom = np.maximum(count, 1)[:, None, None]
    gates = {n: {c: v / denom for c, v in comps.items()} for n, comps in sums.items()}
    return {"gates": gates, "count": count, "class_names": class_names, "attention": model.config.attention,
            "run": Path(run_dir).name}


def map_affinity(new: np.ndarray, W_s: np.ndarray) -> np.ndarray:
    """An affinity among the skeleton transformer's N' new joints mapped to the N original joints: ``R^T A' P`` with
    P = |W_s| normalised per row and R = |W_s| normalised per column (see ``nonlocal_affinity``). Row-stochastic in,
    row-stochastic out; a permutation W_s just permutes A'. An original joint with an all-zero column of W_s (the
    model does not see it) gets a NaN row: its affinity is undefined, not zero."""
    w = np.abs(np.asarray(W_s, dtype=float))  # (N', N)
    if new.shape != (w.shape[0], w.shape[0]):
        raise ValueError(f"map_affinity: affinity {new.shape} does not match W_s {w.shape} (expected N'×N')")
    P = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    col = w.sum(axis=0, keepdims=True)
    R = w / np.where(col > 0, col, np.nan)  # an original joint no new joint carries has no affinity row: NaN
    return R.T @ new @ P


def nonlocal_affinity(run_dir: str | Path, max_samples: int = 256, class_index: int | None = None) -> dict[str, Any]:
    """The spatial non-local affinity of the first SLnL block (Eq. 8 normalised as in Eq. 6: φ(x_i, x_j)/Z_i),
    averaged over frames and test samples, mapped back to the original joints.

    The block works on the N' joints of the skeleton transformer (§3.1). An affinity A' among new joints is mapped
    to the original joints as A = R^T A' P, with P = |W_s| normalised per row (new joint j' as a mixture of original
    joints) and R = |W_s| normalised per column (how much of original joint i each new joint carries); A stays
    row-stochastic. Without a skeleton transformer (Pos-N, PosVel-N, C-T) A = A'. CNN-V's transform is non-linear and
    has no such map: ``mapped`` is then None. Returns {``new`` (N'×N'), ``mapped`` (N×N or None), ``stream``,
    ``block`` (0-based), ``n``, ``affinity``, ``class_index``, ``run``, ``joint_names``} — ``joint_names``: the
    store's names of the original joints (``meta.json``), None where it names none.
    """
    model, cfg = load_run(run_dir)
    stream_name, stream = next(iter(_streams(model).items()))
    blocks = [b for b in stream.blocks if getattr(b, "s_nonlocal", None) is not None]
    if not blocks:
        raise ValueError(f"{run_dir}: no block with a spatial non-local module (affinity="
                         f"{model.config.affinity!r}, m1={model.config.m1}); pick an SLnL or sSLnL run")
    block = blocks[0]
    captured: dict[str, torch.Tensor] = {}
    hook = block.s_nonlocal.register_forward_pre_hook(lambda mod, inp: captured.__setitem__("x", inp[0]))
    total, n = None, 0
    try:
        with torch.no_grad():
            for x, y, _ in _test_batches(cfg, model.config.T, max_samples):
                if class_index is not None:
                    keep = y == class_index
                    if not keep.any():
                        continue
                    x = x[keep]
                model(x)
                h = captured["x"]  # (B·M, C, T, N): persons folded into the batch; keep the first (the performer)
                h = h.reshape(len(x), model.config.num_persons, *h.shape[1:])[:, 0]
                B, _, T, N = h.shape
                a = block.s_nonlocal.affinity(h).reshape(B, T, N, N).mean(dim=1).double()  # per sample, mean over t
                total = a.sum(0) if total is None else total + a.sum(0)
                n += B
    finally:
        hook.remove()
    if total is None:
        raise ValueError(f"{run_dir}: no test sample" + ("" if class_index is None else f" of class {class_index}"))
    new = (total / n).numpy()
    mapped: np.ndarray | None = new
    if isinstance(stream.transform, CNNTransform):
        mapped = None
    else:
        sk = [m for m in stream.transform.modules() if isinstance(m, SkeletonTransformer)]
        if sk:
            mapped = map_affinity(new, sk[0].W_s.detach().double().numpy())
    block_no = [b for b in stream.blocks if hasattr(b, "s_local")].index(block)  # 0-based, pooling layers skipped
    return {"new": new, "mapped": mapped, "stream": stream_name, "block": block_no, "n": n,
            "affinity": model.config.affinity, "class_index": class_index, "run": Path(run_dir).name,
            "joint_names": store_joint_names(cfg.data)}


def store_joint_names(store: str | Path) -> list[str] | None:
    """The joint names a store's ``meta.json`` records (``joint_names``), or None (none recorded, or no store)."""
    try:
        names = read_meta(store).get("joint_names")
    except (OSError, ValueError):
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def mean_gates(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-class gates of several runs (``frequency_gates`` dicts of one row's seeds) averaged over them: per
    class, the mean over every test sample of every run (each run's class mean weighted by its count). The gates
    are indexed by frequency (u over time, v over the N' joints the block sees), the same grid in every seed.
    ``run`` lists the runs, ``runs`` counts them."""
    if not runs:
        raise ValueError("mean_gates: no run")
    first = runs[0]
    shapes = {(s, c): first["gates"][s][c].shape for s in first["gates"] for c in first["gates"][s]}
    for g in runs[1:]:
        got = {(s, c): g["gates"][s][c].shape for s in g["gates"] for c in g["gates"][s]}
        if got != shapes or g["attention"] != first["attention"]:
            raise ValueError(f"mean_gates: {g['run']} has other gates ({g['attention']}, {got}) than {first['run']} "
                             f"({first['attention']}, {shapes})")
    count = np.sum([np.asarray(g["count"]) for g in runs], axis=0)
    denom = np.maximum(count, 1)[:, None, None]
    gates = {s: {c: sum(np.asarray(g["gates"][s][c]) * np.asarray(g["count"])[:, None, None] for g in runs) / denom
                 for c in first["gates"][s]} for s in first["gates"]}
    return {"gates": gates, "count": count, "class_names": first["class_names"], "attention": first["attention"],
            "run": ", ".join(g["run"] for g in runs), "runs": len(runs)}


def mean_affinity(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The affinities of several runs (``nonlocal_affinity`` dicts of one row's seeds) averaged over them, on the
    original joints (``mapped``: each seed learns its own new joints, so only the mapped matrices share their
    rows and columns), each run weighted by its samples; a joint a seed does not see is averaged over the seeds that
    do. None when a run has no mapped matrix (CNN-V) or the runs' matrices differ in size."""
    if not runs or any(a["mapped"] is None for a in runs) or len({a["mapped"].shape for a in runs}) > 1:
        return None
    stack = np.stack([a["mapped"] for a in runs])
    w = np.asarray([a["n"] for a in runs], dtype=float)[:, None, None] * ~np.isnan(stack)
    total = np.nansum(stack * w, axis=0)
    weight = w.sum(axis=0)
    mapped = np.divide(total, weight, out=np.full(total.shape, np.nan), where=weight > 0)
    return {**runs[0], "new": None, "mapped": mapped, "n": int(sum(a["n"] for a in runs)),
            "run": ", ".join(a["run"] for a in runs), "runs": len(runs)}
