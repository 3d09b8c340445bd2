"""Results -> the paper's Tables 1–6 (pandas), seed statistics, and figures.

Modules, in the order data flows through them (none imports a later one):

=================  =================================================================================================
``results``        reading result files and run directories (``collect``, ``read_metrics``; metric column names,
                   the final checkpoint ``last.pt``); a k-fold dataset's folds as one column (``fold_means``); the
                   other BN evaluation (``with_bn``)
``stats``          Welch's interval and p-value over seeds, the verdict on an ordering, the smallest difference seeds
                   resolve; Holm's correction over a family of claims, equivalence (TOST), power and seeds needed
``tables``         the paper's tables with ours beside them (per fold on a k-fold dataset), the seeds' resolution
``claims``         the paper's claims tested on our seeds: Welch p, Holm within each family (one table's claims on one
                   column), TOST where the paper says "level", power, the verdicts from the other BN evaluation
``markdown``       tables as markdown, the files one table writes (``write_table``), all claims in one list
``analysis``       analyses of a trained model: frequency gates per class (Eq. 2), non-local affinity (Eq. 8), their
                   means over seeds
``figures``        accuracy per row over seeds, learning curves (small multiples), the claims figure, Fig. 4
``model_figures``  figures of a row's trained models over its seeds: confusion matrix summed, frequency gates and
                   affinity on named joints averaged
``build``          the whole report (``build_report``)
``notebook``       what the notebooks display (``show_table``, ``show_report``)
=================  =================================================================================================

Every public name is importable from ``slnl.report`` itself.
"""
from slnl.report.analysis import (attention_gates, frequency_gates, load_run, map_affinity, mean_affinity, mean_gates,
                                  nonlocal_affinity)
from slnl.report.build import build_report, pick_runs
from slnl.report.figures import (
    accuracy_figure,
    claims_figure,
    fig4,
    fig4_curves,
    learning_curves,
    loss_label,
    parse_pairs,
    save_figure,
)
from slnl.report.model_figures import (
    affinity_figure,
    confusion_figure,
    distinctive_classes,
    frequency_figure,
    frequency_gates_figure,
    skeleton_figure,
)
from slnl.report.markdown import (claims_display, claims_legend, claims_summary, display_frame, table_markdown,
                                  to_markdown, write_table)
from slnl.report.notebook import show_report, show_table
from slnl.report.results import (
    FINAL_CHECKPOINT,
    RESULT_KEYS,
    TEST_LOSS,
    TEST_TOP1,
    TEST_TOP5,
    collect,
    fold_means,
    folds_of,
    read_metrics,
    read_result,
    with_bn,
)
from slnl.report.stats import (
    Holm,
    detectable_difference,
    holm,
    holm_verdicts,
    pooled_sd,
    resolvable_difference,
    seeds_needed,
    tost,
    verdict,
    welch_interval,
    welch_pvalue,
    welch_test,
)
from slnl.report.claims import EQUIVALENCE_CLAIMS, claims_table, equivalence_claims, family_verdicts
from slnl.report.tables import dataset_references, delta_note, paper_table, seed_resolution

__all__ = [
    "accuracy_figure", "claims_summary",
    "FINAL_CHECKPOINT", "RESULT_KEYS", "TEST_LOSS", "TEST_TOP1", "TEST_TOP5",
    "affinity_figure", "attention_gates", "build_report", "claims_display", "claims_table", "collect",
    "confusion_figure", "delta_note", "display_frame", "fig4", "fig4_curves", "frequency_figure", "frequency_gates",
    "frequency_gates_figure", "learning_curves", "load_run", "loss_label", "map_affinity", "nonlocal_affinity",
    "paper_table", "parse_pairs", "pick_runs", "pooled_sd", "read_metrics", "read_result", "resolvable_difference",
    "save_figure", "seed_resolution", "show_report", "show_table", "skeleton_figure", "table_markdown",
    "to_markdown", "verdict", "welch_interval", "write_table",
    "EQUIVALENCE_CLAIMS", "dataset_references", "equivalence_claims",
    "claims_figure", "claims_legend", "distinctive_classes", "family_verdicts", "fold_means", "folds_of",
    "mean_affinity", "mean_gates", "with_bn",
    "Holm", "detectable_difference", "holm", "holm_verdicts", "seeds_needed", "tost", "welch_pvalue", "welch_test",
]
