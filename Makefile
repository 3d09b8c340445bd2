# The two commands of the README: `make reproduce` and `make test`. Both bootstrap .venv from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One OpenMP thread per process: on 2 cores, two torch processes spinning 2 threads each run ~15x slower.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

# reproduce: which data, what scale, how many seeds (override: make reproduce DATASET=ntu60 DATA_ROOT=... SCALE=paper)
DATASET   ?= synthetic
DATA_ROOT ?=
SCALE     ?= cpu
SEEDS     ?= 0
DEVICE    ?= auto
KERNEL    := slnl

.PHONY: venv test reproduce kernel bench clean-results lab

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

kernel: $(VENV)/.installed
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (slnl)" >/dev/null

test: kernel
	$(PY) -m pytest -n 2 -q --timeout 900

reproduce: kernel
	$(PY) -m slnl reproduce --dataset $(DATASET) --data-root "$(DATA_ROOT)" --scale $(SCALE) --seeds $(SEEDS) --device $(DEVICE) --kernel $(KERNEL)

bench: $(VENV)/.installed
	$(PY) -m slnl bench --preset cpu --json results/bench/cpu.json

lab: kernel
	$(VENV)/bin/jupyter lab notebooks/
