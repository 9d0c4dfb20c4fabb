# ringkv build and test entry points. CI (.ci/run) runs `make lint verify`,
# then `make test` and, beside it, `make test-docker`.
GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 10s

# What the binary reports as its version (internal/version): the nearest tag,
# else the commit; a tree with uncommitted changes says so.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# Evaluated once, so every binary of one `make release` carries the same stamp.
VERSION   := $(VERSION)
COMMIT    := $(COMMIT)
BUILD_DATE := $(BUILD_DATE)
VPKG      := github.com/ringkv/ringkv/internal/version
LDFLAGS   := -X $(VPKG).version=$(VERSION) -X $(VPKG).commit=$(COMMIT) -X $(VPKG).date=$(BUILD_DATE)
# Shipped binaries leave out the DWARF and symbol tables (a third smaller);
# stack traces and pprof still name every function.
SHIP_LDFLAGS := -s -w $(LDFLAGS)
IMAGE     ?= ringkv:latest
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: build install release image compose-secrets test test-docker test-short lint golangci-lint-install vet fmt-check fuzz fuzz-ci verify demo bench-compare chaos chaos-docker chaos-sim chaos-short

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ringkv ./cmd/ringkv

# Into $(go env GOBIN), else $(go env GOPATH)/bin: put it on PATH.
install:
	CGO_ENABLED=0 $(GO) install -trimpath -ldflags '$(LDFLAGS)' ./cmd/ringkv
	@gobin=$$($(GO) env GOBIN); echo "installed $${gobin:-$$($(GO) env GOPATH)/bin}/ringkv"

# Static binaries for every platform in RELEASE_PLATFORMS, one tar.gz each,
# and SHA256SUMS over them, in dist/.
release:
	rm -rf dist && mkdir -p dist
	set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; d=ringkv-$(VERSION)-$$os-$$arch; \
		mkdir -p dist/$$d; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(SHIP_LDFLAGS)' -o dist/$$d/ringkv ./cmd/ringkv; \
		cp LICENSE README.md dist/$$d/; \
		tar -C dist -czf dist/$$d.tar.gz $$d; rm -rf dist/$$d; \
	done
	cd dist && sha256sum *.tar.gz > SHA256SUMS && cat SHA256SUMS

# The container image (deploy/docker/Dockerfile), FROM scratch: its build
# context is the static binary, the host's CA bundle and a passwd file, so no
# step pulls from a registry.
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image:
	@test -r $(CA_BUNDLE) || { echo "no CA bundle at $(CA_BUNDLE) (apt-get install ca-certificates, or set CA_BUNDLE)"; exit 1; }
	rm -rf bin/image && mkdir -p bin/image/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(SHIP_LDFLAGS)' -o bin/image/ringkv ./cmd/ringkv
	cp $(CA_BUNDLE) bin/image/ca-certificates.crt
	cp deploy/docker/passwd deploy/docker/group bin/image/
	docker build -q -t $(IMAGE) -f deploy/docker/Dockerfile bin/image

# The CA (ringkv cert), a peer certificate per node and a gossip key that
# deploy/compose.yaml mounts. A directory that holds a CA is left alone: a
# new CA would orphan the running nodes' certificates. The node keys are made
# 0644 because compose bind-mounts each file into containers whose user
# (uid 65532) is not the one that made them; the directory stays 0700.
COMPOSE_SECRETS ?= deploy/compose/secrets
compose-secrets:
	@if [ -e $(COMPOSE_SECRETS)/ca.crt ]; then echo "$(COMPOSE_SECRETS) already holds a CA; left as it is"; else \
		set -e; \
		$(GO) run ./cmd/ringkv cert ca --dir $(COMPOSE_SECRETS) --name ringkv-compose-ca; \
		for n in n1 n2 n3; do $(GO) run ./cmd/ringkv cert node --dir $(COMPOSE_SECRETS) --name $$n --host $$n; done; \
		chmod 0644 $(COMPOSE_SECRETS)/n1.key $(COMPOSE_SECRETS)/n2.key $(COMPOSE_SECRETS)/n3.key; \
		head -c 32 /dev/urandom | base64 > $(COMPOSE_SECRETS)/gossip.keys; \
		chmod 0644 $(COMPOSE_SECRETS)/gossip.keys; \
	fi

# The whole suite but the Docker tests, race detector on; the allocation tests
# again without it (its sync.Pool drops objects at random); then a short fuzz
# pass over every parser. Needs no Docker: the tests that do are behind the
# `docker` build tag (test-docker).
test: vet fmt-check
	$(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(GO) test -count=1 -run 'Allocations' ./internal/...
	$(MAKE) fuzz-ci

# The tests that need Docker (as root) and compose, behind the `docker` build
# tag: the fault suite on real binaries in containers (TestDocker, docs/chaos.md)
# and the compose cluster (TestComposeCluster, docs/deploy.md). One `go test`,
# so the two packages run side by side as they did inside `make test`.
DOCKER_TESTS := '^(TestDocker|TestComposeCluster)$$'
test-docker:
	$(GO) test -tags docker -race -count=1 -timeout 25m -run $(DOCKER_TESTS) ./tests/chaos/scenarios ./tests/deploy

test-short:
	$(GO) test -count=1 -short $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# golangci-lint (.golangci.yml), pinned, built from the module proxy into
# ./bin the first time; a binary there of another version is rebuilt.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := bin/golangci-lint
golangci-lint-install:
	@if ! $(GOLANGCI_LINT) version 2>/dev/null | grep -q 'version $(GOLANGCI_LINT_VERSION:v%=%) '; then \
		GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); fi

lint: vet fmt-check golangci-lint-install
	$(GOLANGCI_LINT) run ./...

# Each fuzz target for FUZZTIME (go test allows one -fuzz target per run).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/record
	$(GO) test -run='^$$' -fuzz='^FuzzReader$$' -fuzztime=$(FUZZTIME) ./internal/resp
	$(GO) test -run='^$$' -fuzz='^FuzzReadFrame$$' -fuzztime=$(FUZZTIME) ./internal/transport
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMeta$$' -fuzztime=$(FUZZTIME) ./internal/membership
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/antientropy
	$(GO) test -run='^$$' -fuzz='^FuzzReplay$$' -fuzztime=$(FUZZTIME) ./internal/storage/applog
	$(GO) test -run='^$$' -fuzz='^FuzzCheckPebbleWAL$$' -fuzztime=$(FUZZTIME) ./internal/storage

# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with a
# bare "context deadline exceeded" when a -fuzztime duration expires while a
# worker is mid-input (golang/go#75804, fixed in Go 1.27); CI hit it on
# FuzzDecodeMeta with no failing input. A count has no deadline to race. 50000
# inputs take 1-5 s per target on the 2-core CI box.
fuzz-ci:
	$(MAKE) fuzz FUZZTIME=50000x

# Fails on drift: go.mod/go.sum that tidy would change, unformatted code,
# or anything else the tree differs in from its last commit.
verify: fmt-check
	$(GO) mod tidy
	git diff --exit-code

demo:
	$(GO) run ./cmd/ringkv demo

# The fault-injection suite (docs/chaos.md). Needs Docker as root; fails, never
# skips, without it. chaos: the long run, every fault (joins and decommissions
# included) on Docker for CHAOS_DURATION, then the simulation's seeds for
# CHAOS_SIM_DURATION each.
CHAOS_DURATION ?= 10m
CHAOS_SIM_DURATION ?= 1m
chaos: chaos-docker chaos-sim

chaos-docker:
	RINGKV_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -tags docker -count=1 -v -timeout 60m \
		-run TestDocker ./tests/chaos/scenarios

chaos-sim:
	RINGKV_CHAOS_DURATION=$(CHAOS_SIM_DURATION) $(GO) test -count=1 -v -timeout 60m \
		-run TestSimulation ./tests/chaos/scenarios

# What `go test -tags docker ./tests/chaos/...` runs by default, verbose so
# the tables show.
chaos-short:
	$(GO) test -tags docker -count=1 -v -timeout 10m ./tests/chaos/...
