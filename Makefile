# The two commands of the README:
#   make demo   set up .venv and run the main job (SIFN and U-BERT vs baselines on real reviews)
#   make test   set up .venv and run the test suite (ruff + pytest)
# CPU installs pin torch to the CPU wheel through constraints-cpu.txt; GPU machines install
# with plain `pip install .` and get their platform's CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test setup clean lock

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PY) jobs/demo.py

test: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# requirements.lock for the image: resolved on the image's own platform (the base image: Linux,
# Python 3.11, CUDA torch), every package with its sha256 (tools/lock.py). Needs Docker.
LOCK_IMAGE ?= rayproject/ray:2.60.0-py311-gpu
lock:
	docker run --rm -v "$(CURDIR)":/src -w /src $(LOCK_IMAGE) python tools/lock.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
