# grokcircuit: build the book and run the tests in a local virtual environment.
#
#   make book            # create .venv, execute all notebooks, build _build/html/index.html
#   make test            # create .venv, run the full test suite (unit, notebooks, book, browser)
#   make book PRESET=ci  # pass `-p preset ci` to every notebook
#   make TORCH= book     # keep the torch of the surrounding environment (e.g. a CUDA build)
#
# TORCH pins the torch that goes into .venv before anything else (a CPU build where one
# is available locally). Setting it empty (`make TORCH= ...` or `export TORCH=`) skips
# that step and creates .venv with --system-site-packages so an existing torch is reused.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON    ?= python3.11
VENV      ?= .venv
TORCH     ?= 2.13.0
PRESET    ?=
BUILD     ?= _build
PYTEST_ARGS ?=

PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.grokcircuit-installed
VENV_ARGS := $(if $(TORCH),,--system-site-packages)
RUN_ENV   := TQDM_DISABLE=1 PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: help venv chromium test book clean distclean

help:
	@echo "make book    execute the notebooks and build the book into $(BUILD)/html"
	@echo "make test    run the test suite (builds the book and its screenshots in $(BUILD)/test)"
	@echo "make venv    create/update $(VENV) only"
	@echo "make clean   remove build outputs ($(BUILD), caches); distclean also removes $(VENV)"
	@echo "variables:   TORCH=$(TORCH) PRESET=$(PRESET) PYTHON=$(PYTHON)"

venv: $(STAMP)

# Reinstall only when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV_ARGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
ifneq ($(strip $(TORCH)),)
	$(PY) -m pip install "torch==$(TORCH)"
endif
	$(PY) -m pip install -c constraints.txt -e '.[book,test]'
	touch $@

book: venv
	$(RUN_ENV) $(PY) scripts/build_book.py --out $(BUILD) $(if $(strip $(PRESET)),--preset $(PRESET))
	@echo "Open $(BUILD)/html/index.html"

# Best effort: Debian's chromium for tests/test_browser.py, which skips (saying why) without it.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "make: installing Debian's chromium for the browser tests"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	} || echo "make: could not install chromium (apt-get); the browser tests will be skipped"

# pytest is the last command, so the output ends with its summary line.
test: venv chromium
	TQDM_DISABLE=1 MPLBACKEND=Agg PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q \
	  --book-build $(BUILD)/test $(PYTEST_ARGS)

clean:
	rm -rf $(BUILD) .pytest_cache
	find . -path ./$(VENV) -prune -o -type d \( -name __pycache__ -o -name .ipynb_checkpoints \) -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV) src/*.egg-info
