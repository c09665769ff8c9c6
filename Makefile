# Vision Platform. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
# Tools built once and kept across runs on the same machine.
CACHE     ?= $(HOME)/.cache/vision-platform
TOOLS_BIN := $(CACHE)/bin
BIN       := bin
STATICCHECK_VERSION := v0.8.2
RUFF_VERSION := 0.17.6
# ruff (the Python linter and formatter) from PyPI, one directory per version.
RUFF      := $(CACHE)/ruff/$(RUFF_VERSION)/bin/ruff
# The MLflow tracking server (PyPI) the mlflow-sync tests run, in a virtual
# environment of its own per version; boto3 lets it read artifacts in MinIO.
MLFLOW_VERSION := 3.17.2
BOTO3_VERSION := 1.40.61
MLFLOW_DIR := $(CACHE)/mlflow/$(MLFLOW_VERSION)
# Schemathesis (PyPI), which checks the gateway's OpenAPI document against the
# running gateway, in a virtual environment of its own per version.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS_DIR := $(CACHE)/schemathesis/$(SCHEMATHESIS_VERSION)
PYTHON    ?= python3
CONFORMANCE_VERSION := v0.0.0-20260831232431-97274622c111
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
APT_PACKAGES := docker-registry debootstrap python3-torch python3-torchvision python3-pil python3-numpy python3-pip chromium kubectl

export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the vp command into bin/
	$(GO) build -o $(BIN)/vp ./cmd/vp

.PHONY: up
up: build ## Run the platform locally with embedded defaults (Ctrl-C stops it)
	$(BIN)/vp up --log-format=console

.PHONY: deps
ROOTFS := $(CACHE)/rootfs/bookworm-python3.tar
ROOTFS_TORCH := $(CACHE)/rootfs/bookworm-python3-torch.tar
# The base of the framework images built from wheels (images/frameworks/runtime.yaml):
# python3 with the system libraries their wheels load (libgomp, libGL, GLib).
ROOTFS_RUNTIME := $(CACHE)/rootfs/bookworm-python3-runtime.tar

deps: $(TOOLS_BIN)/conformance $(TOOLS_BIN)/minio apt-deps $(ROOTFS) $(ROOTFS_TORCH) $(ROOTFS_RUNTIME) docker-engine mlflow schemathesis ## Install what the tests need (idempotent)

# A Debian root filesystem with python3, the base of the images the tests run in Docker.
$(ROOTFS):
	images/rootfs/make-rootfs.sh $@ python3

# The same with Debian's CPU PyTorch: the base of the torchvision-cpu image,
# the CPU reference the pipeline tests build and train in.
$(ROOTFS_TORCH):
	images/rootfs/make-rootfs.sh $@ python3,python3-torch,python3-torchvision,python3-pil,python3-numpy

.PHONY: rootfs
rootfs: $(ROOTFS) $(ROOTFS_TORCH) ## Build the Debian root filesystems (python3; python3 with torch) with debootstrap

# A Docker Engine as the go-docker machines have it (docker.io 20.10,
# fuse-overlayfs, MTU 1400), installed and started where none answers; where
# it cannot run, the container tests skip, naming it.
.PHONY: docker-engine
docker-engine: ## Make sure a Docker Engine answers (installs and starts Debian's docker.io where none does)
	@images/rootfs/docker-engine.sh $(CACHE)/dockerd.log

# Debian packages the tests run for real: the CNCF registry as a process, and
# PyTorch for real CPU trainings (for /usr/bin/python3), and pip, whose resolver
# vp images lock runs, and Chromium, in which the console's tests run (headless,
# driven by chromedp).
.PHONY: apt-deps
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The MinIO server (AGPL): built once, run as a separate process, never imported.
$(TOOLS_BIN)/minio:
	@mkdir -p $(TOOLS_BIN)
	cd /tmp && GOBIN=$(TOOLS_BIN) GOFLAGS=-buildvcs=false $(GO) install github.com/minio/minio@$(MINIO_VERSION)

# The MLflow tracking server, run by the mlflow-sync tests as a process (never
# imported): a virtual environment per version, linked as $(TOOLS_BIN)/mlflow
# once complete. Where pip cannot reach its package index (machine kinds
# without PyPI) this is not an error: $(TOOLS_BIN)/mlflow.unavailable says so
# and the tests that need MLflow skip, naming it; with the index reachable, a
# failed install fails.
.PHONY: mlflow
mlflow: ## Install the pinned MLflow tracking server from PyPI into the tool cache
	@if [ "$$(readlink $(TOOLS_BIN)/mlflow)" = $(MLFLOW_DIR)/bin/mlflow ] && [ -x $(MLFLOW_DIR)/bin/mlflow ]; then exit 0; fi; \
	mkdir -p $(TOOLS_BIN) $(CACHE)/mlflow; rm -rf $(TOOLS_BIN)/mlflow $(TOOLS_BIN)/mlflow.unavailable $(MLFLOW_DIR); \
	probe=$$(mktemp -d); \
	if ! out=$$($(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps --retries 1 --timeout 20 \
			--dest $$probe mlflow==$(MLFLOW_VERSION) 2>&1); then \
		rm -rf $$probe; \
		{ echo "MLflow $(MLFLOW_VERSION) cannot be installed here: pip cannot reach its package index (PyPI)."; \
		  echo "$$out" | tail -n 3; } > $(TOOLS_BIN)/mlflow.unavailable; \
		echo "MLflow $(MLFLOW_VERSION) cannot be installed here: pip cannot reach PyPI. The tests that need it skip; a machine kind with PyPI (polyglot) runs them."; \
		exit 0; \
	fi; \
	rm -rf $$probe; \
	echo "installing MLflow $(MLFLOW_VERSION) into $(MLFLOW_DIR)"; \
	$(PYTHON) -m venv $(MLFLOW_DIR); \
	$(MLFLOW_DIR)/bin/pip install --quiet --disable-pip-version-check mlflow==$(MLFLOW_VERSION) boto3==$(BOTO3_VERSION); \
	ln -s $(MLFLOW_DIR)/bin/mlflow $(TOOLS_BIN)/mlflow

# Schemathesis, run by the gateway's tests against the running gateway (never
# imported): a virtual environment per version, linked as
# $(TOOLS_BIN)/schemathesis once complete. Where pip cannot reach its package
# index (the go-docker machine kind has no PyPI) this is not an error:
# $(TOOLS_BIN)/schemathesis.unavailable says so and the test skips, naming
# it; with the index reachable, a failed install fails.
.PHONY: schemathesis
schemathesis: ## Install the pinned Schemathesis from PyPI into the tool cache
	@if [ "$$(readlink $(TOOLS_BIN)/schemathesis)" = $(SCHEMATHESIS_DIR)/bin/schemathesis ] && [ -x $(SCHEMATHESIS_DIR)/bin/schemathesis ]; then exit 0; fi; \
	mkdir -p $(TOOLS_BIN) $(CACHE)/schemathesis; rm -rf $(TOOLS_BIN)/schemathesis $(TOOLS_BIN)/schemathesis.unavailable $(SCHEMATHESIS_DIR); \
	probe=$$(mktemp -d); \
	if ! out=$$($(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps --retries 1 --timeout 20 \
			--dest $$probe schemathesis==$(SCHEMATHESIS_VERSION) 2>&1); then \
		rm -rf $$probe; \
		{ echo "Schemathesis $(SCHEMATHESIS_VERSION) cannot be installed here: pip cannot reach its package index (PyPI)."; \
		  echo "$$out" | tail -n 3; } > $(TOOLS_BIN)/schemathesis.unavailable; \
		echo "Schemathesis $(SCHEMATHESIS_VERSION) cannot be installed here: pip cannot reach PyPI. The OpenAPI check skips; a machine kind with PyPI (polyglot) runs it."; \
		exit 0; \
	fi; \
	rm -rf $$probe; \
	echo "installing Schemathesis $(SCHEMATHESIS_VERSION) into $(SCHEMATHESIS_DIR)"; \
	$(PYTHON) -m venv $(SCHEMATHESIS_DIR); \
	$(SCHEMATHESIS_DIR)/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION); \
	ln -s $(SCHEMATHESIS_DIR)/bin/schemathesis $(TOOLS_BIN)/schemathesis

# The OCI distribution-spec conformance suite, run against the embedded registry.
$(TOOLS_BIN)/conformance:
	@mkdir -p $(TOOLS_BIN)
	cd /tmp && GOBIN=$(TOOLS_BIN) GOFLAGS=-buildvcs=false $(GO) install github.com/opencontainers/distribution-spec/conformance@$(CONFORMANCE_VERSION)

.PHONY: test
test: deps ## Run every test: unit and integration, against real servers (the infra module's too)
	$(MAKE) infra-test
	$(GO) test -count=1 -timeout 20m ./...

# infra/ is a module of its own: it links Knative's API types (tens of MB,
# a minute or two to build cold), which the root module leaves out. Go's
# build cache keeps the compiled packages, so only the first run pays.
.PHONY: infra-test
infra-test: ## The infra module: manifests re-rendered and diffed, Knative's and Kubernetes' own validation, kubectl kustomize of each overlay
	cd infra && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...

.PHONY: function-images
function-images: build ## The functions' images (amd64 and arm64); REGISTRY=host:port/repo pushes them by digest and writes infra/images.json
	$(BIN)/vp images build-functions $(if $(REGISTRY),--registry $(REGISTRY) --images-file infra/images.json)

.PHONY: test-short
test-short: ## Unit tests only (integration tests skip under -short)
	$(GO) test -short ./...

.PHONY: check
check: $(TOOLS_BIN)/staticcheck $(RUFF) ## go vet, gofmt, staticcheck, ruff (lint and format) on images/python
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	staticcheck ./...
	$(RUFF) check images/python
	$(RUFF) format --check images/python

# Installed with pip --target (no virtual environment, nothing system-wide);
# the wheel carries the static ruff binary.
$(RUFF):
	rm -rf $(CACHE)/ruff/$(RUFF_VERSION)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary=:all: \
		--target $(CACHE)/ruff/$(RUFF_VERSION) ruff==$(RUFF_VERSION)
	@test -x $@

$(TOOLS_BIN)/staticcheck:
	GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s)
	$(GO) test ./events/filter -run '^$$' -fuzz FuzzFilters -fuzztime $${FUZZTIME:-30s}
	$(GO) test ./local/broker -run '^$$' -fuzz FuzzParseRequest -fuzztime $${FUZZTIME:-30s}
	$(GO) test ./local/broker -run '^$$' -fuzz FuzzBinaryFastPath -fuzztime $${FUZZTIME:-30s}

.PHONY: bench-broker
bench-broker: ## Broker throughput (1 and 8 triggers, CPU per event) and latency at 1,000 events/s, beside direct sdk-go POSTs, a relay that stores nothing and the store alone
	$(GO) test ./local/broker -run '^$$' -bench 'BenchmarkThroughput' -benchtime 20000x -count $${COUNT:-3}
	$(GO) test ./local/broker -run '^$$' -bench 'BenchmarkLatency' -benchtime 5000x -count $${COUNT:-3}

.PHONY: bench-pipeline
bench-pipeline: deps ## Upload to run.started with a cached image (p50/p99 over 20 uploads, each hop), and 100 datasets by 16 clients
	$(GO) test ./local/up -run '^$$' -bench BenchmarkUploadToRunStarted -benchtime 1x -timeout 20m -v

.PHONY: bench-gateway
bench-gateway: deps ## Gateway: API latency (model list, job, job page) under 50 clients; SSE followers held at one event a second each
	$(GO) test ./functions/gateway -run '^$$' -bench BenchmarkGateway -benchtime 1x -timeout 20m -v

.PHONY: bench-images
bench-images: deps ## Image builds: 1 GiB wheel cold/warm, sharing ratio, beside sha256+gzip and docker build
	$(GO) test ./images/assemble -run '^$$' -bench BenchmarkImages -benchtime 1x -timeout 30m -v

# make images: every framework image built from its lock and pushed to the
# embedded registry, started here on REGISTRY_ADDR with its data in
# $(CACHE)/registry (kept across runs). The wheels come from PyPI (each spec's
# index) and are kept in the layer cache's wheel store by sha256: each is
# downloaded once per machine. IMAGES=NAME... builds only those.
REGISTRY_ADDR ?= 127.0.0.1:5050
IMAGES    ?=

$(ROOTFS_RUNTIME):
	images/rootfs/make-rootfs.sh $@ python3,libgomp1,libgl1,libglib2.0-0

.PHONY: images
images: build $(ROOTFS) $(ROOTFS_TORCH) $(ROOTFS_RUNTIME) ## Build every framework image from its lock (wheels from PyPI, downloaded once) and push it to the embedded registry on REGISTRY_ADDR
	@mkdir -p $(CACHE)/registry
	$(BIN)/vp registry --addr $(REGISTRY_ADDR) --data $(CACHE)/registry --log-level warn & reg=$$!; \
	trap 'kill $$reg; wait $$reg 2>/dev/null || true' EXIT; \
	for i in $$(seq 100); do curl -fsS -o /dev/null http://$(REGISTRY_ADDR)/v2/ 2>/dev/null && break; kill -0 $$reg || exit 1; sleep 0.1; done; \
	$(BIN)/vp images build --registry $(REGISTRY_ADDR)/vp $(IMAGES)

.PHONY: bench-mlflow
bench-mlflow: mlflow ## mlflow-sync: run.progress events/s to a real MLflow server, one log-batch per event against one log-metric per metric
	$(GO) test ./functions/mlflow-sync -run '^$$' -bench BenchmarkSync -benchtime 3x -timeout 20m -v

.PHONY: bench-frameworks
bench-frameworks: $(ROOTFS) $(ROOTFS_TORCH) $(ROOTFS_RUNTIME) ## Framework images from PyPI's wheels: sizes, bytes shared and stored, cold build beside the sha256+pgzip ceiling, warm rebuild after an adapter edit
	$(GO) test ./images/assemble -run '^$$' -bench BenchmarkFrameworks -benchtime 1x -timeout 60m -v

.PHONY: locks
locks: ## Resolve the framework lock files with pip (INDEX=URL and/or FIND_LINKS=DIR; needs a reachable index or wheelhouse)
	$(GO) run ./cmd/vp images lock $(if $(INDEX),--index $(INDEX)) $(if $(FIND_LINKS),--find-links $(FIND_LINKS))

.PHONY: generate
generate: ## Regenerate events/schemas from the payload structs
	$(GO) test ./events -run TestSchemasUpToDate -update

.PHONY: clean
clean: ## Remove build outputs
	rm -rf $(BIN)

# --- Docker Compose (local/compose) ------------------------------------------
# The whole platform in containers: MinIO, the registry, the broker, every
# function and the gateway, from images built here (make compose-images
# loads them; nothing is pulled). The docker compose plugin where present,
# else Debian's docker-compose 1.29. COMPOSE_PROJECT names the project (and
# its network, where the training containers run).
COMPOSE_CMD ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_PROJECT ?= vp
COMPOSE_DIR := local/compose
COMPOSE_ENV := $(COMPOSE_DIR)/.env
COMPOSE := COMPOSE_PROJECT_NAME=$(COMPOSE_PROJECT) $(COMPOSE_CMD) --env-file $(COMPOSE_ENV) -p $(COMPOSE_PROJECT) -f $(COMPOSE_DIR)/docker-compose.yml
COMPOSE_FUNCTIONS := dataset-intake dead-letter gateway gpu-runner image-builder job-trigger mlflow-sync run-recorder
# MinIO built without cgo (a static binary for its FROM-scratch image),
# beside the cgo build make deps makes.
MINIO_STATIC := $(CACHE)/minio-static/minio

$(MINIO_STATIC):
	@mkdir -p $(dir $@)
	cd /tmp && CGO_ENABLED=0 GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install -trimpath -ldflags '-s -w' github.com/minio/minio@$(MINIO_VERSION)

$(BIN)/vp-compose: FORCE
	$(GO) build -o $@ ./local/compose/cmd/vp-compose

.PHONY: FORCE
FORCE:

.PHONY: compose-images
compose-images: build $(MINIO_STATIC) $(ROOTFS_TORCH) ## Build the compose images (every function, vp, MinIO) with images/ and docker load them as localhost/vp/NAME:latest
	@tars=$$(mktemp -d); trap 'rm -rf $$tars' EXIT; \
	for n in $(COMPOSE_FUNCTIONS); do echo "images/functions $$n"; done > $$tars/list; \
	for n in vp minio; do echo "images/services $$n"; done >> $$tars/list; \
	while read -r specs n; do \
		old=$$(docker image inspect --format '{{.Id}}' localhost/vp/$$n:latest 2>/dev/null || true); \
		$(BIN)/vp images build --quiet --specs $$specs --output tar:$$tars/$$n.tar --tag localhost/vp/$$n:latest $$n \
			&& docker load --quiet --input $$tars/$$n.tar && rm -f $$tars/$$n.tar || exit 1; \
		new=$$(docker image inspect --format '{{.Id}}' localhost/vp/$$n:latest); \
		if [ -n "$$old" ] && [ "$$old" != "$$new" ]; then docker image rm $$old >/dev/null 2>&1 || true; fi; \
	done < $$tars/list

# .env beside the compose file: vp up's credentials (made once, kept in its
# data folder) and this host's paths the image-builder mounts.
.PHONY: compose-env
compose-env: $(BIN)/vp-compose
	$(BIN)/vp-compose env --out $(COMPOSE_ENV) --rootfs $(CACHE)/rootfs --goroot "$$($(GO) env GOROOT)" --gomodcache "$$($(GO) env GOMODCACHE)"

.PHONY: compose-up
compose-up: compose-env ## Run the platform under Docker Compose (after make compose-images); the same addresses and credentials as vp up
	$(COMPOSE) up -d
	@. $(COMPOSE_ENV); for i in $$(seq 300); do curl -fsS -o /dev/null http://127.0.0.1:$${VP_GATEWAY_PORT:-8088}/health/readiness 2>/dev/null && break; sleep 0.2; done; \
	echo; echo "Vision Platform is up under compose (project $(COMPOSE_PROJECT); make compose-down stops it)."; \
	echo "  gateway (API, console)  http://127.0.0.1:$${VP_GATEWAY_PORT:-8088}  token $$VP_GATEWAY_TOKEN"; \
	echo "  MinIO (S3 API)          http://127.0.0.1:$${VP_MINIO_PORT:-9000}  user $$VP_MINIO_USER  password $$VP_MINIO_PASSWORD"; \
	echo "  broker ingress          http://127.0.0.1:$${VP_BROKER_PORT:-8080}/default/default"; \
	echo "  OCI registry            127.0.0.1:$${VP_REGISTRY_PORT:-5000}"; \
	echo "Try: make demo"

.PHONY: compose-down
compose-down: ## Stop the compose platform (its volumes stay; VOLUMES=1 removes them too)
	@test -f $(COMPOSE_ENV) || touch $(COMPOSE_ENV)
	$(COMPOSE) down $(if $(VOLUMES),--volumes)

.PHONY: demo
demo: build ## Generate a small dataset, upload it to the running platform (vp up or compose), follow its job live, and say where the time went
	$(BIN)/vp demo $(DEMO_FLAGS)
