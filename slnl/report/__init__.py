"""Results -> the paper's Tables 1–6 (pandas), seed statistics, and figures.

Modules, in the order data flows through them (none imports a later one):

==============  ====================================================================================================
``results``     reading result files and run directories (``collect``, ``read_metrics``; metric column names,
                the final checkpoint ``last.pt``)
``stats``       Welch's interval and p-value over seeds, the verdict on an ordering, the smallest difference seeds
                resolve; Holm's correction over a family of claims, equivalence (TOST), power and seeds needed
``tables``      the paper's tables with ours beside them, the claims tested on our seeds, the seeds' resolution
``markdown``    tables as markdown, the files one table writes (``write_table``), all claims in one list
``analysis``    analyses of a trained model: frequency gates per class (Eq. 2), non-local affinity (Eq. 8)
``figures``     accuracy per row over seeds, learning curves, Fig. 4, confusion matrix, frequency gates, affinity
                on the skeleton
``build``       the whole report (``build_report``)
``notebook``    what the notebooks display (``show_table``, ``show_report``)
==============  ====================================================================================================

Every public name is importable from ``slnl.report`` itself.
"""
from slnl.report.analysis import attention_gates, frequency_gates, load_run, map_affinity, nonlocal_affinity
from slnl.report.build import build_report, pick_run
from slnl.report.figures import (
    accuracy_figure,
    affinity_figure,
    confusion_figure,
    fig4,
    fig4_curves,
    frequency_figure,
    frequency_gates_figure,
    learning_curves,
    loss_label,
    parse_pairs,
    save_figure,
    skeleton_figure,
)
from slnl.report.markdown import claims_display, claims_summary, display_frame, table_markdown, to_markdown, write_table
from slnl.report.notebook import show_report, show_table
from slnl.report.results import (
    FINAL_CHECKPOINT,
    RESULT_KEYS,
    TEST_LOSS,
    TEST_TOP1,
    TEST_TOP5,
    collect,
    read_metrics,
    read_result,
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
from slnl.report.tables import claims_table, delta_note, paper_table, seed_resolution

__all__ = [
    "accuracy_figure", "claims_summary",
    "FINAL_CHECKPOINT", "RESULT_KEYS", "TEST_LOSS", "TEST_TOP1", "TEST_TOP5",
    "affinity_figure", "attention_gates", "build_report", "claims_display", "claims_table", "collect",
    "confusion_figure", "delta_note", "display_frame", "fig4", "fig4_curves", "frequency_figure", "frequency_gates",
    "frequency_gates_figure", "learning_curves", "load_run", "loss_label", "map_affinity", "nonlocal_affinity",
    "paper_table", "parse_pairs", "pick_run", "pooled_sd", "read_metrics", "read_result", "resolvable_difference",
    "save_figure", "seed_resolution", "show_report", "show_table", "skeleton_figure", "table_markdown",
    "to_markdown", "verdict", "welch_interval", "write_table",
    "Holm", "detectable_difference", "holm", "holm_verdicts", "seeds_needed", "tost", "welch_pvalue", "welch_test",
]
