# tinyml: `make demo` runs the main job end to end, `make test` runs the whole suite.
# Both start with `make setup`, which is idempotent and safe to re-run.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := gcc-arm-none-eabi picolibc-arm-none-eabi libnewlib-arm-none-eabi \
	qemu-system-arm qemu-system-misc gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf \
	gcc-xtensa-lx106 picolibc-xtensa-lx106-elf mosquitto postgresql openocd gcc make cmake \
	chromium chromium-driver
PYTEST_ARGS ?=

.PHONY: setup system-packages venv demo test lint clean

setup: system-packages venv

# Installs only what is missing; does nothing when not root or not on Debian/Ubuntu.
system-packages:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then \
		missing=""; \
		for p in $(APT_PACKAGES); do \
			dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
		done; \
		if [ -n "$$missing" ]; then \
			echo "apt-get install:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		fi; \
	else \
		echo "setup: not root on Debian; install these yourself if missing: $(APT_PACKAGES)"; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,flash,fleet,dev]'
	@touch $@

# The pipeline is `tinyml run` of two example projects (artifacts in examples/*/run/, unchanged
# stages skipped the second time); tinyml.demo then streams their devices through the gateway.
demo: setup
	$(PY) -m tinyml run --project examples/vibration
	$(PY) -m tinyml run --project examples/tmp105
	$(PY) -m tinyml.demo examples/vibration examples/tmp105 demo-out

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check tinyml tests benchmarks

clean:
	rm -rf build dist *.egg-info .pytest_cache demo-out examples/*/run
