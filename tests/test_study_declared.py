"""The declared plan of each study: what `make reproduce DATASET=<dataset> SCALE=study` runs, and what the committed
results may hold."""
import json
from pathlib import Path

from slnl import experiments as ex
from slnl import sweep
from slnl.data import msr3d
from slnl.studies import STUDIES, planned
from conftest import prepare_shared

REPO = Path(__file__).resolve().parents[1]


def test_every_committed_study_result_is_in_its_declared_plan():
    """A study commits its runs as they finish: each one is a (table, row, split, seed) its protocol declared."""
    for dataset in STUDIES:
        plan = planned(dataset)
        for f in sorted(REPO.glob(f"results/{dataset}/table*/*__*__seed*.json")):
            rec = json.loads(f.read_text())
            split = rec["split"] if rec["split"] in msr3d.LIE_SPLITS or rec["split"].startswith("fold") \
                else ex.split_label(rec["split"])
            key = (rec["table"], split, int(rec["seed"]))
            assert (key[0], rec["row"], *key[1:]) in plan or (key[0], None, *key[1:]) in plan, f


def test_every_declared_row_runs_on_a_split_its_dataset_has():
    for dataset, steps in STUDIES.items():
        for st in steps:
            assert ex.rows(st.table, list(st.rows) if st.rows else None), (dataset, st)
            assert st.seeds and len(set(st.seeds)) == len(st.seeds) and min(st.seeds) >= 0
    assert {s.splits for s in STUDIES["msr3d"] if s.table == "table1"} == {("CS",), msr3d.LIE_SPLITS}


def test_reproduce_at_the_study_scale_runs_the_declared_plan(shared_data, tmp_path_factory, tmp_path):
    """`slnl reproduce --dataset sbu --scale study` plans one task per declared row with its step's folds and seeds,
    in the declared order; the table notebooks show the declared rows; explicit seeds turn the plan off."""
    _, store, _ = prepare_shared(shared_data, tmp_path_factory, "sbu", "sbu")
    plan = sweep.plan_reproduce("sbu", str(store), "study", results_dir=str(tmp_path / "r"), log=lambda *_: None)
    got = [(t.table, t.params["rows"], t.params["split"], t.params["seeds"]) for t in plan.rows]
    folds = ",".join(f"fold{k}" for k in range(1, 6))
    assert got == [("table1", "slnl-rfa", folds, "0,1"), ("table6", "local", folds, "0,1"),
                   ("table6", "slnl-5", folds, "0,1")]
    assert [(t.table, t.params["rows"]) for t in plan.tables] == [("table1", None), ("table6", "local,slnl-5")]
    plain = sweep.plan_reproduce("sbu", str(store), "study", seeds="0", tables=["table6"],
                                 results_dir=str(tmp_path / "r"), log=lambda *_: None)
    assert len(plain.rows) == len(ex.rows("table6")) and {t.params["seeds"] for t in plain.rows} == {"0"}


def test_a_table_in_two_steps_keeps_both_executed_notebooks(shared_data, tmp_path_factory, tmp_path):
    """MSR Action3D's Table 1 runs on xsub and on the ten subject splits: two executions of the same row, whose
    executed notebooks go to two files."""
    _, store, _ = prepare_shared(shared_data, tmp_path_factory, "msr3d", "msr_action3d")
    plan = sweep.plan_reproduce("msr3d", str(store), "study", results_dir=str(tmp_path / "r"), log=lambda *_: None)
    first, second = [t for t in plan.rows if t.table == "table1"]
    assert (first.params["split"], second.params["split"]) == ("CS", ",".join(msr3d.LIE_SPLITS))
    assert first.dst.name == "slnl-rfa.ipynb" and second.dst.name == "slnl-rfa__lie1-lie10.ipynb"

