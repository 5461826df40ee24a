# The two commands of the README. Both create or reuse the virtual environment in .venv;
# it is rebuilt whenever pyproject.toml changes.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo multi-client test test-slow

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ams_ray compare --video synthetic --seed 0 --duration 300 --out runs/compare

multi-client: $(STAMP)
	$(PY) benchmarks/multi_client.py --clients 4 --speed 0.25 --out runs/multi_client

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow
