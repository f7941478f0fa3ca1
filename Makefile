# tf_t2i: `make demo` and `make test` are all a fresh machine needs.
PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUNS ?= runs
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Pretrain DAMSM on shapes, train SSA-GAN on shapes, write a sample grid.
demo: install
	$(PY) -m tf_t2i.demo --runs_dir=$(RUNS)

test: install
	$(PY) -m pytest -q -m "not slow" tests

test-slow: install
	$(PY) -m pytest -q -m slow tests

bench: install
	@if ls benchmarks/*.py >/dev/null 2>&1; then for b in benchmarks/*.py; do $(PY) $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

clean:
	rm -rf $(RUNS) .pytest_cache
