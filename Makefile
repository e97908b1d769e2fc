# pyct: the two commands a new user needs are `make run` and `make test`.
PY      ?= python3
VENV    := $(CURDIR)/.venv
BIN     := $(VENV)/bin
STATE   := $(CURDIR)/state
CONF    := $(STATE)/pyct.conf
PYTEST  ?= -q
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: run test bench venv host conf sample-config clean

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

$(CONF):
	mkdir -p $(STATE)
	printf '[DEFAULT]\nstate_path = %s\nvirt_driver = %s\n\n[database]\nconnection = sqlite:///%s/pyct.sqlite\n' \
	  "$(STATE)" "$(if $(IS_ROOT),container,fake)" "$(STATE)" > $@

conf: $(CONF)

# Set up and start the all-in-one (SQLite, in-process bus) on 127.0.0.1:8774.
run: venv host conf
	$(BIN)/pyct-manage --config-file $(CONF) db sync
	$(BIN)/pyct-manage --config-file $(CONF) image create-busybox busybox --if-missing
	$(BIN)/pyct-manage --config-file $(CONF) flavor create m1.tiny --id 1 --vcpus 1 --ram 512 --disk 1 --if-missing
	$(BIN)/pyct-manage --config-file $(CONF) flavor create m1.small --id 2 --vcpus 1 --ram 2048 --disk 20 --if-missing
	@echo "pyct all-in-one on http://127.0.0.1:8774 (Ctrl-C stops it). In another terminal, paste:"
	@echo "  export OS_CLIENT_CONFIG_FILE=$(CURDIR)/etc/pyct/clouds.yaml OS_CLOUD=pyct-local"
	@echo "  export PATH=$(BIN):\$$PATH"
	@echo "  openstack server list"
	OS_CLIENT_CONFIG_FILE=$(CURDIR)/etc/pyct/clouds.yaml exec $(BIN)/pyct-all-in-one --config-file $(CONF)

# The whole suite: unit, functional, integration (real RabbitMQ, PostgreSQL,
# MariaDB, real clients) and privileged (real kernel), then a leak check.
test: venv host
	$(BIN)/python -m pytest $(PYTEST) tests; rc=$$?; \
	  $(BIN)/python tools/leak_check.py || rc=1; exit $$rc

# The benchmarks (programs that print medians and p95s; see tools/bench/).
bench: venv host
	command -v runc >/dev/null || apt-get install -y -qq runc
	$(BIN)/python tools/bench/spawn.py --runs 50
	$(BIN)/python tools/bench/userns_spawn.py
	$(BIN)/python tools/bench/net_plumbing.py
	$(BIN)/python tools/bench/api_boot.py
	$(BIN)/python tools/bench/api_boot_net.py
	$(BIN)/python tools/bench/debian_ssh.py
	$(BIN)/python tools/bench/idle_memory.py --guests 200
	$(BIN)/python tools/bench/console_flood.py
	$(BIN)/python tools/bench/dns_forwarder.py --runs 1000

sample-config: venv
	$(BIN)/oslo-config-generator --config-file etc/pyct/pyct-config-generator.conf
	$(BIN)/oslopolicy-sample-generator --config-file etc/pyct/pyct-policy-generator.conf

clean:
	rm -rf $(VENV) $(STATE) *.egg-info
