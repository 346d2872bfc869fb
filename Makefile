# servegate: every target calls the `servegate` CLI or the project's own tools in .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL ?= minilm
FORMATS ?= torchscript,aoti,onnx
OUT ?= model_store
STORE ?= model_store
WEIGHTS ?=
PYTEST_ARGS ?=

.PHONY: help install export serve stop demo test lint bench-overhead bench-gateway

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: MODEL=$(MODEL) FORMATS=$(FORMATS) OUT=$(OUT) STORE=$(STORE) WEIGHTS="

install: $(VENV)/.installed ## create .venv and install servegate (quick when nothing changed)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

export: install ## export MODEL to verified archives in OUT (FORMATS=torchscript,aoti,onnx)
	$(BIN)/servegate export $(MODEL) --formats $(FORMATS) --out $(OUT) $(if $(WEIGHTS),--weights $(WEIGHTS))

serve: install ## start TorchServe on the archives in STORE
	$(BIN)/servegate serve --store $(STORE)

stop: install ## stop what `make serve` / `make demo` started (gateway and TorchServe)
	$(BIN)/servegate gateway stop
	$(BIN)/servegate stop

demo: install ## export minilm, serve it behind the gateway (90/10 canary), send traffic
	$(BIN)/servegate demo

test: install ## run the test suite (real TorchServe, real Chromium)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench-overhead: install ## TorchServe per-request overhead (latency minus handler time) on mlp
	$(BIN)/python -m bench.ts_overhead

bench-gateway: install ## TorchServe direct vs through the gateway on mlp (p50/p99/throughput)
	$(BIN)/python -m bench.gateway
