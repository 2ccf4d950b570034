# The two commands of the README:
#   make study   set everything up, then run the whole study on the demo profile
#   make test    set everything up, then run the unit tests and the notebooks (ci profile) under nbval
# .ci/run calls `make test` and nothing else.

PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg
PROFILE ?= demo

.PHONY: setup lock study run test unit notebooks sync check lint benchmarks lab clean-runs

setup:
	@bash scripts/setup.sh

study: setup
	$(PY) -m geolib.study run --profile $(PROFILE)

# run one profile or a subset: make run PROFILE=ci ONLY="00 01"
run: setup
	$(PY) -m geolib.study run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY),)

# unit tests run with sockets blocked (pytest-socket, pyproject's addopts); the notebooks under
# nbval talk to their kernel over the loopback only
test: setup lint
	$(PY) -m pytest -q -n 2 -m "not notebooks" tests
	$(PY) -m geolib.study prepare --profile ci --out runs/ci/nbval
	$(PY) -m pytest -q -p no:randomly --force-enable-socket --allow-hosts=127.0.0.1,::1 \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=1200 runs/ci/nbval

# what `make test` checks before the tests: lint, notebooks stored without outputs
lint: setup
	$(PY) -m ruff check geolib tests benchmarks scripts notebooks/*.py
	$(PY) -m nbstripout --verify notebooks/*.ipynb

# after changing a dependency in pyproject.toml: re-resolve requirements.lock and environment.yml
lock:
	python3 scripts/lock.py
	@bash scripts/setup.sh

unit: setup
	$(PY) -m pytest -q -n 2 -m "not notebooks" tests

# after editing notebooks/NN_slug.py: rebuild the .ipynb twins (no outputs)
sync:
	$(PY) -m jupytext --sync notebooks/[0-9][0-9]_*.py
	$(PY) -m nbstripout notebooks/*.ipynb

check: lint
	$(PY) -m pytest -q tests/test_project.py

benchmarks: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lab: setup
	$(PY) -m jupyter lab notebooks/

clean-runs:
	rm -rf runs/$(PROFILE)
