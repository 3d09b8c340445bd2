"""The store's identity and its replacement: content fingerprint, refusal of an existing store (byte for byte),
--force replacing it without a half store, resuming an interrupted preparation; and the package's import graph."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

import slnl.data
from slnl.data import pipeline, store
from slnl.data.errors import StoreChangedError, StoreError, StoreExistsError
from slnl.data.prepare import main, prepare_dataset
from slnl.data.store import Store, check_fingerprint, compute_fingerprint, fingerprint


def write_npz(path, seed=0, N=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 3, 12, 5, 1)).astype(np.float32)
    nf = rng.integers(1, 13, N)
    for i, n in enumerate(nf):
        x[i, :, n:] = 0
    np.savez(path, x=x, labels=rng.integers(0, 3, N), num_frames=nf, names=np.array([f"c{i}" for i in range(N)]),
             class_names=np.array(list("abc")), xsub_train=np.arange(N) % 2 == 0, xsub_test=np.arange(N) % 2 == 1)
    return path


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_fingerprint_is_the_content_hash(tmp_path):
    prepare_dataset("npz", write_npz(tmp_path / "a.npz"), tmp_path / "st", quiet=True)
    meta = json.loads((tmp_path / "st" / "meta.json").read_text())
    fp = fingerprint(tmp_path / "st")
    assert fp == meta["fingerprint"] == compute_fingerprint(tmp_path / "st") and len(fp) == 64
    assert meta["prepared_at"].endswith("+00:00") and meta["format"] == store.STORE_FORMAT == 2
    # the same data prepared again, elsewhere and later: the same fingerprint (dates and paths are not content)
    (tmp_path / "elsewhere").mkdir()
    prepare_dataset("npz", write_npz(tmp_path / "elsewhere" / "a.npz"), tmp_path / "st2", quiet=True)
    assert fingerprint(tmp_path / "st2") == fp
    check_fingerprint(tmp_path / "st", fp, "run r")  # equal: silent
    # one value of one clip changed on disk: the recomputed hash differs from the recorded one
    x = np.load(tmp_path / "st2" / "x.npy", mmap_mode="r+")
    x[3, 0, 0, 0, 0] += 1.0
    x.flush()
    del x
    assert compute_fingerprint(tmp_path / "st2") != fp
    # a relabelled class is other data too
    meta2 = dict(meta, class_names=["a", "b", "z"])
    assert compute_fingerprint(tmp_path / "st", meta2) != fp


def test_a_store_written_from_arrays_is_the_store_prepare_writes(tmp_path):
    """write_store and prepare write the same content, so the same fingerprint; the result opens as a store."""
    prepare_dataset("npz", write_npz(tmp_path / "a.npz"), tmp_path / "st", quiet=True)
    s = Store(tmp_path / "st")
    meta = {k: s.meta[k] for k in ("dataset", "class_names", "names", "splits")}
    out = store.write_store(tmp_path / "w", s.x, s.labels, s.num_frames, s.splits, meta)
    assert fingerprint(out) == compute_fingerprint(out) == fingerprint(tmp_path / "st")
    w = Store(out)
    assert w.meta["format"] == store.STORE_FORMAT and np.array_equal(w.x, s.x) and w.split_names == s.split_names


def test_check_fingerprint_one_line_error(tmp_path):
    prepare_dataset("npz", write_npz(tmp_path / "a.npz"), tmp_path / "st", quiet=True)
    with pytest.raises(StoreChangedError) as e:
        check_fingerprint(tmp_path / "st", "0" * 64, "run results/runs/abc")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "st") in msg and "run results/runs/abc" in msg
    assert json.loads((tmp_path / "st" / "meta.json").read_text())["prepared_at"] in msg
    # a store written before fingerprints existed: a clear error, not a silent recomputation
    meta = json.loads((tmp_path / "st" / "meta.json").read_text())
    del meta["fingerprint"]
    meta["format"] = 1
    (tmp_path / "st" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="no content fingerprint.*re-run `slnl prepare"):
        fingerprint(tmp_path / "st")


def test_existing_store_refused_byte_for_byte_then_forced(tmp_path, capsys):
    a, b = write_npz(tmp_path / "a.npz", seed=0), write_npz(tmp_path / "b.npz", seed=1)
    st = tmp_path / "st"
    assert main(["prepare", "npz", "--raw", str(a), "--out", str(st)]) == 0
    (st / "notes.txt").write_text("mine")  # not part of the store: never touched
    before, fp_a = snapshot(st), fingerprint(st)
    capsys.readouterr()
    for raw in (a, b):  # the same data or other data: refused either way, nothing changes
        assert main(["prepare", "npz", "--raw", str(raw), "--out", str(st)]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "already holds a" in err and "--force" in err
        assert "Traceback" not in err and snapshot(st) == before
    assert main(["prepare", "npz", "--raw", str(b), "--out", str(st), "--force"]) == 0
    assert fingerprint(st) != fp_a and Store(st).x.shape[0] == 8
    assert (st / "notes.txt").read_text() == "mine" and not (st / pipeline.BUILD_DIR).exists()
    np.testing.assert_array_equal(Store(st).x, np.load(b)["x"][:, :, : Store(st).x.shape[2]])


def test_interrupted_install_leaves_no_half_store_and_resumes(tmp_path, monkeypatch):
    a, b = write_npz(tmp_path / "a.npz", seed=0), write_npz(tmp_path / "b.npz", seed=1)
    st = tmp_path / "st"
    prepare_dataset("npz", a, st, quiet=True)
    real = store.os.replace
    moved = []

    def crash_after_two(src, dst):  # the third file moved into the store directory never arrives
        if Path(dst).parent == st:
            if len(moved) == 2:
                raise KeyboardInterrupt
            moved.append(dst)
        return real(src, dst)

    monkeypatch.setattr(store.os, "replace", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("npz", b, st, force=True, quiet=True)
    monkeypatch.setattr(store.os, "replace", real)
    # half the files are new, but there is no meta.json: readers refuse it as unfinished, never read a mixture
    assert [Path(p).name for p in moved] == ["x.npy", "labels.npy"] and not (st / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match="is not a prepared store"):
        Store(st)
    # an unfinished store is not "an existing store": the same command (no --force needed) resumes and installs
    prepare_dataset("npz", b, st, quiet=True)
    assert fingerprint(st) == compute_fingerprint(st) and len(Store(st).names) == 8


def test_read_meta_and_split_names(tmp_path):
    prepare_dataset("npz", write_npz(tmp_path / "a.npz"), tmp_path / "st", quiet=True)
    assert store.read_meta(tmp_path / "st")["dataset"] == "a" and store.split_names(tmp_path / "st") == ["xsub"]
    assert store.split_order(["default", "zz", "xset", "xsub", "aa", "xview"]) == [
        "xsub", "xview", "xset", "default", "aa", "zz"]
    with pytest.raises(FileNotFoundError, match="not a prepared store"):
        store.read_meta(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        store.read_meta(tmp_path / "bad")
    assert store.complete_meta(tmp_path / "bad") is None


# ------------------------------------------------------------------------------------------------- architecture
DATA = Path(slnl.data.__file__).parent


def top_level_imports(path: Path) -> set[str]:
    """The slnl.data modules ``path`` imports at module level (``from . import x``, ``from .x import y``)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slnl.data."):
            out.add(node.module.split(".")[2])
    return out


def test_formats_point_one_way():
    """Formats feed the pipeline and the store, never the reverse (no cycle anywhere: tests/test_imports.py)."""
    mods = {p.stem: top_level_imports(p) for p in DATA.glob("*.py") if p.stem != "__init__"}
    formats = {"ntu", "kinetics", "msr3d", "ctrgcn", "pyskl", "npz", "synthetic"}
    assert not mods["pipeline"] & (formats | {"prepare"}) and not mods["store"] & (formats | {"pipeline", "prepare"})
    for f in formats:
        assert "prepare" not in mods[f], f


def test_imports_inside_functions_carry_a_reason():
    for p in DATA.glob("*.py"):
        lines = p.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        assert "#" in lines[sub.lineno - 1], f"{p.name}:{sub.lineno} import without a reason"


def test_one_vocabulary(tmp_path):
    from slnl.data import prepare

    assert slnl.data.DATASETS is store.DATASETS and slnl.data.FORMATS is prepare.FORMATS
    assert {"ntu60", "ntu120", "kinetics", "msr3d", "npz", "synthetic"} <= set(store.DATASETS) & set(prepare.FORMATS)
    assert {"ctrgcn", "pyskl"} <= set(prepare.FORMATS)
    prepare_dataset("npz", write_npz(tmp_path / "a.npz"), tmp_path / "st", quiet=True)
    with pytest.raises(StoreExistsError):  # the API refuses like the CLI
        prepare_dataset("npz", tmp_path / "a.npz", tmp_path / "st", quiet=True)
