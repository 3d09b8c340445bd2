"""The synthetic set: real .skeleton files that round-trip through `slnl prepare ntu60`; its classes are what the
docstring says they are; deterministic; ensure_default builds once and reuses."""
import json

import numpy as np
import pytest

from slnl.data import ntu, synthetic
from slnl.data.prepare import main
from slnl.data.store import Store

PER_CLASS = 8


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    files = synthetic.generate(d / "raw", num_classes=12, per_class=PER_CLASS, seed=0, workers=1)
    return d, files


def test_round_trip_through_prepare_ntu60(generated):
    d, files = generated
    assert main(["prepare", "ntu60", "--raw", str(d / "raw"), "--out", str(d / "st"), "--workers", "1",
                 "--no-progress"]) == 0
    st = Store(d / "st")
    assert len(st.names) == 12 * PER_CLASS == len(files)
    for k, (label, name) in enumerate(synthetic.clip_names(12, PER_CLASS, 0)):
        clip = synthetic.generate_clip(0, k, label, name)
        i = st.names.index(name)
        T = int(st.num_frames[i])
        assert st.labels[i] == label and T == clip.expected.shape[1]
        # the file holds 6 decimals and the generator's array is those decimals: equal to float32 rounding
        np.testing.assert_array_equal(st.x[i, :, :T], clip.expected)
        assert not st.x[i, :, T:].any()
    # the split protocols apply to the names
    f = [ntu.parse_name(n) for n in st.names]
    assert (st.splits["xsub_train"] == np.array([g["subject"] in ntu.XSUB60_TRAIN for g in f])).all()
    assert (st.splits["xview_train"] == np.array([g["camera"] in (2, 3) for g in f])).all()


def test_kinect_defects_present_and_handled(generated):
    d, _ = generated
    empty_frames = late_partner = spurious = reidentified = 0
    for k, (label, name) in enumerate(synthetic.clip_names(12, PER_CLASS, 0)):
        raw = ntu.read_skeleton(d / "raw" / f"{name}.skeleton")
        _, info = ntu.to_clip(raw)
        empty_frames += info["dropped_empty_frames"] > 0
        spurious += info["dropped_short_bodies"] > 0
        reidentified += label < 4 and len(raw.bodies) - info["dropped_short_bodies"] == 2
        late_partner += label >= 4 and any(len(b.frames) < raw.num_frames - info["dropped_empty_frames"] and
                                           b.frames[0] > 0 for b in raw.bodies if len(b.frames) >= 12)
        assert info["actors"] == (1 if label < 4 else 2)
    assert min(empty_frames, late_partner, spurious, reidentified) > 0, (empty_frames, late_partner, spurious,
                                                                          reidentified)


def test_deterministic_for_a_seed(generated, tmp_path):
    d, _ = generated
    names = synthetic.clip_names(12, PER_CLASS, 0)
    synthetic.generate(tmp_path / "a", num_classes=2, per_class=PER_CLASS, seed=0, workers=1)
    for label, name in names[: 2 * PER_CLASS]:
        assert (tmp_path / "a" / f"{name}.skeleton").read_bytes() == (d / "raw" / f"{name}.skeleton").read_bytes()
    other = synthetic.generate_clip(1, 0, names[0][0], names[0][1]).expected
    assert other.shape != synthetic.generate_clip(0, 0, *names[0]).expected.shape or \
        not np.array_equal(other, synthetic.generate_clip(0, 0, *names[0]).expected)


def _features(clip):
    """Rotation-invariant measurements of what each class factor should control."""
    x = clip.expected.astype(np.float64)
    p1 = x[..., 0]
    hand, ankle = p1[:, :, 11] - p1[:, :, 8], p1[:, :, 14] - p1[:, :, 12]  # right hand - shoulder, left ankle - hip
    vh, va = np.diff(hand, axis=1), np.diff(ankle, axis=1)
    limb = (vh * va).sum(0).mean() / np.sqrt((vh**2).sum(0).mean() * (va**2).sum(0).mean())
    h = hand - hand.mean(1, keepdims=True)
    sig = np.linalg.svd(h, full_matrices=False)[2][0]
    cycles = np.argmax(np.abs(np.fft.rfft(sig * np.hanning(len(sig))))[1:]) + 1
    social = None
    if x[..., 1].any():
        p2 = x[..., 1]
        on = np.abs(p2).sum(axis=(0, 2)) > 0
        ok = on[1:] & on[:-1]
        v2 = np.diff(p2[:, :, 11] - p2[:, :, 8], axis=1)[:, ok]
        social = (vh[:, ok] * v2).sum(0).mean()  # the two face each other: "in phase" hands move opposite ways
    return cycles, limb, social


def test_class_factors_are_what_the_docstring_says():
    names = synthetic.clip_names(12, 10, 0)
    hits = {"freq": [], "limb": [], "social": [], "persons": []}
    for k, (label, name) in enumerate(names):
        clip = synthetic.generate_clip(0, k, label, name)
        cycles, limb, social = _features(clip)
        freq, lp, soc = label % 2, (label // 2) % 2, label // 4
        hits["freq"].append((cycles >= 2) == (freq == 1))
        hits["limb"].append((limb > 0) == (lp == 0))
        hits["persons"].append((social is not None) == (soc > 0))
        if soc:
            hits["social"].append((social < 0) == (soc == 1))
    acc = {k: float(np.mean(v)) for k, v in hits.items()}
    assert acc["persons"] == 1.0 and acc["limb"] > 0.95 and acc["social"] > 0.95, acc
    # frequency is informative but deliberately ambiguous for some clips (overlapping cycle ranges)
    assert 0.75 < acc["freq"] < 1.0, acc


def test_ensure_default_builds_once_and_reuses(tmp_path):
    root = synthetic.ensure_default(tmp_path / "syn", per_class=2, num_classes=3)
    st = Store(root)
    assert st.meta["dataset"] == "synthetic" and st.class_names == synthetic.CLASS_NAMES[:3] and len(st.names) == 6
    assert st.meta["synthetic"]["per_class"] == 2 and st.meta["provenance"]["software"]["numpy"]
    mtime = (root / "x.npy").stat().st_mtime_ns
    assert synthetic.ensure_default(tmp_path / "syn", per_class=2, num_classes=3) == root
    assert (root / "x.npy").stat().st_mtime_ns == mtime  # reused, not rebuilt
    synthetic.ensure_default(tmp_path / "syn", per_class=3, num_classes=3)  # other options: rebuilt
    assert len(Store(root).names) == 9
    assert json.loads((root / "meta.json").read_text())["synthetic"]["per_class"] == 3
