# Dozor: two entry points for a fresh Debian 12 machine (as root): `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian packages the demo and the tests need; each is installed only where missing.
DEBIAN_PACKAGES := mosquitto mosquitto-clients ffmpeg openssl iproute2 \
	gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp python3-gi \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
	gstreamer1.0-plugins-bad gstreamer1.0-libav motion chromium
DEMO_DIR ?= var/demo
PYTEST_ARGS ?=

.PHONY: demo test lint system-deps venv clean bench

system-deps: $(VENV)/.system-deps
$(VENV)/.system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: setup.cfg pyproject.toml | $(VENV)/.system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy recorder camera_drivers police_link viewer

test: system-deps venv lint
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: system-deps venv
	$(PY) scripts/demo.py --dir $(DEMO_DIR)

bench: venv
	$(PY) -m bench.camsim --cameras 8 --seconds 20

clean:
	rm -rf $(VENV) var build *.egg-info
