# blendkit: the front door. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

DEMO_DATA ?= data/demo
DEMO_SHARDS ?= shards/demo
WORKERS ?= 2
CONFIG ?= tiny
MODEL ?= c2
SHARDS ?= $(DEMO_SHARDS)/train
ARGS ?=
RUN ?= runs/$(MODEL)-$(CONFIG)
STEPS ?=

.DEFAULT_GOAL := help
.PHONY: help install chromium test lint demo demo-shards demo-c2 demo-c3 reproduce-tiny bench params \
	train eval spread device-wheels bench-gpu

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-15s %s\n",$$1,$$2}'

# measured: the install peaked at 7.7 GB in a fresh clone (torch's CUDA wheels), leaving 5.9 GB
INSTALL_PEAK_GB := 8

$(STAMP): pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	[ "$$free" -ge $(INSTALL_PEAK_GB) ] || echo "warning: $$free GB free on this disk;" \
		"the install needs about $(INSTALL_PEAK_GB) GB at its peak (torch's CUDA wheels)" >&2
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (fast when already done)

# the browser tests (tests/test_pages_browser.py) drive Debian's chromium; they fail without it
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

chromium: ## install Debian's chromium (for the browser tests) when it is missing
	@command -v chromium >/dev/null || { \
		echo "chromium is missing: installing Debian's package for the browser tests"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }
	@command -v chromium >/dev/null

test: install chromium ## run the test suite (installs chromium when missing)
	$(BIN)/python -m pytest tests

lint: install ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# 512 training blends: on 160, tiny C2 (then n = 2) ranged 0.65-0.76x the identity on transparent
# blends over training seeds and demo-data seeds; on 512, 0.63-0.77x; with n = 4, 0.56-0.64x on 512
# (README, "How much the demo's C2 depends").
# tiny's steps are counted for this many (trainer.config.TINY_SCHEDULE_BLENDS, tests/test_schedule.py)
DEMO_TRAIN_BLENDS ?= 512

demo-shards: install ## demo data -> train/validate shards -> inspect --verify --render --html
	$(BIN)/blendkit demo-data $(DEMO_DATA)
	$(BIN)/blendkit make-shards $(DEMO_DATA) --out $(DEMO_SHARDS)/train \
		--annotations $(DEMO_DATA)/annotations/train.csv --split train \
		--num-samples $(DEMO_TRAIN_BLENDS) --samples-per-shard 16 --workers $(WORKERS)
	$(BIN)/blendkit make-shards $(DEMO_DATA) --out $(DEMO_SHARDS)/validate \
		--annotations $(DEMO_DATA)/annotations/validate.csv --split validate \
		--num-samples 48 --samples-per-shard 16 --workers $(WORKERS) --seed 1
	$(BIN)/blendkit inspect $(DEMO_SHARDS)/train --verify --render $(DEMO_SHARDS)/train/contact_sheet.png \
		--html $(DEMO_SHARDS)/train-page

DEMO_RUNS ?= runs/demo
# steps of each demo run: the tiny preset's own (900) unless set
DEMO_STEPS ?=

demo: demo-shards ## the main job end to end: shards, tiny C2 and C3 training, eval report
	$(MAKE) --no-print-directory -j2 demo-c2 demo-c3
	$(BIN)/blendkit-eval eval $(DEMO_RUNS)/c2 $(DEMO_RUNS)/c3_internal \
		--shards $(DEMO_SHARDS)/validate --out $(DEMO_RUNS)/eval --offsets 0,0.64,1.28
	@echo "report: $(DEMO_RUNS)/eval/report.md"

# the two demo runs train side by side, one core each
demo-c2:
	$(BIN)/blendkit-train train --config tiny --shards $(DEMO_SHARDS)/train --run $(DEMO_RUNS)/c2 \
		--model c2 $(if $(DEMO_STEPS),--steps $(DEMO_STEPS)) val_shards=$(DEMO_SHARDS)/validate progress=false

demo-c3:
	$(BIN)/blendkit-train train --config tiny --shards $(DEMO_SHARDS)/train \
		--run $(DEMO_RUNS)/c3_internal --model c3_internal $(if $(DEMO_STEPS),--steps $(DEMO_STEPS)) \
		data.require_audio=true val_shards=$(DEMO_SHARDS)/validate progress=false

REPRO ?= runs/reproduce-tiny
SEEDS ?= 0,1
# an ablation: REPRO_MODELS=c2,c3_internal REPRO_SET="model.mask_rescale=true" REPRO=runs/ablation
REPRO_MODELS ?=
REPRO_SET ?=

# the demo shards, made once: demo-shards rewrites the demo videos, which makes every shard again
$(DEMO_SHARDS)/validate/manifest.parquet:
	$(MAKE) --no-print-directory demo-shards

reproduce-tiny: install $(DEMO_SHARDS)/validate/manifest.parquet ## Tables 1-2 in miniature: six tiny models x SEEDS (0,1) on the demo shards [REPRO_SET, REPRO_MODELS]; rerun resumes
	$(BIN)/python -m trainer.reproduce --train $(DEMO_SHARDS)/train --val $(DEMO_SHARDS)/validate \
		--out $(REPRO) --seeds $(SEEDS) $(if $(STEPS),--steps $(STEPS)) \
		$(if $(REPRO_MODELS),--models $(REPRO_MODELS)) $(foreach s,$(REPRO_SET),--set $(s))

SPREAD_OUT ?= runs/spread
SPREAD_ARGS ?= --data-seeds 0,1,2 --blends 512,1024

spread: install ## tiny C2 on demo shard sets of other data seeds and sizes -> SPREAD_OUT/spread.md (rerun resumes)
	$(BIN)/python -m trainer.spread --out $(SPREAD_OUT) $(SPREAD_ARGS)

train: install ## train: make train CONFIG=tiny SHARDS=DIR RUN=DIR [MODEL=c2] [STEPS=N] [ARGS="k=v ..."]
	$(BIN)/blendkit-train train --config $(CONFIG) --shards $(SHARDS) --run $(RUN) --model $(MODEL) \
		$(if $(STEPS),--steps $(STEPS)) $(ARGS)

eval: install ## evaluate: make eval RUN="DIR [DIR...]" SHARDS=DIR -> RUN/eval/report.md
	$(BIN)/blendkit-eval eval $(RUN) --shards $(SHARDS) $(ARGS)

params: install ## per-model cost at paper size (params, GFLOP, saved MiB per sample) and what GPUs make of it
	$(BIN)/python -m trainer.params

bench: install ## benchmarks -> BENCHMARKS.md
	$(BIN)/python -m bench --out BENCHMARKS.md

# A GPU host without a package registry: `make device-wheels` here (connected), carry .whl/ there,
# then `make bench-gpu` there (its python3 holds torch with CUDA; no .venv). docs/scale.md says how.
WHEELS ?= .whl
GPU_OUT ?= runs/bench-gpu
GPU_BUDGET ?= 540
GPU_PARTS ?=
GPU_PY ?= $(shell test -x $(BIN)/python && echo $(BIN)/python || echo python3)

device-wheels: install ## download the wheels a GPU host lacks (PyAV, webdataset, deflate...) into .whl/
	$(BIN)/python -m bench.wheels --dest $(WHEELS)

bench-gpu: ## on a GPU host: paper-size steps, bf16 check, loader, paper preset end to end (<10 min) -> BENCHMARKS.md, GPU_OUT
	@if ls $(WHEELS)/*.whl >/dev/null 2>&1; then \
		$(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
			--target /tmp/site $(WHEELS)/*.whl; fi
	PYTHONPATH=/tmp/site:$(CURDIR) $(GPU_PY) -m bench.gpu --out-dir $(GPU_OUT) --budget $(GPU_BUDGET) \
		$(if $(GPU_PARTS),--parts $(GPU_PARTS))
