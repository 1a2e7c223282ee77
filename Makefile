# The two set-up commands of the README. Each installs everything it needs first (idempotent; pip caches
# the llama.cpp build, which takes several minutes the first time).
PYTHON ?= python3
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
# System packages the tests use: a real Redis (shared budgets), Chromium (the dashboard test) and valgrind (the
# benchmark harness counts the controller's instructions per request).
APT_PACKAGES := redis-server chromium valgrind
# What the benchmark drives and measures with: wrk (load), nginx (the fake upstream), valgrind; and LiteLLM (the
# peer) with py-spy (the profile) in a venv of their own, kept out of the router's environment.
BENCH_APT_PACKAGES := wrk nginx-light valgrind
BENCH_VENV := bench/.venv-litellm

# apt-get install those of the packages given that are missing (with sudo unless root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

.PHONY: install system-packages bench-tools up test lint bench

install:
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	@# xds-protos ships an old copy of opentelemetry/proto/*, which may overwrite opentelemetry-proto's files;
	@# the tracing exporter needs the real ones, so they are put back last.
	$(PYTHON) -m pip install --quiet --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(PYTHON) -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"

system-packages:
	$(call apt_install,$(APT_PACKAGES))

bench-tools:
	$(call apt_install,$(BENCH_APT_PACKAGES))
	@[ -x $(BENCH_VENV)/bin/litellm ] && [ -x $(BENCH_VENV)/bin/py-spy ] || { \
		echo "installing LiteLLM and py-spy into $(BENCH_VENV)"; \
		$(PYTHON) -m venv $(BENCH_VENV) && $(BENCH_VENV)/bin/pip install --quiet 'litellm[proxy]' py-spy; }

up: install
	llm-router up

test: install system-packages
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench: install bench-tools
	$(PYTHON) bench/run.py
