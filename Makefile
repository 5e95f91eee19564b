# The two commands of the README, plus release. Each sets itself up on a fresh machine
# with only Python 3.10+ and make: a virtual environment in .venv, the course (utils, `-e .`)
# and the instructors' tools (course_tools, `-e ./instructor` in requirements-dev.txt) installed
# into it in one pip command.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.ready

.PHONY: lab test test-newest site site-check release check lint gpu-check claims clean

$(READY): requirements.txt requirements-dev.txt pyproject.toml instructor/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "Python 3.10 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e .
	@touch $@

## open the course in JupyterLab
lab: $(READY)
	$(BIN)/jupyter lab notebooks/

## the whole test suite: unit tests, release sync, conformance, grading, every notebook.
## Two workers, one notebook per worker; one thread each, so timings stay comparable.
## Files run in collection order (lessons 00 -> 12), not largest first: a lesson then finds
## the earlier lessons' models in the cache instead of training them inside its own budget.
## TESTS= runs only those paths.
test: $(READY)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder $(TESTS)

## the other end of the supported range, which CI runs too, in .venv-newest with the newest torch
## that pip resolves from requirements.txt (on Linux a CUDA build, 6 GB: what a newcomer, a Colab
## user or a GPU grading machine has): what torch's version can change. Every solution with its
## claims; every lesson graded (its solution, student and delegating versions, executed whole at
## the grading profile, where an error in a lesson's own cell fails the test); the grader under
## attack; and the hints, whose diagnosis reads torch's error messages. Left to `make test`: the
## student versions at the CPU profile (the same code as graded here, at the solutions' sizes)
## and the formgrader's round trip (nbgrader's database, not torch). PYTHON=python3.12 builds that
## venv with another interpreter (CI uses Colab's Python, 3.12, where the machine has one).
NEWEST_TESTS := solutions tests/test_grading.py tests/test_grading_units.py tests/test_grading_lessons.py \
	tests/test_checks.py tests/test_mistakes.py
test-newest:
	$(MAKE) VENV=.venv-newest TESTS="$(NEWEST_TESTS)" test

## the course website, in _build/site/html: every student notebook with the outputs of a fresh
## execution (the test suite's own, while its key matches; else run here), the guides, rendered
## by Sphinx with MathJax from npm (website/package.json)
SITE_READY := $(VENV)/.site-ready
$(SITE_READY): $(READY) website/requirements.txt
	$(BIN)/python -m pip install --quiet -r website/requirements.txt
	@touch $@

site: $(SITE_READY)
	OMP_NUM_THREADS=1 $(BIN)/python -m course_tools.website $(SITE_FLAGS)

## make site, then check it: no solution on it, no broken link, and every page opened in headless
## Chromium (Debian's `chromium`, or COURSE_CHROMIUM=path); screenshots in _build/site/screenshots
site-check: site
	$(BIN)/python -m pytest -p no:cacheprovider -n 2 website/tests

## regenerate notebooks/ from solutions/ (stamps badges and the setup cell)
release: $(READY)
	$(BIN)/python -m course_tools release

## every notebook at the GPU profile on this machine's GPU, and under a T4's limits;
## writes docs/gpu_check.md (needs a CUDA GPU; `python -m course_tools gpu-check --dry-run` lists the runs)
gpu-check: $(READY)
	$(BIN)/python -m course_tools gpu-check

## every asserted claim rerun over 5 seeds x 1-2 threads, each with a fresh cache (under an hour;
## not in CI): writes docs/claims.md and docs/claims.json (`python -m course_tools.claims --help`)
claims: $(READY)
	$(BIN)/python -m course_tools.claims

check: $(READY)
	$(BIN)/python -m course_tools check

## ruff over the code (not the notebooks), with the rules of pyproject.toml; CI runs it first
lint: $(READY)
	$(BIN)/ruff check utils instructor tests website

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache _build website/node_modules
