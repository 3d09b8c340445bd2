"""Using a trained model in your own code: ``load_model(path)`` and ``predict(model, clips)``.

``load_model`` takes a run directory (its ``last.pt``, the final model) or a checkpoint file and gives the model in
eval mode, with ``class_names`` (from the run's ``result.json``, else its store, else ``class 0`` …) and
``train_config`` (the ``TrainConfig`` it was trained with) attached. ``predict`` takes clips as the stores hold them,
``(C, T, V, M)`` — channels (x, y, z), frames, joints, persons — one clip, a batch ``(N, C, T, V, M)``, or a list of
clips of different lengths, as NumPy arrays or tensors, and returns the probabilities of the concatenated head
(``p_c``, the one evaluation scores) per clip.

A clip of any length is taken as evaluation takes it (§4.1): the central crop of 0.95 of its valid frames, resized
to the model's ``T`` frames by linear interpolation — the package's own ``slnl.data.sampling.crop_windows`` /
``resize_positions`` / ``lerp``, so a clip read from a store gives exactly what ``slnl eval`` scores. Valid frames:
``num_frames`` when given, else up to the last frame that is not all zero (stores and CTR-GCN's files pad with
zeros after a clip). A clip with fewer persons than the model takes (one actor for an NTU model of two) is padded
with zero persons, as the stores pad an absent actor.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from slnl.data import kinetics, msr3d, ntu, nwucla, sbu
from slnl.data.readers import load_json
from slnl.data.sampling import crop_windows, lerp, resize_positions
from slnl.data.store import read_meta
from slnl.engine import checkpoint as ckpt
from slnl.engine.evaluation import checkpoint_file
from slnl.engine.evaluation import load_model as _load_run
from slnl.utils import portable, resolve_path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The final model of a run directory (its ``last.pt``), a checkpoint file or a model file (``slnl export``), in
    eval mode on ``device``, with ``model.class_names`` (list of str), ``model.train_config`` and
    ``model.predict(clips)`` set; what it takes is ``model.config`` (``in_channels``, ``num_joints``,
    ``num_persons``; any clip length, resampled to ``T``). Loading runs no code from the file
    (``slnl.engine.checkpoint``); a missing or foreign file is a one-line error."""
    model, cfg, state, path = _load_run(path)
    names = state.get("class_names")  # a model file (checkpoint.export_model) carries its own
    ok = isinstance(names, list) and len(names) == model.config.num_classes
    model.class_names = list(names) if ok else class_names_of(path, cfg, model.config.num_classes)
    model.train_config = cfg
    # model.predict(clips): the module's predict bound to this model (an instance attribute, not a submodule)
    model.predict = lambda clips, num_frames=None: predict(model, clips, num_frames=num_frames)
    return model.to(device).eval()


load = load_model  # slnl.load(path): the same


def export(run: str | os.PathLike, out: str | os.PathLike) -> tuple[Path, Path, int | None]:
    """``slnl export``: the final model of ``run`` (a run directory or a checkpoint file) alone, with its class names
    and its configuration's paths relative to the home (``slnl.utils.portable``), written to ``out``
    (``checkpoint.export_model``). Returns ``(out, the checkpoint read, its epoch)``."""
    src = checkpoint_file(run)
    state = ckpt.load(src)
    names = load_model(src).class_names
    cfg = state["config"]
    paths = {k: portable(resolve_path(cfg[k])) for k in ("data", "out") if cfg.get(k)}
    dst = resolve_path(out)
    ckpt.export_model(state, dst, class_names=names, **paths)
    return dst, src, state.get("epoch")


def build_for(store: str | os.PathLike, preset: str = "small", **overrides: Any) -> torch.nn.Module:
    """An untrained model of ``preset`` shaped for a prepared store: the fields a dataset must give
    (``num_classes``, ``in_channels`` C, ``num_joints`` V, ``num_persons`` M) read from its ``meta.json``;
    ``overrides``: other ``ModelConfig`` fields (e.g. ``new_joints``, ``m1``), as ``slnl.build`` takes them."""
    from slnl.models import build

    meta = read_meta(resolve_path(store))
    shape = meta["shape"]
    return build(preset, **{"num_classes": int(meta["num_classes"]), "in_channels": int(shape["C"]),
                            "num_joints": int(shape["V"]), "num_persons": int(shape["M"]), **overrides})


def class_names_of(checkpoint: Path, cfg: Any, num_classes: int) -> list[str]:
    """The class names of a trained model: its run's ``result.json``, else its store's ``meta.json``, else
    ``class 0`` … (a checkpoint copied away from both)."""
    candidates = [checkpoint.parent / "result.json"] if checkpoint.name == ckpt.FILE else []
    for source in candidates:
        try:
            names = json.loads(source.read_text()).get("class_names")
        except (OSError, ValueError):
            continue
        if isinstance(names, list) and len(names) == num_classes:
            return [str(n) for n in names]
    if cfg.data:
        try:
            names = read_meta(resolve_path(cfg.data)).get("class_names")
        except (OSError, ValueError):
            names = None
        if isinstance(names, list) and len(names) == num_classes:
            return [str(n) for n in names]
    return [f"class {k}" for k in range(num_classes)]


@dataclass
class Predictions:
    """``probs``: (N, K) class probabilities (softmax of the ``p_c`` head); ``class_names``: the K names."""

    probs: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def indices(self) -> np.ndarray:
        """(N,) the most probable class of each clip."""
        return self.probs.argmax(axis=1)

    @property
    def labels(self) -> list[str]:
        """The most probable class of each clip, by name."""
        return [self.class_names[int(k)] for k in self.indices]

    def top(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per clip, the ``k`` most probable classes as ``(name, probability)``, most probable first."""
        order = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[int(j)], float(p[j])) for j in row] for p, row in zip(self.probs, order)]


def valid_frames(clip: np.ndarray) -> int:
    """Frames up to the last one that is not all zero, at least 1, of a ``(C, T, V, M)`` clip."""
    nonzero = np.flatnonzero(np.abs(clip).reshape(clip.shape[0], clip.shape[1], -1).sum(axis=(0, 2)) > 0)
    return int(nonzero[-1]) + 1 if len(nonzero) else 1


def resample(clip: np.ndarray, T: int, num_frames: int | None = None) -> torch.Tensor:
    """``(C, T, V, M)`` float32: the central crop of ``clip``'s first ``num_frames`` frames resized to ``T``, exactly as
    evaluation takes a clip from a store (``SkeletonDataset`` with ``train=False``)."""
    n = valid_frames(clip) if num_frames is None else int(num_frames)
    if not 1 <= n <= clip.shape[1]:
        raise ValueError(f"num_frames {n}: expected 1 … {clip.shape[1]} (the clip's frames)")
    start, length = crop_windows(n, train=False)
    i0, i1, w = resize_positions(start, length, T)
    x = torch.from_numpy(np.array(clip[:, :n], dtype=np.float32))
    return lerp(x[:, torch.from_numpy(i0[0])], x[:, torch.from_numpy(i1[0])], torch.from_numpy(w[0]).view(1, -1, 1, 1))


def _as_clips(clips: Any) -> list[np.ndarray]:
    if isinstance(clips, torch.Tensor):
        clips = clips.detach().cpu().numpy()
    if isinstance(clips, np.ndarray):
        if clips.ndim == 4:
            return [clips]
        if clips.ndim == 5:
            return list(clips)
        raise ValueError(f"clips of shape {tuple(clips.shape)}: expected one clip (C, T, V, M) or a batch "
                         "(N, C, T, V, M)")
    if isinstance(clips, (list, tuple)):
        out = []
        for c in clips:
            c = c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c)
            if c.ndim != 4:
                raise ValueError(f"a clip of shape {tuple(c.shape)} in the list: expected (C, T, V, M)")
            out.append(c)
        return out
    raise TypeError(f"clips: expected a NumPy array, a tensor or a list of clips, got {type(clips).__name__}")


@torch.no_grad()
def predict(model: torch.nn.Module, clips: Any, num_frames: int | Sequence[int] | None = None,
            batch_size: int = 64) -> Predictions:
    """Class probabilities of ``clips`` under ``model`` (a model of ``load_model`` or of ``slnl.build``): one clip
    ``(C, T, V, M)``, a batch ``(N, C, T, V, M)`` or a list of clips of any lengths. ``num_frames``: the valid frames
    of each clip (one number for all), default up to its last frame that is not all zero. Each clip is cropped and
    resized to the model's ``T`` as evaluation does (module docstring). The model runs in eval mode on its own device
    and is left in the mode it was in."""
    cfg = model.config
    arrays = _as_clips(clips)
    if num_frames is None or np.ndim(num_frames) == 0:
        frames = [num_frames] * len(arrays)
    else:
        frames = list(num_frames)
        if len(frames) != len(arrays):
            raise ValueError(f"num_frames: {len(frames)} numbers for {len(arrays)} clips")
    want = (cfg.in_channels, "T", cfg.num_joints, cfg.num_persons)
    xs = []
    for i, (clip, n) in enumerate(zip(arrays, frames)):
        C, _, V, M = clip.shape
        if C != cfg.in_channels or V != cfg.num_joints or M > cfg.num_persons:
            raise ValueError(f"clip {i} has shape {tuple(clip.shape)}; this model takes (C, T, V, M) = {want} "
                             f"(any T, at most {cfg.num_persons} person(s))")
        x = resample(clip, cfg.T, n)
        if M < cfg.num_persons:
            x = torch.cat([x, x.new_zeros(C, cfg.T, V, cfg.num_persons - M)], dim=3)
        xs.append(x)
    device = next(model.parameters()).device
    names = list(getattr(model, "class_names", None) or [f"class {k}" for k in range(cfg.num_classes)])
    was_training = model.training
    model.eval()
    try:
        probs = [torch.softmax(model(torch.stack(xs[a:a + batch_size]).to(device)).c.float(), dim=1).cpu()
                 for a in range(0, len(xs), batch_size)]
    finally:
        model.train(was_training)
    return Predictions(torch.cat(probs).numpy() if probs else np.zeros((0, cfg.num_classes), np.float32), names)


def read_raw_clip(path: Path) -> np.ndarray:
    """One raw file of a supported dataset as its prepared store holds it, ``(C, T, V, M)``, read by the format's own
    parser (the one ``slnl prepare`` maps): MSR Action3D ``*_skeleton3D.txt``, NTU RGB+D ``*.skeleton``, SBU
    ``skeleton_pos.txt``, NW-UCLA's or Kinetics-skeleton's ``.json`` (told apart by their keys). A malformed file is
    the parser's one-line ``DataFormatError``."""
    name = path.name
    if name.endswith("_skeleton3D.txt"):
        return msr3d.read_sequence(path)[0]
    if path.suffix == ".skeleton":
        return ntu.load_clip(path)[0]
    if name == "skeleton_pos.txt":
        return sbu.read_sequence(path)[0]
    if path.suffix == ".json":
        doc = load_json(str(path))
        if isinstance(doc, dict) and "skeletons" in doc:
            return nwucla.read_clip(path)[0]
        return kinetics.read_clip(path)[0]
    raise ValueError(f"{path}: not a clip file slnl reads: .npy, .npz, an MSR Action3D *_skeleton3D.txt, an NTU "
                     "*.skeleton, an SBU skeleton_pos.txt, or an NW-UCLA / Kinetics-skeleton .json")


def read_clips(path: str | os.PathLike) -> tuple[list[np.ndarray], list[int] | None, list[str]]:
    """``(clips, num_frames or None, names)`` of a clip file: an ``.npy`` array ``(C, T, V, M)`` or
    ``(N, C, T, V, M)``, an ``.npz`` holding ``x`` (and optionally ``num_frames`` and ``names``, as in
    ``slnl.data.npz``'s layout) or a single array, or one raw file of a supported dataset (``read_raw_clip``).
    Nothing is unpickled."""
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        x = read_raw_clip(path)
        name = ("_".join(path.parts[-4:-1]) if path.name == "skeleton_pos.txt"  # set_class_sequence, as stores name it
                else path.name.removesuffix("_skeleton3D.txt").removesuffix(path.suffix))
        return [x], [int(x.shape[1])], [name]
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npy or .npz file ({e})") from None
    num_frames = names = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            files = list(loaded.files)
            key = "x" if "x" in files else (files[0] if len(files) == 1 else None)
            if key is None:
                raise ValueError(f"{path}: expected an array named x (or a single array), found {', '.join(files)}")
            x = loaded[key]
            if "num_frames" in files:
                num_frames = [int(n) for n in np.atleast_1d(loaded["num_frames"])]
            if "names" in files:
                names = [str(n) for n in np.atleast_1d(loaded["names"])]
    else:
        x = loaded
    x = np.asarray(x)
    clips = _as_clips(x)
    default = [path.stem] if x.ndim == 4 else [f"{path.stem}[{i}]" for i in range(len(clips))]
    return clips, num_frames, names or default
