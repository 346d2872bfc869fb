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
STUBS := gateway/grpc/stubs/__init__.py

.PHONY: help install protos export serve stop demo test test-fast lint bench bench-overhead bench-gateway bench-grpc

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: MODEL=$(MODEL) FORMATS=$(FORMATS) OUT=$(OUT) STORE=$(STORE) WEIGHTS="

install: $(VENV)/.installed $(STUBS) ## create .venv, install servegate, generate gRPC stubs (quick when nothing changed)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(STUBS): $(VENV)/.installed gateway/grpc/codegen.py
	$(BIN)/python -m gateway.grpc.codegen

protos: $(VENV)/.installed ## (re)generate gateway/grpc/stubs/ from the .proto files in TorchServe's jar
	$(BIN)/python -m gateway.grpc.codegen

export: install ## export MODEL to verified archives in OUT (FORMATS=torchscript,aoti,onnx)
	$(BIN)/servegate export $(MODEL) --formats $(FORMATS) --out $(OUT) $(if $(WEIGHTS),--weights $(WEIGHTS))

serve: install ## start TorchServe on the archives in STORE
	$(BIN)/servegate serve --store $(STORE)

stop: install ## stop what `make serve` / `make demo` started (gateway and TorchServe)
	$(BIN)/servegate gateway stop
	$(BIN)/servegate stop

demo: install ## export minilm, serve it behind the gateway (90/10 canary), send traffic
	$(BIN)/servegate demo

FAST := not export and not torchserve and not browser

test: install ## run the whole test suite (real TorchServe, real Chromium)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## the tests that need no TorchServe, no export and no browser (tiers: tests/conftest.py)
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)
	$(BIN)/pytest -m "$(FAST)" $(PYTEST_ARGS)

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install ## CPU suite: formats, overhead, batching, gateway (bench/results/<date>-cpu.*)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.suite

bench-overhead: install ## TorchServe per-request overhead (latency minus handler time) on mlp
	$(BIN)/python -m bench.ts_overhead

bench-gateway: install ## TorchServe direct vs through the gateway on mlp (p50/p99/throughput)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.gateway

bench-grpc: install ## TorchServe's gRPC direct vs gRPC through the gateway on mlp (p50/throughput)
	$(BIN)/python -m bench.grpc
