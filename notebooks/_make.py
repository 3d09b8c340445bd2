"""Writes the notebooks of this folder (table1 … table6, fig4, report) so that they stay consistent.

Run ``python notebooks/_make.py`` after changing this file; the notebooks are committed without outputs (a test
checks). Each notebook is: a title, ONE cell tagged ``parameters`` (papermill) between the two cells of the
misspelled-parameter guard (``slnl.notebook_params``: papermill only warns about an unknown name and would run every
row), a cell deriving values from the parameters, one call into ``slnl``, and a cell showing the result. Everything
else lives in the package.

The kernel is ``python3``, papermill's default and the one every environment with ipykernel has: it runs the
interpreter that runs papermill (``slnl sweep``/``reproduce`` run papermill with their own interpreter).
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's slnl, also when slnl is not installed

from slnl.data.store import DATASETS  # noqa: E402 - needs the path above
from slnl.notebook_params import parameter_names  # noqa: E402
from slnl.recipes import SCALES  # noqa: E402

# ipykernel's own kernel: the name papermill uses by default and every environment with ipykernel provides.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SNAPSHOT = "_defined_before_parameters"

TABLE_INTRO = {
    1: "Table 1: SLnL-rFA against published methods on NTU RGB+D (CS/CV top-1). Only our row is trained; the other "
       "rows are the numbers the paper quotes. Our settings per split are Table 6's adopted rows (M1=5 on CS, M1=3 "
       "on CV) with SMFL(2, 0.4) / SMFL(2, 0.6).",
    2: "Table 2: SLnL-rFA on Kinetics-skeleton (top-1/top-5). Only our row is trained. On any data other than "
       "Kinetics (the default synthetic set included) the run is a *stand-in* and the table says so.",
    3: "Table 3: transform networks (§3.1) on Baseline1 — local blocks only, CE loss, no frequency attention.",
    4: "Table 4: loss functions (§3.4) on Baseline2 — CS-T, local blocks only, no frequency attention.",
    5: "Table 5: frequency attention variants (§3.2) on Baseline3 — CS-T + SMFL, local blocks only.",
    6: "Table 6: affinity fields (§3.3) on Baseline4 — CS-T + SMFL + rFA; M1 SLnL blocks then M2 = 6 − M1 local "
       "blocks. `-p M1 3` runs exactly the SLnL (M1=3, M2=3) row.",
}

PARAMS = f'''\
rows = None  # None: every runnable row of the table; or slugs, e.g. "cs-t,c-t" (see slnl.experiments.table)
dataset = "synthetic"  # {" | ".join(DATASETS)}
data_root = None  # prepared store directory (`slnl prepare ...`); None + synthetic: built-in set, made on first use
split = None  # None: the dataset's splits that the paper reports ("CS,CV" on NTU-format data); or e.g. "CS"
scale = "cpu"  # {" | ".join(SCALES)} (slnl.recipes; study: the recipe selected for the dataset)
epochs = None  # None: the scale's default
batch_size = None  # None: the scale's default
seeds = "0"  # "0" or "0,1,2" (several seeds give the report a seed-to-seed spread)
device = "auto"  # auto | cpu | cuda | cuda:N
results_dir = None  # None: results/<dataset>; result files go to <results_dir>/<table>/, runs to <results_dir>/runs/
max_steps_per_epoch = None  # cap on optimiser steps per epoch (tiny smoke runs)
overwrite = False  # re-run rows whose result file exists
'''

TABLE6_PARAMS = '''\
M1 = None  # Table 6 only: run the SLnL row with this many SLnL blocks (0: the Local row)
affinity = None  # Table 6 only: Local | tSLnL | sSLnL | SLnL (with M1: that row; alone: all rows of that kind)
'''


def guarded_parameters(params: str, notebook: str) -> list[nbformat.NotebookNode]:
    """The parameters cell between the two cells of the unknown-parameter guard (see slnl.notebook_params): a
    snapshot of the names defined before it, and the check after papermill's injected cell (which papermill puts
    right after the parameters cell)."""
    known = ", ".join(f'"{k}"' for k in parameter_names(params))
    call = textwrap.fill(f"check_parameters(globals(), {SNAPSHOT}, known=[{known}], notebook=\"{notebook}\")",
                         width=116, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    return [
        new_code_cell("from slnl.notebook_params import check_parameters, short_user_errors\n\n"
                      "short_user_errors()  # a bad input shows as its one line (%tb: the frames)\n"
                      f"{SNAPSHOT} = set(globals())  # what the check below leaves out"),
        new_code_cell(params, metadata={"tags": ["parameters"]}),
        new_code_cell("# papermill only warns about a parameter this notebook does not take and would run on with the\n"
                      "# defaults (every row of a table): stop here instead, naming the parameters it knows.\n" + call),
    ]


def table_notebook(n: int) -> nbformat.NotebookNode:
    name = f"table{n}"
    extra = n == 6
    derive = (
        "from slnl import experiments, report, study\n"
        "from slnl.utils import default_results_dir\n\n"
        f'TABLE = experiments.table("{name}")\n'
        "data_root = data_root or None  # papermill -p data_root \"\" means the default\n"
        "results_dir = results_dir or default_results_dir(dataset)  # results/<dataset>\n"
        "run_rows = experiments.rows(TABLE, rows"
        + (", m1=M1, affinity=affinity" if extra else "") + ")\n"
        "print(f\"{TABLE.name}: {TABLE.title}\\nrows: {', '.join(r.slug for r in run_rows)}\\n"
        "dataset: {dataset} ({data_root or 'built-in'}), scale: {scale}, seeds: {seeds}\")"
    )
    run = (
        "records = study.run_table(\n"
        "    TABLE, run_rows, dataset=dataset, data_root=data_root, split=split, scale=scale, epochs=epochs,\n"
        "    batch_size=batch_size, seeds=seeds, device=device, results_dir=results_dir,\n"
        "    max_steps_per_epoch=max_steps_per_epoch, overwrite=overwrite,\n"
        ")"
    )
    show = "view = report.show_table(TABLE, results_dir, dataset=dataset, scale=scale)"
    cells = [
        new_markdown_cell(
            f"# Table {n}\n\n{TABLE_INTRO[n]}\n\n"
            "Run from the command line with papermill, e.g.\n\n"
            f"    papermill notebooks/{name}.ipynb out.ipynb -p scale cpu -p seeds 0,1,2"
            + (" -p M1 3" if extra else "") + "\n\n"
            "or every row as its own execution (one per GPU): `slnl sweep " + name + " --gpus 0,1`.\n"
            "Rows whose result file exists are skipped (`-p overwrite True` re-runs them)."
        ),
        *guarded_parameters(PARAMS + (TABLE6_PARAMS if extra else ""), f"{name}.ipynb"),
        new_code_cell(derive),
        new_code_cell(run),
        new_markdown_cell("Ours beside the paper's numbers, the paper's claimed improvements checked against "
                          "seed-to-seed spread, and the learning curves:"),
        new_code_cell(show),
    ]
    return _notebook(cells)


def fig4_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Fig. 4: the soft-margin loss family\n\n"
            "CE, FL (Eq. 18), SM (Eq. 13), SMCE (Eq. 14) and SMFL (Eq. 19) as functions of the probability of the "
            "ground-truth class $p_t$, for chosen (γ, m) pairs, computed by `slnl.losses`."),
        *guarded_parameters(
            'pairs = "2,0.4;2,0.6;0,0.4"  # (gamma, m) pairs separated by ";"\n'
            'results_dir = "results/synthetic"  # the figure goes to <results_dir>/figures/fig4.png\n', "fig4.ipynb"),
        new_code_cell("from slnl import report\nfrom slnl.utils import resolve_path\n\n"
                      "# a relative results_dir is relative to the working directory (or $SLNL_HOME), as in `slnl`\n"
                      'path = resolve_path(results_dir) / "figures" / "fig4.png"'),
        new_code_cell("fig, curves = report.fig4(pairs, path=path)\nfig"),
    ]
    return _notebook(cells)


def report_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Report: Tables 1–6 and figures\n\n"
            "Collects every result file under `results_dir` into the paper's tables (ours beside the paper's, mean ± "
            "std over seeds, the paper's claimed improvements against seed-to-seed spread) and draws the figures: "
            "learning curves, confusion matrix, what the frequency attention learned per class, and the non-local "
            "affinities on the skeleton. Writes `tables/` and `figures/` under `results_dir`."),
        *guarded_parameters(
            'dataset = "synthetic"  # whose results: the default results_dir is results/<dataset>\n'
            'results_dir = None  # None: results/<dataset>\n'
            'tables = "all"  # "all" or e.g. "table3,table6"\n', "report.ipynb"),
        new_code_cell("from slnl import report\nfrom slnl.utils import default_results_dir\n\n"
                      "results_dir = results_dir or default_results_dir(dataset)  # results/<dataset>"),
        new_code_cell("built = report.build_report(results_dir, tables=tables)"),
        new_code_cell("report.show_report(built)"),
    ]
    return _notebook(cells)


def _notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    # Stable cell ids: regenerating the notebooks gives byte-identical files (clean diffs).
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i}"
    nbformat.validate(nb)
    return nb


def all_notebooks() -> dict[str, nbformat.NotebookNode]:
    out = {f"table{n}.ipynb": table_notebook(n) for n in range(1, 7)}
    out["fig4.ipynb"] = fig4_notebook()
    out["report.ipynb"] = report_notebook()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for name, nb in all_notebooks().items():
        path = HERE / name
        text = nbformat.writes(nb) + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"notebooks out of date with _make.py: {', '.join(stale)} (run python notebooks/_make.py)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
