"""The built-in synthetic dataset: procedurally generated, *real* NTU ``.skeleton`` files, prepared like NTU-60.

Why it exists: a fresh machine (CI, a reviewer's laptop) has no NTU download, yet every table notebook must run end
to end on real files through the real pipeline. ``ensure_default()`` writes ~1200 ``.skeleton`` files named
``SsssCcccPpppRrrrAaaa`` (so the NTU cross-subject / cross-view protocols apply unchanged) and prepares them with the
same code as ``slnl prepare ntu60``.

What separates the classes is exactly what the paper's components are built to see, and nothing else:

* **frequency** (frequency attention, §3.2): the driving movement makes ``slow`` 1.0–2.2 or ``fast`` 1.8–3.6
  cycles per clip (the overlap is deliberate: some clips are ambiguous). Frequency is given per clip, not per
  second, so it survives the §4.1 crop-and-resize; a random crop (ratio 0.5–1) of a slow clip and one of a fast
  clip can show a similar number of cycles, another confusion that keeps the task from being trivial.
* **coordination between distant joints** (non-local, §3.3): the right arm and the *left* leg swing with the same
  frequency, either in phase or in anti-phase (± 60° jitter). Amplitudes are random per clip, so only their
  relative phase tells.
* **coordination between the two persons** (non-local across persons): solo, or a partner whose right arm swings
  in phase or in anti-phase (± 60° jitter) with the performer's.
* **viewpoint** (coordinate transformer, §3.1): the scene is seen from the clip's camera (C001 front, C002 +45°,
  C003 −45° yaw, NTU's layout) plus random yaw ±20°, pitch ±10°, distance 2.5–3.5 m; the cross-view split tests
  an unseen camera. Body size depends on the performer (P001–P040), so cross-subject tests unseen body sizes.

Nuisances shared by all classes: distractor oscillations of the left arm, right leg and torso at random frequencies,
joint noise (σ = 1 cm), a non-uniform time warp (varying speed), 40–100 frames, and the defects real Kinect files
have: frames with 0 bodies (dropped frames), a partner who enters after the first frames, a short spurious body
(≤ 8 frames, removed by the ≤ 11-frame rule) and a performer re-identified under a new bodyID mid-clip (merged back
by the actor rule). Labels: ``label = freq + 2 * limb_phase + 4 * social`` (12 classes); ``CLASS_NAMES`` spells them.

Deterministic: clip ``k`` is a pure function of ``(seed, k)`` (``numpy.random.default_rng([seed, k])``), and its
expected prepared array (``SynthClip.expected``) is computed by the generator independently of the parser, which
the tests use for the round trip generator → text → ``slnl prepare ntu60`` → store.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slnl.utils import atomic_write_json, resolve_path

from . import ntu
from .pipeline import format_summary, run_plan, worker_pool
from .store import STORE_FORMAT, check_target, complete_meta

VERSION = 1  # bump when the generator's output changes: ensure_default() then regenerates
DEFAULTS = {"num_classes": 12, "per_class": 100, "seed": 0, "min_len": 40, "max_len": 100}
FREQS = ("slow", "fast")
LIMB = ("hand-foot in phase", "hand-foot anti-phase")
SOCIAL = ("solo", "pair in phase", "pair anti-phase")
CLASS_NAMES = [f"{FREQS[k % 2]}, {LIMB[(k // 2) % 2]}, {SOCIAL[k // 4]}" for k in range(12)]
CAMERA_YAW = {1: 0.0, 2: np.pi / 4, 3: -np.pi / 4}
NOISE = 0.01  # metres
PHASE_JITTER = np.pi / 3  # relative phases are 0 or pi, +- this

# Rest pose in the body frame: metres, x to the person's left, y up, forward = -z; pelvis (joint 1) at the origin.
_REST = np.array([
    [0.0, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.58, 0.0], [0.0, 0.72, 0.0],           # 1 base spine .. 4 head
    [0.18, 0.48, 0.0], [0.20, 0.22, 0.0], [0.21, -0.02, 0.0], [0.21, -0.10, 0.0],    # 5 L shoulder .. 8 L hand
    [-0.18, 0.48, 0.0], [-0.20, 0.22, 0.0], [-0.21, -0.02, 0.0], [-0.21, -0.10, 0.0],  # 9 R shoulder .. 12 R hand
    [0.09, -0.02, 0.0], [0.10, -0.45, 0.0], [0.10, -0.85, 0.0], [0.10, -0.90, -0.10],  # 13 L hip .. 16 L foot
    [-0.09, -0.02, 0.0], [-0.10, -0.45, 0.0], [-0.10, -0.85, 0.0], [-0.10, -0.90, -0.10],  # 17 R hip .. 20 R foot
    [0.0, 0.50, 0.0], [0.21, -0.16, 0.0], [0.18, -0.08, -0.03], [-0.21, -0.16, 0.0], [-0.18, -0.08, -0.03],  # 21-25
])
# 0-based chains rotated about their root joint.
_R_ARM, _L_ARM = (8, [9, 10, 11, 23, 24]), (4, [5, 6, 7, 21, 22])
_L_LEG, _R_LEG = (12, [13, 14, 15]), (16, [17, 18, 19])


@dataclass
class SynthClip:
    """One generated clip: its file content and the array the NTU preparation must produce from it."""

    name: str
    label: int
    num_frames: int  # frames in the file (including frames with 0 bodies)
    bodies: list[tuple[str, np.ndarray, np.ndarray]]  # (bodyID, frames, xyz (k, 25, 3)) as written to the file
    expected: np.ndarray  # float32 (3, T, 25, 2): the module ntu's rule applied by construction


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _swing(pose: np.ndarray, chain: tuple[int, list[int]], angle: np.ndarray) -> None:
    """Rotate a limb chain about its root joint around the body's lateral (x) axis, per frame, in place."""
    root, joints = chain
    R = _rot_x(angle)  # (n, 3, 3)
    rel = pose[:, joints] - pose[:, root : root + 1]
    pose[:, joints] = np.einsum("nij,nkj->nki", R, rel) + pose[:, root : root + 1]


def _person(rng: np.random.Generator, n: int, scale: float, drive: np.ndarray, arm_amp: float,
            leg_amp: float | None, leg_phase: float) -> np.ndarray:
    """Body-frame joints (n, 25, 3) of one person whose right arm follows ``drive`` (a phase per frame)."""
    pose = np.repeat((_REST * scale)[None], n, axis=0)
    t = np.linspace(0.0, 1.0, n)
    _swing(pose, _R_ARM, arm_amp * np.sin(drive))
    if leg_amp is not None:
        _swing(pose, _L_LEG, leg_amp * np.sin(drive + leg_phase))
    # distractors: random frequencies and phases, smaller amplitudes, on the other limbs
    for chain, amp in ((_L_ARM, rng.uniform(0.1, 0.35)), (_R_LEG, rng.uniform(0.05, 0.2))):
        _swing(pose, chain, amp * np.sin(2 * np.pi * rng.uniform(0.5, 4.0) * t + rng.uniform(0, 2 * np.pi)))
    sway = rng.uniform(0.02, 0.12) * np.sin(2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 2 * np.pi))
    return np.einsum("nij,nkj->nki", _rot_y(sway), pose)


def generate_clip(seed: int, k: int, label: int, name: str, min_len: int = 40, max_len: int = 100) -> SynthClip:
    """Clip ``k`` of class ``label``: a pure function of ``(seed, k, label, name)``."""
    rng = np.random.default_rng([seed, k])
    f = ntu.parse_name(name)
    freq, limb, social = label % 2, (label // 2) % 2, label // 4
    n = int(rng.integers(min_len, max_len + 1))
    # varying speed: a monotone time warp tau(t) with tau(0)=0, tau(1)=1
    u = np.linspace(0.0, 1.0, n)
    w = rng.uniform(-0.6, 0.6)
    tau = u + w * np.sin(2 * np.pi * u) / (2 * np.pi)
    # overlapping ranges: a clip with 1.8-2.2 cycles could be either, an irreducible confusion of a few per cent
    cycles = rng.uniform(1.0, 2.2) if freq == 0 else rng.uniform(1.8, 3.6)
    phase0 = rng.uniform(0, 2 * np.pi)
    drive = 2 * np.pi * cycles * tau + phase0
    scale = 0.85 + 0.3 * ((f["subject"] * 7919) % 40) / 39.0  # body size depends on the performer only

    jitter = PHASE_JITTER * rng.uniform(-1, 1, 2)  # the coordination is loose, like a real person's
    p1 = _person(rng, n, scale, drive, rng.uniform(0.5, 0.9), rng.uniform(0.15, 0.5), np.pi * limb + jitter[0])
    persons = [p1]
    if social > 0:
        # the partner's right arm in phase (social 1) or anti-phase (2) with the performer's; smaller movement, so the
        # performer nearly always ranks first by motion (the expected slot order below follows the actor rule anyway)
        p2 = _person(rng, n, 0.85 + 0.3 * rng.uniform(), drive + (0.0 if social == 1 else np.pi) + jitter[1],
                     rng.uniform(0.2, 0.35), None, 0.0)
        # facing each other, 1.1-1.4 m apart
        gap = rng.uniform(1.1, 1.4) / 2
        p1 = np.einsum("ij,nkj->nki", _rot_y(np.array(np.pi / 2)), p1) + [-gap, 0, 0]
        p2 = np.einsum("ij,nkj->nki", _rot_y(np.array(-np.pi / 2)), p2) + [gap, 0, 0]
        persons = [p1, p2]
    # camera: NTU layout yaw per camera + jitter, pitch, distance; camera space: x right, y up, z away from camera
    yaw = CAMERA_YAW[f["camera"]] + rng.uniform(-np.pi / 9, np.pi / 9)
    R = _rot_x(np.array(rng.uniform(-np.pi / 18, np.pi / 18))) @ _rot_y(np.array(yaw))
    offset = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.1), rng.uniform(2.5, 3.5)])
    persons = [np.einsum("ij,nkj->nki", R, p) + offset + rng.normal(0, NOISE, p.shape) for p in persons]
    persons = [np.round(p, 6) for p in persons]  # what the file's 6 decimals hold, exactly

    # Kinect defects. Frames with 0 bodies (the sensor lost everyone):
    present = [np.ones(n, dtype=bool) for _ in persons]
    if rng.random() < 0.3:
        for fr in rng.choice(np.arange(1, n - 1), size=int(rng.integers(1, 4)), replace=False):
            for pr in present:
                pr[fr] = False
    if len(persons) == 2 and rng.random() < 0.3:  # the partner enters late
        present[1][: int(rng.integers(1, 11))] = False
    base_id = 72057594037900000 + int(rng.integers(0, 100000)) * 10
    bodies: list[tuple[str, np.ndarray, np.ndarray]] = []
    fr1 = np.flatnonzero(present[0])
    if len(persons) == 1 and rng.random() < 0.15:  # the performer re-identified under a new bodyID mid-clip
        cut = int(rng.integers(12, len(fr1) - 12 + 1))
        bodies += [(str(base_id), fr1[:cut], persons[0][fr1[:cut]]), (str(base_id + 3), fr1[cut:],
                                                                         persons[0][fr1[cut:]])]
    else:
        bodies.append((str(base_id), fr1, persons[0][fr1]))
    if len(persons) == 2:
        fr2 = np.flatnonzero(present[1])
        bodies.append((str(base_id + 1), fr2, persons[1][fr2]))
    if rng.random() < 0.1:  # a short spurious body (a coat on a chair...) while the performer is visible
        length = int(rng.integers(3, 9))
        a = int(rng.integers(0, len(fr1) - length + 1))
        junk = np.repeat((_REST * 0.6)[None], length, 0) + offset + [0.9, 0.0, 0.5]
        bodies.append((str(base_id + 7), fr1[a : a + length], junk + rng.normal(0, NOISE, junk.shape)))

    # The array preparation must produce: frames where a kept person is present; the person with more motion (sum of
    # per-joint x, y, z variance over their frames: the performer, nearly always) in slot 0, the other in slot 1.
    keep = np.flatnonzero(np.logical_or.reduce(present))
    motion = [float(np.var(p[pr].astype(np.float32).astype(np.float64), axis=0).sum()) for p, pr in
              zip(persons, present)]
    order = sorted(range(len(persons)), key=lambda i: -motion[i])
    expected = np.zeros((3, len(keep), 25, 2), dtype=np.float32)
    for s, i in enumerate(order):
        p, pr = persons[i], present[i]
        expected[:, :, :, s] = np.where(pr[keep, None, None], p[keep], 0.0).transpose(2, 0, 1)
    junk_id = str(base_id + 7)
    bodies = [(b, fr, np.round(xyz, 6) if b == junk_id else xyz) for b, fr, xyz in bodies]
    return SynthClip(name, label, n, bodies, expected)


def clip_names(num_classes: int = 12, per_class: int = 100, seed: int = 0) -> list[tuple[int, str]]:
    """``(label, name)`` of every clip, in generation order; names unique, drawn without replacement."""
    rng = np.random.default_rng([seed, 0x5E7])
    out = []
    for label in range(num_classes):
        combos = rng.choice(17 * 3 * 40 * 2, size=per_class, replace=False)
        for c in combos.tolist():
            s, c = divmod(c, 3 * 40 * 2)
            cam, c = divmod(c, 40 * 2)
            subj, rep = divmod(c, 2)
            out.append((label, f"S{s + 1:03d}C{cam + 1:03d}P{subj + 1:03d}R{rep + 1:03d}A{label + 1:03d}"))
    return out


def _write_chunk(args: tuple) -> int:
    seed, jobs, raw, min_len, max_len = args
    for k, label, name in jobs:
        clip = generate_clip(seed, k, label, name, min_len, max_len)
        text = ntu.format_skeleton(clip.num_frames, clip.bodies)
        p = Path(raw) / f"{name}.skeleton"
        tmp = p.with_suffix(".skeleton.tmp")
        tmp.write_text(text, newline="")
        os.replace(tmp, p)
    return len(jobs)


def generate(raw: str | os.PathLike, num_classes: int = 12, per_class: int = 100, seed: int = 0,
             min_len: int = 40, max_len: int = 100, workers: int | None = None) -> list[Path]:
    """Write the synthetic ``.skeleton`` files into ``raw`` (files already there with the same name are rewritten)."""
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"num_classes must be 1..{len(CLASS_NAMES)}, got {num_classes}")
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    jobs = [(k, label, name) for k, (label, name) in enumerate(clip_names(num_classes, per_class, seed))]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) // 100 or 1))
    chunks = [(seed, jobs[a :: workers * 4], str(raw), min_len, max_len) for a in range(workers * 4)]
    if workers == 1:
        for c in chunks:
            _write_chunk(c)
    else:
        with worker_pool(workers) as pool:
            list(pool.imap_unordered(_write_chunk, chunks))
    return [raw / f"{name}.skeleton" for _, _, name in jobs]


def prepare(out: str | os.PathLike, raw: str | os.PathLike | None = None, num_classes: int = 12,
            per_class: int = 100, seed: int = 0, min_len: int = 40, max_len: int = 100,
            log: Callable[[str], None] = print, run_opts: dict | None = None) -> dict[str, Any]:
    """Generate into ``raw`` (default ``out/raw``) and prepare with the NTU-60 pipeline into the store ``out``.

    A complete store in ``out`` is refused before anything is generated unless ``run_opts["force"]``.
    """
    out = Path(out)
    check_target(out, (run_opts or {}).get("force", False))
    raw = Path(raw) if raw is not None else out / "raw"
    opts = {"num_classes": num_classes, "per_class": per_class, "seed": seed, "min_len": min_len,
            "max_len": max_len, "generator_version": VERSION}
    stamp = raw / "generator.json"  # written before generating ("complete": false) and after (true)
    if not (stamp.is_file() and json.loads(stamp.read_text()) == {**opts, "complete": True}):
        old = sorted(raw.glob("*.skeleton")) if raw.is_dir() else []
        if old and not stamp.is_file():
            raise ValueError(f"{raw} holds .skeleton files the generator did not write; give the synthetic set its "
                             "own --raw directory (default: OUT/raw)")
        for f in old:  # ours, from other options or an interrupted run: the new set replaces them all
            f.unlink()
        atomic_write_json(stamp, {**opts, "complete": False})
        generate(raw, num_classes, per_class, seed, min_len, max_len, workers=(run_opts or {}).get("workers"))
        atomic_write_json(stamp, {**opts, "complete": True})
    p = ntu.plan("ntu60", raw, class_names=CLASS_NAMES[:num_classes], store_dataset="synthetic")
    p.options.update(synthetic=opts)
    p.extra_meta["synthetic"] = opts
    summary = run_plan(p, out, log=log, **(run_opts or {}))
    log(format_summary(summary, "synthetic", out))
    return summary


def default_root() -> Path:
    """``results/data/synthetic`` under the working directory (or ``$SLNL_HOME``; ``slnl.utils.home``), never inside
    the installed package."""
    return resolve_path(Path("results") / "data" / "synthetic")


def ensure_default(root: str | os.PathLike | None = None, **options) -> Path:
    """The built-in synthetic store, generated and prepared on first use (~10 s on 2 cores), reused afterwards.

    ``root`` defaults to ``default_root()`` (``results/data/synthetic`` under the working directory, gitignored).
    The store is reused only if it is complete, of the current store format (it has a content fingerprint) and
    records the same generator options and version; otherwise it is rebuilt in place (``force``: this function owns
    ``root``). Returns the store dir.
    """
    import fcntl  # POSIX only: imported here so that the module itself imports on any system

    root = Path(root) if root is not None else default_root()
    opts = {**DEFAULTS, **options, "generator_version": VERSION}

    def current() -> bool:
        meta = complete_meta(root)
        return bool(meta and meta.get("format") == STORE_FORMAT and meta.get("synthetic") == opts)

    if current():
        return root
    root.mkdir(parents=True, exist_ok=True)
    # Several processes (pytest -n 2, notebooks in parallel) may ask at once: one builds, the others wait and reuse.
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not current():
                gen = {k: v for k, v in opts.items() if k != "generator_version"}
                prepare(root, log=lambda *_: None, run_opts={"progress": False, "force": True}, **gen)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root
