# servegate: every target calls the `servegate` CLI or the project's own tools in .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL ?= minilm
# empty: servegate export's default formats (export/formats.py holds the list)
FORMATS ?=
OUT ?= model_store
STORE ?= model_store
WEIGHTS ?=
# Bring your own model (docs/export.md): a Lightning checkpoint and what loading it needs,
# the task of a Hugging Face folder, torch.hub entrypoint kwargs, fast.ai's trust flag.
CKPT ?=
ALLOW_GLOBALS ?=
INIT_KWARGS ?=
TASK ?=
HUB_KWARGS ?=
TRUST_PICKLE ?=
NAME ?=
# The numbers the archives compute in: fp32 (default), bf16 or fp16 (GPU), for the formats
# that take it (FORMATS=compile; docs/export.md).
PRECISION ?=
# The archives' version (default 1.0): VERSION=2.0 writes NAME_<format>.v2.0.mar beside 1.0's.
VERSION ?=
# The extra a model source needs, installed on first use (export time only).
SOURCE_EXTRA = $(if $(CKPT),lightning,$(if $(filter fastai:%,$(MODEL)),fastai,$(if $(filter hf:%,$(MODEL)),hf)))
# e.g. https://download.pytorch.org/whl/cpu: torch from that index (CPU-only: no CUDA libraries)
TORCH_INDEX ?=
PYTEST_ARGS ?=
STUBS := gateway/grpc/stubs/__init__.py

.PHONY: help install install-dev protos export serve stop demo demo-rollout test test-fast test-deploy lint bench bench-overhead bench-gateway bench-grpc

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "  variables: MODEL=$(MODEL) FORMATS=$(FORMATS) OUT=$(OUT) STORE=$(STORE) WEIGHTS="
	@echo "             CKPT= ALLOW_GLOBALS= INIT_KWARGS= TASK= HUB_KWARGS= TRUST_PICKLE= NAME= VERSION="
	@echo "             PRECISION= (fp32|bf16|fp16, FORMATS=compile)"
	@echo "             TORCH_INDEX=$(TORCH_INDEX) (e.g. https://download.pytorch.org/whl/cpu)"

install: $(VENV)/.installed $(STUBS) ## create .venv with the runtime, generate gRPC stubs (quick when done)

install-dev: install $(VENV)/.installed-dev ## add the test, lint and benchmark tools to .venv

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) torch==2.14.1 torchvision==0.29.1)
	$(BIN)/python -m pip install --quiet -e '.[codegen]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed $(VENV)/.installed-deepspeed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# DeepSpeed's setup imports torch: built in its own isolated environment it would fetch another
# torch (a CUDA build, GBs). Installed against this one; it compiles its ops on first use
# (a C++ compiler and a writable ~/.cache/torch_extensions).
$(VENV)/.installed-deepspeed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --no-build-isolation 'deepspeed>=0.17'
	touch $@

$(STUBS): $(VENV)/.installed gateway/grpc/codegen.py
	$(BIN)/python -m gateway.grpc.codegen

protos: $(VENV)/.installed ## (re)generate gateway/grpc/stubs/ from the .proto files in TorchServe's jar
	$(BIN)/python -m gateway.grpc.codegen

export: install $(if $(SOURCE_EXTRA),$(VENV)/.installed-$(SOURCE_EXTRA)) $(if $(findstring deepspeed_tp,$(FORMATS)),$(VENV)/.installed-deepspeed) ## export MODEL to verified archives in OUT (FORMATS=a,b; default: `servegate export --help`)
	$(BIN)/servegate export $(MODEL) $(if $(FORMATS),--formats $(FORMATS)) --out $(OUT) $(if $(WEIGHTS),--weights $(WEIGHTS)) \
	  $(if $(CKPT),--ckpt $(CKPT)) $(foreach g,$(ALLOW_GLOBALS),--allow-global $(g)) \
	  $(if $(INIT_KWARGS),--init-kwargs '$(INIT_KWARGS)') $(if $(TASK),--task $(TASK)) \
	  $(if $(HUB_KWARGS),--hub-kwargs '$(HUB_KWARGS)') $(if $(TRUST_PICKLE),--trust-pickle) \
	  $(if $(NAME),--name $(NAME)) $(if $(VERSION),--version $(VERSION)) \
	  $(if $(PRECISION),--precision $(PRECISION))

$(VENV)/.installed-hf $(VENV)/.installed-lightning $(VENV)/.installed-fastai: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[$(subst $(VENV)/.installed-,,$@)]'
	touch $@

serve: install ## start TorchServe on the archives in STORE
	$(BIN)/servegate serve --store $(STORE)

stop: install ## stop what `make serve` / `make demo` started (gateway and TorchServe)
	$(BIN)/servegate gateway stop
	$(BIN)/servegate stop

demo: install ## export minilm, serve it behind the gateway (90/10 canary), send traffic
	$(BIN)/servegate demo

demo-rollout: install ## after `make demo`: export minilm 2.0 (ONNX) and roll it out under load
	$(BIN)/servegate demo --rollout $(or $(VERSION),2.0)

FAST := not export and not torchserve and not browser and not slow

test: install-dev ## run the whole test suite (real TorchServe, real Chromium)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)
	$(BIN)/pytest $(PYTEST_ARGS)

# The fast tier runs on every core (pytest-xdist): its tests share no session fixture, and
# most of its time is gateways and CLI subprocesses starting up.
test-fast: install-dev ## tests needing no TorchServe, export or browser (tests/conftest.py)
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)
	$(BIN)/pytest -m "$(FAST)" -n auto $(PYTEST_ARGS)

# Not part of `make test` (about 25 min on a cold machine, root, a Docker engine): run by hand,
# its log kept in deploy/e2e/runs/. E2E_ARGS, e.g. --no-build --reuse-archives --keep.
E2E_ARGS ?=
test-deploy: install-dev ## the compose stack for real: build images, up, traffic, kill TorchServe, down
	@for tool in dockerd docker-compose debootstrap; do command -v $$tool >/dev/null || missing=1; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends docker.io docker-compose debootstrap; fi
	$(BIN)/python -m deploy.e2e $(E2E_ARGS)

lint: install-dev ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install-dev ## CPU suite: formats, overhead, batching, gateway (bench/results/<date>-cpu.*)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.suite

bench-overhead: install-dev ## TorchServe per-request overhead (latency minus handler time) on mlp
	$(BIN)/python -m bench.ts_overhead

bench-gateway: install-dev ## TorchServe direct vs through the gateway on mlp (p50/p99/throughput)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.gateway

bench-grpc: install-dev ## TorchServe's gRPC direct vs gRPC through the gateway on mlp (p50/throughput)
	$(BIN)/python -m bench.grpc
