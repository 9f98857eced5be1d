# kubeforge.cluster — entry points.
#   make test      every test: lint, ansible-test sanity, unit, real-binary, molecule on the lab
#   make lab       bring the local lab up and converge it with playbooks/site.yml
#   make lab-down  remove every lab machine, namespace, veth, bridge and NAT rule
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export PYTHONDONTWRITEBYTECODE := 1
LINK := .build/collections/ansible_collections/kubeforge/cluster
SANITY_ROOT := .build/sanity/ansible_collections/kubeforge/cluster
LAB_INVENTORY := inventories/lab/hosts.yml
APT_PACKAGES := debootstrap systemd-container iproute2 iptables dpkg-dev openssh-client rsync git shellcheck kmod golang-cfssl openssl

.PHONY: help deps venv collection-link test lint sanity units integration molecule benchmarks bench-deps lab lab-down lab-status clean

help:
	@sed -n 's/^#   //p' Makefile

# System packages the tests and the lab need (Debian).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

collection-link:
	@mkdir -p $(dir $(LINK))
	@ln -sfn $(CURDIR) $(LINK)

test: deps venv collection-link
	@rm -rf .build/junit; start=$$(date +%s); \
	for stage in lint sanity units integration molecule; do \
	  t0=$$(date +%s); $(MAKE) --no-print-directory $$stage; \
	  echo "== $$stage: $$(( $$(date +%s) - t0 )) s"; \
	done; echo "== make test: $$(( $$(date +%s) - start )) s"
	@python tools/junit_summary.py .build/junit

lint: venv collection-link
	ruff check plugins tests tools benchmarks
	yamllint -s .
	ansible-lint --profile production

# ansible-test wants the tree at ansible_collections/<ns>/<name> and in a git repository of its
# own: sync a copy of the tracked and new (not ignored) files there. Its pip bootstrap script
# cannot be downloaded here, so an offline stand-in is placed where ansible-test looks first.
ANSIBLE_TEST_PIP := $(shell sed -n "s/^ *pip='\(.*\)',/\1/p" $(VENV)/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py 2>/dev/null | head -1)
sanity: venv
	@mkdir -p $(HOME)/.ansible/test/cache
	@cp tools/ansible_test_get_pip.py $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py
	@rm -rf .build/sanity && mkdir -p $(SANITY_ROOT)
	@git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ $(SANITY_ROOT)/
	@cd $(SANITY_ROOT) && git init -q && git add -A
	cd $(SANITY_ROOT) && ansible-test sanity --python 3.11 --color no --requirements

units: venv collection-link
	pytest -q tests/unit --junitxml=.build/junit/units.xml

integration: venv collection-link
	pytest -q tests/integration --junitxml=.build/junit/integration.xml

molecule: venv collection-link deps
	@for s in $$(ls molecule | grep -v '^shared$$' | sort); do \
	  [ -f molecule/$$s/molecule.yml ] || continue; \
	  t0=$$(date +%s); molecule test -s $$s; \
	  echo "== molecule scenario $$s: $$(( $$(date +%s) - t0 )) s"; \
	done

# BENCH_NODES=1,3 picks the lab sizes of benchmarks/converge.py (default 1,3,6,12), BENCH_ARGS adds options to it,
# BENCH_ONLY="converge levers" runs only those scripts (default: every benchmarks/*.py). docs/benchmarks.md.
BENCH_NODES ?= 1,3,6,12
BENCH_ARGS ?=
BENCH_ONLY ?=
BENCH_DIR := .build/bench
benchmarks: venv collection-link bench-deps
	@failed=""; for b in benchmarks/*.py; do name=$$(basename $$b .py); \
	  if [ -n "$(BENCH_ONLY)" ] && ! echo " $(BENCH_ONLY) " | grep -q " $$name "; then continue; fi; echo "== $$b"; \
	  if [ $$name = converge ]; then python tests/doubles/build.py --version 1.37.0 --debs $(LAB_KUBEADM_ARTIFACTS) && \
	    python $$b --nodes $(BENCH_NODES) -e kubeadm_install_method=artifacts -e kubeadm_artifacts_dir=$(LAB_KUBEADM_ARTIFACTS) \
	      $(BENCH_ARGS) || failed="$$failed $$name"; \
	  else python $$b || failed="$$failed $$name"; fi; done; \
	if [ -n "$$failed" ]; then echo "== benchmarks that failed:$$failed"; exit 1; fi

# matplotlib (the plot) and Mitogen (an optional strategy) for the benchmarks only, outside the CI venv.
# Mitogen gets a directory of its own: its strategy plugins put their parent directory first on sys.path.
bench-deps: $(BENCH_DIR)/.installed
$(BENCH_DIR)/.installed: requirements-bench.txt | venv
	rm -rf $(BENCH_DIR)/lib $(BENCH_DIR)/mitogen
	$(BIN)/pip install -q --target $(BENCH_DIR)/lib -r requirements-bench.txt
	mkdir -p $(BENCH_DIR)/mitogen && mv $(BENCH_DIR)/lib/mitogen $(BENCH_DIR)/lib/ansible_mitogen $(BENCH_DIR)/mitogen/
	touch $@

# MITOGEN=1 converges with Mitogen for Ansible's mitogen_linear strategy (optional, from requirements-bench.txt;
# docs/benchmarks.md has its figures). The default is Ansible's own linear strategy.
MITOGEN ?=
LAB_ANSIBLE_ENV = $(if $(filter 1,$(MITOGEN)),ANSIBLE_STRATEGY_PLUGINS=$(CURDIR)/$(BENCH_DIR)/mitogen/ansible_mitogen/plugins/strategy ANSIBLE_STRATEGY=mitogen_linear)
# kubeadm, kubelet and kubectl in the lab are the TEST DOUBLES of tests/doubles (no reachable registry has the real
# ones), installed through the kubeadm role's artifacts path as an air-gapped operator would.
LAB_KUBEADM_ARTIFACTS := $(CURDIR)/.cache/kubeadm-test-doubles/debs
lab: deps venv collection-link $(if $(filter 1,$(MITOGEN)),bench-deps)
	python tools/lab.py up --inventory $(LAB_INVENTORY)
	python tests/doubles/build.py --version 1.37.0 --debs $(LAB_KUBEADM_ARTIFACTS)
	$(LAB_ANSIBLE_ENV) ansible-playbook -i $(LAB_INVENTORY) playbooks/site.yml \
	  -e kubeadm_install_method=artifacts -e kubeadm_artifacts_dir=$(LAB_KUBEADM_ARTIFACTS)
	python tools/lab.py summary --inventory $(LAB_INVENTORY)

lab-down: venv
	python tools/lab.py down

lab-status: venv
	python tools/lab.py status

clean:
	rm -rf .build .pytest_cache
