# multihome — developer entry points. Run as root on Debian 12.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
# System packages: one file per feature in .ci/apt.d/, one package per line.
APT_PACKAGES := $(sort $(shell cat .ci/apt.d/*.txt 2>/dev/null | sed 's/\#.*//'))
STAMP := $(VENV)/.installed

.PHONY: all deps venv test unit lint typecheck gate demo bench fuzz man deb collection clean

all: test

# Install the system packages the tests and the lab need (only what is missing).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: venv
	$(VENV)/bin/mypy

# The unit tier: pure logic on the in-memory backend, no root, no namespaces, seconds.
# `-m "not netns"` keeps it runnable as any user (a netns test put here by mistake is skipped).
unit: venv
	$(PY) -m pytest -q -n 0 -m "not netns" tests/unit

# The benchmark gate: quick ratios from one run (apply at 64 ports against the how-to's way
# and against ip -batch + sysctl -p; the agent's repair against its kernel change). Exit 1
# on a regression. About 20 s, alone before the suite (see bench/README.md).
gate: deps venv
	$(PY) bench/gate.py

# The whole suite: lint, types, the benchmark gate, unit, namespace and lab end-to-end tests.
test: deps venv lint typecheck gate
	$(PY) -m pytest -q -n 2 tests

demo: deps venv
	$(VENV)/bin/multihome lab demo

# The full benchmarks; regenerates docs/benchmarks.md (IPv4-only and dual-stack sections) and
# docs/benchmarks-agent.md (results sections, naming the commit) and bench/results/*.json.
# About 20 minutes.
bench: deps venv
	$(PY) bench/run.py --docs docs/benchmarks.md --json bench/results/apply.json
	$(PY) bench/run.py --dual-stack --sizes 256 --compare bench/results/apply.json \
	  --docs docs/benchmarks.md --json bench/results/apply-dual-stack.json
	$(PY) bench/agent_latency.py --ports 2,16 --events 100 --docs docs/benchmarks-agent.md \
	  --json bench/results/agent_latency.json
	$(PY) bench/agent_latency.py --dual-stack --ports 2,16 --events 100 \
	  --docs docs/benchmarks-agent.md --json bench/results/agent_latency-dual-stack.json

# The event fuzzer at length (tests/fuzz): random event sequences against the lab and the
# running agent, a new seed each run unless MULTIHOME_FUZZ_SEED is given; a failure is
# shrunk to a minimal sequence (keep it in tests/fuzz/test_regressions.py).
MULTIHOME_FUZZ_EXAMPLES ?= 2000
MULTIHOME_FUZZ_STEPS ?= 12
MULTIHOME_FUZZ_SHRINK ?= 1
fuzz: deps venv
	@seed=$${MULTIHOME_FUZZ_SEED:-$$(date +%s)}; echo "fuzz: seed $$seed"; \
	MULTIHOME_FUZZ_SEED=$$seed MULTIHOME_FUZZ_EXAMPLES=$(MULTIHOME_FUZZ_EXAMPLES) \
	MULTIHOME_FUZZ_STEPS=$(MULTIHOME_FUZZ_STEPS) MULTIHOME_FUZZ_SHRINK=$(MULTIHOME_FUZZ_SHRINK) \
	$(PY) -m pytest -q -s -x -n 0 -p no:cacheprovider tests/fuzz/test_fuzz_events.py

# The Ansible collection (ansible/multihome/guest, docs/fleet.md) as
# dist/multihome-guest-VERSION.tar.gz, built by the pinned ansible-core of the tests' cached venv
# (tests/ansible/ansible-requirements.lock; built on first use).
collection: venv
	@venv=$$($(PY) tests/ansible/ansible_support.py) && \
	  $$venv/bin/ansible-galaxy collection build --force --output-path dist ansible/multihome/guest

# The man pages (roff) from docs/*.[58].md, with pandoc, into build/man/.
man:
	packaging/manpages build/man

# The Debian package: dist/multihome_<version>_all.deb (debhelper 13 + dh_python3, built in a
# temporary copy of the checkout; see docs/packaging.md). About 20 s.
deb: deps
	packaging/build-deb dist

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist
