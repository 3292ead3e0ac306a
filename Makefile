# The two commands: `make demo` and `make test`. Both set everything up first (scripts/setup_env.sh).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

# DDS discovery stays on this machine; ament_index finds the package in the venv.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(CURDIR)/$(VENV)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH),)
export SDL_VIDEODRIVER := offscreen
export MPLBACKEND := Agg

# pytest-xdist workers: one per core, at most 4.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: setup demo test test-fast lint bench bench-drive soak weights clean help gpu-check gpu-wheels

help:
	@echo "make test    set up .venv and run the test suite"
	@echo "make bench   run the benchmarks (JSON under bench/results/)"
	@echo "make gpu-check  on a CUDA machine: GPU tests + bench gpu (tiny, Qwen2.5-VL-3B shapes) → bench/results/gpu/"
	@echo "make bench-drive  how the shipped planner drives vs constant velocity and the expert → bench/results/drive.json"
	@echo "make soak    10-minute load/soak of planner_node (30 Hz 1280x720 camera) → bench/results/soak.json"
	@echo "make weights train the embedded default checkpoint (models/default) from config/train_default.yaml"
	@echo "make lint    ruff check"
	@echo "make demo    set up .venv and run the closed-loop demo (sim_node + planner_node over DDS) → runs/demo"

setup:
	@PYTHON=$(PYTHON) bash scripts/setup_env.sh

demo: setup
	$(VENV)/bin/spanvla demo --out runs/demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup

test-fast: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -m "not slow"

bench: setup
	$(VENV)/bin/spanvla bench scorer --out bench/results/scorer.json
	$(VENV)/bin/spanvla bench model --out bench/results/model.json
	$(VENV)/bin/spanvla bench camera --out bench/results/camera.json
	$(VENV)/bin/spanvla bench runtime --out bench/results/runtime.json
	$(VENV)/bin/spanvla bench replay --out bench/results/replay.json
	$(VENV)/bin/spanvla bench gpu --preset tiny --device cpu --out bench/results/gpu_tiny_cpu.json

bench-drive: setup
	$(VENV)/bin/spanvla bench drive --out bench/results/drive.json $(DRIVE_ARGS)

soak: setup
	$(VENV)/bin/spanvla bench soak --camera-qos reliable --out bench/results/soak.json $(SOAK_ARGS)

weights: setup
	$(VENV)/bin/spanvla train recipe --config config/train_default.yaml --out models/default

lint: setup
	$(PY) -m pip install -q ruff==0.17.5
	$(VENV)/bin/ruff check spanvla_ros test bench export

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs

# The prepared GPU check (GPU tests + bench gpu for both presets, ≤ 5 min) on a machine with CUDA PyTorch.
gpu-check:
	bash bench/gpu_check.sh

# Wheels for a GPU machine without PyPI: make gpu-wheels PYTHON_VERSION=3.12
gpu-wheels: setup
	bash scripts/gpu_wheels.sh $(PYTHON_VERSION)
