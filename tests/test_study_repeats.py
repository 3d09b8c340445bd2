"""A committed result of each study repeats on a clean clone.

* The store prepared again from the shared raw files has the fingerprint the result recorded.
* Its committed model (``results/<dataset>/models/``: the final model of the study's first result, written by
  ``slnl export``) scores exactly the committed top-1 and top-5 on that store's test split.
* Training again from the row's spec repeats the run's committed ``metrics.csv``, number for number, over its first
  ``PREFIX`` epochs: losses, rate, training accuracy and steps. The whole run would cost minutes per dataset, more than
  the suite's budget; under the per-epoch schedule the first epochs are the run's own (the rate decays by epoch, the
  data order is a function of the seed and the epoch).

CPU kernels differ between instruction sets (AVX2, AVX-512), and so do the last bits of a result: a machine of
another capability than the run's is skipped, saying so."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from slnl import engine, study
from slnl.data.store import fingerprint
from slnl.engine.evaluation import evaluate
from slnl.study.ledger import recorded_trained_as
from conftest import prepare_shared

REPO = Path(__file__).resolve().parents[1]
RAW = {"msr3d": "msr_action3d", "nwucla": "nw_ucla/all_sqe", "sbu": "sbu"}
PREFIX = 2
TRAINING = ("epoch", "lr", "train_loss", "train_loss_c", "train_loss_p", "train_loss_v", "train_top1", "steps")


def _model_and_result(dataset: str) -> tuple[Path, Path] | None:
    models = sorted(REPO.glob(f"results/{dataset}/models/*.pt"))
    if not models:
        return None
    table = models[0].stem.split("__")[0]
    return models[0], REPO / "results" / dataset / table / (models[0].stem.split("__", 1)[1] + ".json")


@pytest.mark.parametrize("dataset", sorted(RAW))
def test_a_committed_result_of_each_study_repeats(dataset, shared_data, tmp_path_factory, tmp_path):
    found = _model_and_result(dataset)
    if found is None:
        pytest.skip(f"results/{dataset}: no model committed yet")
    model, path = found
    rec = json.loads(path.read_text())
    cap = (rec.get("device") or {}).get("cpu_capability")
    if cap != torch.backends.cpu.get_cpu_capability():
        pytest.skip(f"{path.name} was trained with {cap} kernels, this machine runs "
                    f"{torch.backends.cpu.get_cpu_capability()}: results differ in their last bits")
    _, store, _ = prepare_shared(shared_data, tmp_path_factory, dataset, RAW[dataset])
    assert fingerprint(store) == rec["store_fingerprint"], "the store prepared again holds other data"
    spec = study.spec(rec["table"], rec["row"], rec["split"], rec["seed"],
                      study.Options(dataset=dataset, scale=rec["scale"]), store)
    assert spec.trained_as == recorded_trained_as(rec)

    scored = evaluate(model, data=str(store), batch_size=spec.config.eval_batch_size, device="cpu")
    assert (scored["top1"], scored["top5"]) == (rec["top1"], rec["top5"]), model.name

    engine.fit(spec.config.replace(epochs=PREFIX, out=str(tmp_path / "run"), progress=False, overwrite=True))
    again = pd.read_csv(tmp_path / "run" / "metrics.csv")[list(TRAINING)]
    committed = pd.read_csv(path.with_suffix(".metrics.csv"))[list(TRAINING)].head(PREFIX)
    pd.testing.assert_frame_equal(again, committed, check_exact=True)
