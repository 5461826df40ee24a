# The two commands of the README. Both create or reuse the virtual environment in .venv;
# it is rebuilt whenever pyproject.toml changes.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo compare multi-client test test-slow prometheus monitoring
# The Prometheus test needs Debian's prometheus server; installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,test]'
	touch $(STAMP)

# The main job: 32 devices on the embedded default (synthetic videos, 60 s each, labelled live by
# the embedded teacher network on Serve) against one loopback Ray server, at the speed a 2-core
# machine sustains for 32 (1/8 of real time).
demo: $(STAMP)
	$(PY) benchmarks/multi_client.py --clients 32 --duration 60 --speed 0.125 --out runs/multi_client

# The single-stream strategy comparison on one 5-minute synthetic video.
compare: $(STAMP)
	$(PY) -m ams_ray compare --video synthetic --seed 0 --duration 300 --out runs/compare

multi-client: $(STAMP)
	$(PY) benchmarks/multi_client.py --clients 4 --speed 0.25 --out runs/multi_client-4

test: $(STAMP) prometheus
	$(PY) -m pytest -q

test-slow: $(STAMP) prometheus
	$(PY) -m pytest -q -m slow

prometheus:
	@command -v prometheus >/dev/null 2>&1 || $(SUDO) apt-get install -y --no-install-recommends prometheus \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus; }

monitoring: $(STAMP) prometheus
	$(PY) -m monitoring.launch
