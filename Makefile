# pyct: the two commands a new user needs are `make run` and `make test`.
PY      ?= python3
VENV    := $(CURDIR)/.venv
BIN     := $(VENV)/bin
STATE   := $(CURDIR)/state
CONF    := $(STATE)/pyct.conf
PYTEST  ?= -q
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: run stop test test-v2 bench venv host conf sample-config clean

$(BIN)/pyct-manage: requirements.txt test-requirements.txt setup.cfg
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r test-requirements.txt
	$(BIN)/pip install -q -e .
	touch $@

venv: $(BIN)/pyct-manage

host:
ifeq ($(IS_ROOT),yes)
	bash tools/ensure-host.sh
else
	@echo "not root: skipping host packages and services"
endif

# Project networks come from 10.250.0.0/16, not from the default pool
# (10.241.0.0/16) the test suite uses, whose networks must overlap no host
# route: `make test` runs beside a `make run` whose guests have ports.
$(CONF):
	mkdir -p $(STATE)
	printf '[DEFAULT]\nstate_path = %s\nvirt_driver = %s\n\n[database]\nconnection = sqlite:///%s/pyct.sqlite\n\n[network]\npool_cidr = 10.250.0.0/16\nfloating_ip_range = 203.0.113.0/24\n' \
	  "$(STATE)" "$(if $(IS_ROOT),container,fake)" "$(STATE)" > $@

conf: $(CONF)

# Set up and start the all-in-one (SQLite, in-process bus) on 127.0.0.1:8774.
run: venv host conf
	$(BIN)/pyct-manage --config-file $(CONF) db sync
	$(BIN)/pyct-manage --config-file $(CONF) image create-busybox busybox --if-missing
	$(BIN)/pyct-manage --config-file $(CONF) flavor create m1.tiny --id 1 --vcpus 1 --ram 512 --disk 1 --if-missing
	$(BIN)/pyct-manage --config-file $(CONF) flavor create m1.small --id 2 --vcpus 1 --ram 2048 --disk 20 --if-missing
	@echo "pyct all-in-one on http://127.0.0.1:8774 (Ctrl-C stops it; \`make stop\` also its guests). In another terminal, paste:"
	@echo "  export OS_CLIENT_CONFIG_FILE=$(CURDIR)/etc/pyct/clouds.yaml OS_CLOUD=pyct-local"
	@echo "  export PATH=$(BIN):\$$PATH"
	@echo "  openstack server list"
	OS_CLIENT_CONFIG_FILE=$(CURDIR)/etc/pyct/clouds.yaml exec $(BIN)/pyct-all-in-one --config-file $(CONF)

# Stop what `make run` started, from any state: the all-in-one if it still
# runs, every guest (shut down cleanly: they show SHUTOFF, and `openstack
# server start` brings them back after the next `make run`), the launcher,
# the cgroup parent and the bridges. KEEP_GUESTS=1: change nothing while
# guests run, list what is left.
stop:
	@if [ -x $(BIN)/pyct-manage ] && [ -f $(CONF) ]; then \
	  $(BIN)/pyct-manage --config-file $(CONF) host stop $(if $(KEEP_GUESTS),--keep-running); \
	else echo "nothing to stop: no $(CONF)"; fi

# The whole suite: unit, functional, integration (real RabbitMQ, PostgreSQL,
# MariaDB, real clients) and privileged (real kernel), then a leak check
# that blames the suite for what it created only: not for what was there
# before it started, nor for the resources of `make run`'s all-in-one.
# One pytest run over pytest-xdist workers (TEST_JOBS, one per core by
# default; tests/conftest.py keeps the privileged tests on one worker, in
# order, and each integration module on one); the 25 slowest tests and
# each worker's busy time (tools/test_timeline.py) close the output.
TEST_JOBS ?= auto
test: venv host
	base=$$(mktemp /tmp/pyct-leak-baseline.XXXXXX) && \
	  $(BIN)/python tools/leak_check.py --save $$base || exit 1; \
	  timeline=$$base.timeline; \
	  PYCT_TEST_TIMELINE=$$timeline $(BIN)/python -m pytest $(PYTEST) \
	    -n $(TEST_JOBS) --durations=25 tests; rc=$$?; \
	  $(BIN)/python tools/test_timeline.py $$timeline; \
	  $(BIN)/python tools/leak_check.py --against $$base \
	    --foreign-state $(STATE) || rc=1; rm -f $$base $$timeline; \
	  exit $$rc

# The cgroup v2 lane: the cgroup tests inside a VM that boots Debian's own
# kernel with the unified hierarchy only (tools/v2lane/, README "cgroup v2").
test-v2:
	bash tools/v2lane/lane.sh

# The benchmarks: tools/bench/summary.py runs every program that
# tools/bench/catalog.py lists (the one list, with their arguments), each
# with --json, and prints one summary table (metric, pyct, peer, ratio,
# target, PASS/FAIL) with the machine and its load; see tools/bench/README.md.
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--only spawn,list_scale
# --quick --markdown bench.md --json-dir bench-json".
bench: venv host
	command -v runc >/dev/null || apt-get install -y -qq runc
	command -v mkfs.btrfs >/dev/null || apt-get install -y -qq btrfs-progs
	command -v mkfs.xfs >/dev/null || apt-get install -y -qq xfsprogs
	$(BIN)/python tools/bench/summary.py $(BENCH_ARGS)

sample-config: venv
	PYTHONPATH=$(CURDIR) $(BIN)/oslo-config-generator --config-file etc/pyct/pyct-config-generator.conf
	PYTHONPATH=$(CURDIR) $(BIN)/oslopolicy-sample-generator --config-file etc/pyct/pyct-policy-generator.conf

clean:
	rm -rf $(VENV) $(STATE) *.egg-info
