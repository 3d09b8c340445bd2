"""``slnl bench``: throughput, peak memory, FLOPs and MFU of the engine's training step; the device correctness
check; time to reproduce the paper. Each module one concern (arrows = imports; the bench imports the engine and the
recipes, never the other way, and neither the study nor the paper's tables):

    cli ──▶ suites ──▶ measure ──▶ slnl.engine.step   (the step fit() runs: built from a TrainConfig, called as is)
     │        │          ├──▶ flops     FLOPs per part and operator, MFU, datasheet peaks
     │        │          ├──▶ memory    peak memory of a step (CUDA allocator; CPU: resident tensors + VmHWM)
     │        │          └──▶ provenance  software, commit, host, device of every result
     │        └──▶ reports   one line per row; results/bench/README.md (table + kept hand-written history)
     ├──▶ check      the engine's gradient pass on a device against a float64 CPU reference
     └──▶ reproduce  hours per paper table from a measured rate and the runs slnl.study.cost counts

The package imports nothing here, so that ``python -m slnl.bench.measure`` (the fresh process of one isolated
measurement) does not import its own module twice.
"""
