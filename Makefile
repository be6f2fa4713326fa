# The two commands a new machine needs:  make demo  (set up, run the main job)
#                                        make test  (set up, run the tests)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup demo test clean

setup: $(VENV)/.installed

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/ddq-edge train -o runs/ddq-model.pt
	$(BIN)/ddq-edge convert runs/ddq-model.pt -o runs/ddq-model.ddqb
	$(BIN)/ddq-edge inspect runs/ddq-model.ddqb

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info runs
