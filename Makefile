# The two commands a new machine needs:  make demo  (set up, run the main job)
#                                        make test  (set up, run the tests)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
RUNTIME_SOURCES := $(shell find runtime -name '*.[ch]' -o -name 'CMakeLists.txt' -o -name '*.cmake')

.PHONY: setup toolchains demo test clean

setup: $(VENV)/.installed

# System tools for the C runtime (compiler, cmake; clang, aarch64 cross compiler, qemu for tests).
toolchains:
	PYTHON=$(PYTHON) scripts/install-toolchains.sh

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build. Installing the
# package builds the C runtime's Python extension (setup.py drives runtime/CMakeLists.txt).
$(VENV)/.installed: pyproject.toml setup.py $(RUNTIME_SOURCES)
	PYTHON=$(PYTHON) scripts/install-toolchains.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# Train, convert, check runtime == reference, profile natively and on emulated Pi 4 / Pi 5 cores.
demo: setup
	$(BIN)/ddq-edge demo -o runs/demo

# DDQ_REQUIRE_TOOLCHAINS: a missing cross compiler, qemu or clang fails the tests, never skips them.
# The emulator lab (aarch64 Python, onnxruntime, LiteRT, plugin) is cached under ~/.cache/ddq-edge.
test: setup toolchains
	$(BIN)/ddq-edge emulator setup
	DDQ_REQUIRE_TOOLCHAINS=1 DDQ_TEST_EMULATOR=1 $(BIN)/python -m pytest -q --durations=15

clean:
	rm -rf $(VENV) build *.egg-info runs ddq_edge/_runtime*.so
