# The two commands the README promises: `make demo` (main job) and `make test`.
# Both create or reuse .venv and install what they need, including Debian packages when root.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# tcmalloc makes batched PyTorch on CPU up to 2x faster than glibc malloc (measured here);
# the allocator in use is recorded with every result. Looked up by the shell when the recipe
# runs, i.e. after the install step: a make variable would be expanded when the Makefile is
# read, before a fresh machine has the library, and the first run would time glibc malloc.
TCMALLOC = $$(bash scripts/tcmalloc.sh)
# The suite runs on 2 pytest-xdist workers, a whole test file each (module fixtures built once):
# on one worker it kept 2 cores about half busy (compiles, exports and servers are
# single-threaded). OMP_WAIT_POLICY=PASSIVE: two processes with 2 OpenMP threads each on 2 cores
# otherwise spin against each other: together they did 2.5-9x less work than one alone, and
# 0.7-0.9x with PASSIVE (scripts/oversubscription.py, 2 runs on the AVX2 EPYC). Tests assert no
# wall-clock times. TEST_WORKERS=1 runs them one file at a time.
TEST_WORKERS ?= 2

.PHONY: demo test bench lint sysdeps

$(STAMP): pyproject.toml
	bash scripts/sysdeps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	LD_PRELOAD=$(TCMALLOC) $(PY) -m optbench run recipes/fashion_resnet50_to_mobilenet.toml \
		--quick --out results/flagship-quick

test: $(STAMP)
	$(PY) -m ruff check optbench tests benchmarks scripts examples
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not alone"
	$(PY) -m pytest -q -m alone

bench: $(STAMP)
	LD_PRELOAD=$(TCMALLOC) $(PY) -m pytest benchmarks -q --benchmark-autosave

lint: $(STAMP)
	$(PY) -m ruff check optbench tests benchmarks scripts examples
