"""The study on the datasets beyond NTU's shape: a store whose only split is CV (NW-UCLA) takes CV's adopted settings,
a store with folds (SBU) runs a row on every fold, and a store prepared from any .npz file runs as dataset npz."""
import json

import numpy as np
import pytest

from slnl import experiments as ex
from slnl import study
from slnl.data.store import write_store
from conftest import prepare_shared


def _store(root, splits: dict[str, np.ndarray], dataset: str = "npz", source_format: str | None = None,
           N: int = 30, V: int = 5, M: int = 1):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 3, 20, V, M)).astype(np.float32)
    meta = {"dataset": dataset, "class_names": ["a", "b", "c"], "names": [f"s{i}" for i in range(N)],
            "splits": sorted({k.rsplit("_", 1)[0] for k in splits})}
    if source_format:
        meta["source_format"] = source_format
    return write_store(root, x, np.arange(N) % 3, np.full(N, 20), splits, meta)


def _side(N: int, test_every: int, offset: int = 0):
    test = (np.arange(N) + offset) % test_every == 0
    return ~test, test


def test_default_splits_are_every_fold_or_the_papers_columns_never_a_validation_split(tmp_path):
    folds = {}
    for k in range(1, 6):
        tr, te = _side(30, 5, k)
        folds.update({f"fold{k}_train": tr, f"fold{k}_test": te})
    assert study.default_splits(ex.TABLE1, _store(tmp_path / "sbu", folds)) == [f"fold{k}" for k in range(1, 6)]
    tr, te = _side(30, 3)
    cv_only = _store(tmp_path / "ucla", {"xview_train": tr, "xview_test": te})
    assert study.default_splits(ex.TABLE6, cv_only) == ["CV"]
    val_tr, val_te = tr & (np.arange(30) < 15), tr & (np.arange(30) >= 15)
    msr = _store(tmp_path / "msr", {"xsub_train": tr, "xsub_test": te, "xsub-val_train": val_tr,
                                    "xsub-val_test": val_te})
    assert study.default_splits(ex.TABLE1, msr) == ["CS"]
    assert study.table_splits(ex.TABLE1, msr, "xsub-val") == ["xsub-val"]  # asked for by name: taken


def test_any_npz_store_runs_as_dataset_npz_and_the_error_says_so(tmp_path):
    tr, te = _side(30, 3)
    mine = _store(tmp_path / "mine", {"xsub_train": tr, "xsub_test": te}, dataset="mine", source_format="npz")
    assert study.resolve_store("npz", mine) == mine
    with pytest.raises(ValueError, match="dataset 'npz'"):
        study.resolve_store("mine", mine)
    with pytest.raises(ValueError, match="holds a 'mine' store.*pass dataset 'npz'"):
        study.resolve_store("msr3d", mine)
    other = _store(tmp_path / "ntu", {"xsub_train": tr, "xsub_test": te}, dataset="ntu60", source_format="ntu60")
    with pytest.raises(ValueError, match="not prepared from an .npz file.*pass dataset 'ntu60'"):
        study.resolve_store("npz", other)
    (rec,) = study.run_table("table3", "cs-t", dataset="npz", data_root=str(mine), split="CS", epochs=1,
                             max_steps_per_epoch=1, results_dir=tmp_path / "res", log=lambda *_: None)
    assert rec["dataset"] == "npz" and 0 <= rec["top1"] <= 1


@pytest.fixture(scope="module")
def ucla(shared_data, tmp_path_factory):
    return prepare_shared(shared_data, tmp_path_factory, "nwucla", "nw_ucla/all_sqe")[1]


@pytest.fixture(scope="module")
def sbu(shared_data, tmp_path_factory):
    return prepare_shared(shared_data, tmp_path_factory, "sbu", "sbu")[1]


def test_nwucla_runs_table1_on_cv_with_cvs_adopted_settings(ucla, tmp_path):
    (rec,) = study.run_table("table1", "slnl-rfa", dataset="nwucla", data_root=str(ucla), scale="small", epochs=1,
                             max_steps_per_epoch=2, results_dir=tmp_path, log=lambda *_: None)
    assert rec["split"] == "CV" and rec["fit_config"]["split"] == "xview"
    adopted = ex.adopted("CV")
    assert (rec["fit_config"]["m"], rec["fit_config"]["model"]["m1"]) == (adopted["m"], adopted["m1"]) == (0.6, 3)
    result = json.loads((tmp_path / "runs" / "table1" / "slnl-rfa__CV__seed0" / "result.json").read_text())
    assert result["n_test"] == 464 and result["n_train"] == 1020


def test_sbu_runs_a_row_on_every_fold(sbu, tmp_path):
    recs = study.run_table("table1", "slnl-rfa", dataset="sbu", data_root=str(sbu), scale="small", epochs=1,
                           max_steps_per_epoch=2, results_dir=tmp_path, log=lambda *_: None)
    assert [r["split"] for r in recs] == [f"fold{k}" for k in range(1, 6)]
    results = [json.loads((tmp_path / "runs" / "table1" / f"slnl-rfa__fold{k}__seed0" / "result.json").read_text())
               for k in range(1, 6)]
    assert [r["n_test"] for r in results] == [55, 52, 56, 54, 65]
    assert {r["model_config"]["num_persons"] for r in results} == {2}  # both actors reach the model
