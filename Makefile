# The two commands of the README: `make reproduce` and `make test`. Both bootstrap .venv from a fresh clone, from
# requirements.lock (every package pinned, the CPU build of torch), so that every run uses the same, tested set.
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
# SEEDS: empty = 0, or at SCALE=study the dataset's declared study (slnl/studies.py)
SEEDS     ?=
DEVICE    ?= auto
# rows trained at once (on the CPU: one single-threaded process each; 2 on the 2-core CI machine)
JOBS      ?= 2
# where results, tables and figures go: results/<dataset>/ (results/synthetic/ for the synthetic stand-in)
RESULTS   ?= results/$(DATASET)

.PHONY: venv test reproduce kernel bench lab

# A changed lock gets a fresh .venv: nothing that the lock no longer lists stays installed.
$(VENV)/.locked: requirements.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	touch $@

# slnl itself, editable (again when its version changes); its dependencies are the lock's (--no-deps: pip resolves
# nothing here).
$(VENV)/.installed: $(VENV)/.locked pyproject.toml slnl/__init__.py
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q --timeout 900

# The notebooks run in the `python3` kernel, i.e. .venv's own interpreter (no kernel to register).
reproduce: $(VENV)/.installed
	$(PY) -m slnl reproduce --dataset $(DATASET) --data-root "$(DATA_ROOT)" --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) --device $(DEVICE) --jobs $(JOBS) --results-dir $(RESULTS)

bench: $(VENV)/.installed
	$(PY) -m slnl bench throughput --preset cpu --json results/bench/cpu.json

# SLNL_HOME: the kernels start in notebooks/, and paths in them mean the same as on the command line here.
# Headless by default (open the URL it prints; over ssh: ssh -L 8888:localhost:8888 HOST); as root (a container)
# Jupyter refuses to start without --allow-root, so it is added then. The server's root is the repository (notebooks/
# and results/ both browsable); it opens on notebooks/. Override: make lab ARGS="--no-browser --port 8899".
ARGS     ?= --no-browser --port 8888
LAB_ARGS ?= $(ARGS)
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: $(VENV)/.installed
	SLNL_HOME=$(CURDIR) $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS) $(LAB_ROOT)

# Optional: registers .venv as the Jupyter kernel "Python (slnl)" for your user, so that a JupyterLab installed
# elsewhere can run the notebooks in it (pick it in the kernel menu). Neither `make test` nor `make reproduce` uses it.
kernel: $(VENV)/.installed
	$(PY) -m ipykernel install --user --name slnl --display-name "Python (slnl)" >/dev/null
