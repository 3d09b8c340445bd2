"""Time to reproduce the paper's tables from a measured training rate (``slnl reproduce --estimate FILE``).

Per table and split: runs × epochs × training clips ÷ throughput. The runs come as input — ``slnl.study.cost``
counts them from the paper's tables and recipes —; the throughput is the fastest training row of the matching
model preset, at the run's batch size if the file has one, among the rows that measured what ``fit()`` runs. An
estimate: training steps only (no evaluation passes, no data stalls), one model's rate for every row (rows differ
in m1, affinity and streams), and a row shared by two tables counts in both.
"""
from __future__ import annotations

from typing import Any

from slnl.bench.measure import fit_runnable

# Training clips per split: NTU RGB+D 60 (Shahroudy et al. 2016, after removing the 302 samples with missing
# skeletons) and Kinetics-skeleton (ST-GCN's release, about 240k).
TRAIN_CLIPS = {("ntu60", "xsub"): 40_320, ("ntu60", "xview"): 37_920, ("kinetics", "default"): 240_000}


def pick_throughput(rows: list[dict[str, Any]], preset: str, batch_size: int | None = None) -> dict[str, Any] | None:
    """The fastest ``fit_runnable`` training row of ``preset`` at ``batch_size``, else at any batch size."""
    cands = [r for r in rows if fit_runnable(r, preset)]
    pool = [r for r in cands if r["config"].get("batch_size") == batch_size] or cands
    return max(pool, key=lambda r: r["train_samples_per_s"]) if pool else None


def time_to_reproduce(rows: list[dict[str, Any]], tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hours per (table, split). ``tables`` items: ``{"table", "dataset": "ntu60" | "kinetics", "split", "runs",
    "epochs", "batch_size"}`` (``slnl.study.cost.paper_tables``)."""
    out = []
    for t in tables:
        preset = "kinetics" if t["dataset"] == "kinetics" else "ntu"
        clips = TRAIN_CLIPS.get((t["dataset"], t["split"]))
        if clips is None:
            raise ValueError(f"time_to_reproduce: no training-clip count for dataset {t['dataset']!r}, "
                             f"split {t['split']!r}; known: {sorted(TRAIN_CLIPS)}")
        row = pick_throughput(rows, preset, t.get("batch_size"))
        epochs = int(t["epochs"])
        entry = {**t, "preset": preset, "epochs": epochs, "clips": clips,
                 "samples": t["runs"] * epochs * clips, "throughput": None, "hours": None, "from_row": None}
        if row is not None:
            entry.update(throughput=row["train_samples_per_s"], from_row=row["name"],
                         hours=entry["samples"] / row["train_samples_per_s"] / 3600,
                         device=row.get("device", {}).get("name"))
        out.append(entry)
    return out


def render_time_to_reproduce(entries: list[dict[str, Any]]) -> str:
    lines = ["| table | dataset | split | runs | epochs | clips | samples | throughput (samples/s) | hours | "
             "from row | device |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    total = 0.0
    for e in entries:
        hours = "–" if e["hours"] is None else f"{e['hours']:.1f}"
        thr = "–" if e["throughput"] is None else f"{e['throughput']:.1f}"
        total += e["hours"] or 0.0
        lines.append(f"| {e['table']} | {e['dataset']} | {e['split']} | {e['runs']} | {e['epochs']} | {e['clips']} | "
                     f"{e['samples']:,} | {thr} | {hours} | {e['from_row'] or 'no matching row'} | "
                     f"{e.get('device') or '–'} |")
    lines.append(f"| **total** | | | | | | | | **{total:.1f}** | | |")
    return "\n".join(lines) + "\n"
