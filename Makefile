# Wisp — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/wisp
# wisp --version and GET /v1/info name the commit (the toolchain's own VCS
# stamp is off where GOFLAGS has -buildvcs=false).
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -X github.com/wisp-run/wisp/internal/buildinfo.commit=$(COMMIT)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT := $(shell $(GO) env GOPATH)/bin/golangci-lint
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can fail
# a clean run with "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27). 20000 inputs take 1-5 s per target here.
FUZZTIME ?= 20000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/wisp and bin/wisp-watchdog (the stdin/stdout function server)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/wisp
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/wisp-watchdog ./cmd/wisp-watchdog

.PHONY: run
run: build ## Start Wisp with its embedded defaults (admin API on 127.0.0.1:8081, data in ./wisp-data)
	./$(BIN) serve

.PHONY: test
test: ## Run the whole test suite with -race, then each fuzz target briefly
	$(GO) vet ./...
	$(GO) test -race -count=1 -p 3 -parallel 4 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

.PHONY: fuzz
fuzz: ## Run each fuzz target on FUZZTIME inputs (default 20000x)
	$(GO) test -run='^$$' -fuzz='^FuzzTrafficValidate$$' -fuzztime=$(FUZZTIME) ./internal/core
	$(GO) test -run='^$$' -fuzz='^FuzzParseRequestRule$$' -fuzztime=$(FUZZTIME) ./internal/core
	$(GO) test -run='^$$' -fuzz='^FuzzRequestDecoding$$' -fuzztime=$(FUZZTIME) ./internal/api
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeList$$' -fuzztime=$(FUZZTIME) ./internal/store/sqlite
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeWeights$$' -fuzztime=$(FUZZTIME) ./internal/store/sqlite
	$(GO) test -run='^$$' -fuzz='^FuzzFromHTTP$$' -fuzztime=$(FUZZTIME) ./internal/cloudevent
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/schedule

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run go vet and golangci-lint
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: demo
demo: ## Replay the part-4 walkthrough (DEMO_ADMIN, DEMO_ROUTER: its addresses): build an image, three versions, a 10/30/60 split, scale to zero
	./scripts/demo.sh

.PHONY: bench-coldstart
bench-coldstart: ## Cold start and wake from pause through Wisp vs docker run and the bare Docker API (needs Docker)
	$(GO) run ./bench/coldstart

.PHONY: bench-burst
bench-burst: ## Time from a burst to 10 ready instances, by sandbox pool size and parallel starts, vs no pool and 3 starts (needs Docker; about 3 min)
	$(GO) run ./bench/burst

.PHONY: bench-proxy
bench-proxy: ## Router throughput and latency vs the container directly and a plain ReverseProxy, at 1 and 50 connections (needs Docker)
	$(GO) build -o bin/bench-proxy ./bench/proxy && ./bin/bench-proxy

.PHONY: bench-logs
bench-logs: ## Router throughput at 50 connections, 20 instances printing 500 lines/s each, log capture on vs off (needs Docker; about 3 min)
	$(GO) run ./bench/logs
	$(GO) test -run '^$$' -bench Append -benchtime 200000x ./bench/logs

.PHONY: bench-async
bench-async: ## Durable async submissions/s and latency, enqueue-to-start, vs sync requests to the same function, at 50 connections (needs Docker; about 1 min)
	$(GO) build -o bin/bench-async ./bench/async && ./bin/bench-async

.PHONY: chaos
chaos: ## The chaos tier: 60 s of load on the real engine while containers are frozen and killed and the daemon is killed -9, then chaos-async (needs Docker)
	$(GO) test -tags chaos -count=1 -v -timeout 10m -run '^TestChaos$$' ./test/chaos
	$(MAKE) --no-print-directory chaos-async

.PHONY: chaos-async
chaos-async: ## Nothing lost: 10,000 async calls through the real binary while the daemon is killed -9 twice (needs Docker; about 3 min)
	$(GO) test -tags chaos -count=1 -v -timeout 20m -run '^TestChaosAsync$$' ./test/chaos

.PHONY: test-browser
test-browser: ## The dashboard in headless Chromium (Debian's chromium) against a real daemon on Docker; screenshots in a temp dir
	$(GO) test -tags browser -count=1 -v -timeout 10m -run 'Browser' ./test/browser

.PHONY: bench-scale
bench-scale: build ## Admin changes and creates at 100, 1,000 and 10,000 services, and the daemon's RSS (needs Docker; about 2 min)
	$(GO) run ./bench/scale -wisp $(BIN)

.PHONY: image
image: ## Build Wisp's own image, wisp:latest (FROM scratch, a static binary; deploy/Dockerfile)
	mkdir -p bin/image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/image/wisp ./cmd/wisp
	docker build -q -t wisp:latest -f deploy/Dockerfile bin/image

.PHONY: kube-build
kube-build: ## Build and cache the test cluster's Kubernetes binaries (cold: about 15 min once)
	./scripts/kube/build.sh

.PHONY: kube-up
kube-up: ## Start the single-node test cluster and its loopback registry (needs root; warm: about 10 s)
	./scripts/kube/up.sh

.PHONY: kube-down
kube-down: ## Stop the test cluster and undo its changes to the host
	./scripts/kube/down.sh

.PHONY: test-kube
test-kube: kube-up ## The Kubernetes tier on the test cluster: runtime conformance, two replicas on Postgres end to end, the manifests (one package at a time: they share the cluster)
	WISP_KUBE_REQUIRED=1 $(GO) test -race -count=1 -p 1 -timeout 20m -run 'Kube' -v ./internal/runtime/kube/... ./test/kube/...

.PHONY: bench-kube
bench-kube: kube-up ## Cold start on the test cluster through Wisp vs a Deployment made by hand (create → Ready → request)
	$(GO) run ./bench/kube

.PHONY: clean
clean: ## Remove build output (keeps ./wisp-data)
	rm -rf bin
