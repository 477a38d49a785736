# Vigil: one command builds everything, one runs every test, one starts the demo.
# Every target installs what it needs (npm packages, Go modules) when it is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

VERSION := $(shell node -p "require('./package.json').version")
HOSTARCH := $(shell go env GOARCH)
PLUGIN_ZIP := vigil-cdp-app-$(VERSION).zip
GO_TEST_FLAGS ?= -race -count=1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: build demo-ha bench-postgres frontend backend cli agent harness testhost test check typecheck lint jest go-vet go-lint go-test go-test-short agent-unit-test \
        agent-test browser-test package package-check demo bench soak clean deps prereqs test-steps

## deps: npm packages (workspaces included) from the lock file, Go modules.
deps: node_modules/.install-stamp
	go mod download

# Long steps say that they still run (PROGRESS): no step of make demo or make test is silent for
# more than 15 s.
PROGRESS := scripts/with-progress.sh

node_modules/.install-stamp: package.json package-lock.json agent/package.json
	@$(PROGRESS) "installing npm packages (npm ci; about 850 MB on a first run)" npm ci --no-audit --no-fund
	touch $@

# The agent alone (make demo, make agent) needs only the agent's packages (about 50 MB), not the
# frontend toolchain: installed on their own unless the full install above is already there.
node_modules/.agent-stamp: package-lock.json agent/package.json
	@if [ -f node_modules/.install-stamp ] && [ node_modules/.install-stamp -nt package-lock.json ] && \
	    [ node_modules/.install-stamp -nt agent/package.json ]; then touch $@; else \
	  $(PROGRESS) "installing the agent's npm packages" npm ci -w vigil-agent --include-workspace-root=false --no-audit --no-fund && touch $@; fi

## build: the app and nested plugins into dist/, both backend executables, bin/vigil, the agent.
build: frontend backend cli agent

frontend: node_modules/.install-stamp
	@$(PROGRESS) "building the frontend (webpack)" npx webpack -c .config/webpack/webpack.config.ts --env production --no-stats

# After the frontend: webpack cleans dist/ but keeps files named *_amd64/*_arm64 and the Go manifest.
# The create-plugin way: Magefile.go and the plugin SDK's build package write gpx_vigil_linux_amd64,
# gpx_vigil_linux_arm64 and go_plugin_build_manifest into dist/datasource; mage is a tool of go.mod.
backend: frontend
	@$(PROGRESS) "building the datasource's backend for linux/amd64 and linux/arm64 (mage)" go tool mage -v executables

cli:
	CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/vigil-cdp/vigil/pkg/cli.Version=$(VERSION)" -o bin/vigil ./cmd/vigil

agent: node_modules/.agent-stamp
	npm run build -w agent

# Test-only pieces: the stand-in for Grafana (host + page bundle).
harness: node_modules/.install-stamp
	@$(PROGRESS) "building the test harness (webpack)" npx webpack -c test/harness/webpack.config.ts --no-stats

testhost:
	go build -o bin/test/vigil-testhost ./test/grafanahost/cmd/vigil-testhost
	go build -o bin/test/vigil-package-check ./test/pluginpackage/cmd/vigil-package-check

## test: every test. Fast checks first, then the built product end to end; then a check that the
## run left nothing behind (no process of it still running, nothing in its temporary folder).
test:
	@scripts/run-clean.sh $(MAKE) --no-print-directory test-steps
	@echo "make test: all checks passed"

test-steps: prereqs typecheck lint jest go-vet go-lint go-test agent-test build package package-check browser-test

# What make test needs besides Node.js and Go, checked before anything runs.
prereqs:
	@scripts/need.sh test chromium zip postgresql

## check: the fast inner loop (under a minute once its caches are warm): types, lint (ESLint,
## Prettier, gofmt, staticcheck), go vet, go test -short (no built agent, no real agents, no
## executables built) and the agent's unit tests that start no agent. No browser, no build.
## make test runs everything.
check: node_modules/.install-stamp
	@mkdir -p $(CHECK_CACHE_DIR)
	@$(MAKE) --no-print-directory -j2 --output-sync=target CHECK_CACHE=1 typecheck lint go-vet go-lint go-test-short agent-unit-test
	@echo "make check: all checks passed"

go-test-short:
	go test -short ./...

agent-unit-test: node_modules/.install-stamp
	cd agent && node --import tsx --test --test-concurrency=1 $(AGENT_UNIT_TESTS)

# The agent's tests that start no agent and no agent command, for make check (make agent-test runs
# them all).
AGENT_UNIT_TESTS := test/backoff.test.ts test/events.test.ts test/redact.test.ts test/fuzz-config.test.ts \
	test/docs-config.test.ts test/verify-summary.test.ts test/replicator-store.test.ts test/replicator-capture.test.ts

# make check keeps caches in node_modules/.cache/vigil between runs (tsc's build info, ESLint's and
# Prettier's caches; Go keeps its own test cache); make test runs without them. ESLint's cache does not
# see a change in another file's types: make test (or make lint) catches what it misses.
CHECK_CACHE_DIR := $(CURDIR)/node_modules/.cache/vigil
ifdef CHECK_CACHE
TSC_CACHE = --incremental --tsBuildInfoFile $(CHECK_CACHE_DIR)/$(1).tsbuildinfo
ESLINT_CACHE := --cache --cache-strategy content --cache-location $(CHECK_CACHE_DIR)/eslint
PRETTIER_CACHE := --cache --cache-location $(CHECK_CACHE_DIR)/prettier
endif

typecheck: node_modules/.install-stamp
	npx tsc -p tsconfig.json $(call TSC_CACHE,frontend)
	npm run typecheck -w agent $(if $(CHECK_CACHE),-- $(call TSC_CACHE,agent))

lint: node_modules/.install-stamp
	npx eslint --max-warnings 0 $(ESLINT_CACHE) src test/harness/src test/browser agent/src agent/test agent/bench
	npx prettier --check $(PRETTIER_CACHE) 'src/**/*.{ts,tsx}' 'test/harness/src/**/*.{ts,tsx}' 'test/browser/**/*.ts' '.config/webpack/*.ts' 'agent/src/**/*.ts' 'agent/test/**/*.ts' 'agent/bench/**/*.ts'

jest: node_modules/.install-stamp
	@$(PROGRESS) "running Jest" npx jest --ci

go-vet:
	go vet ./...

## go-lint: every Go file gofmt-formatted, and staticcheck (a tool of go.mod, so it runs offline
## once the modules are downloaded). A finding that needs a design change gets a narrow
## //lint:ignore CHECK reason on the line above it.
go-lint:
	@unformatted=$$(gofmt -l $$(find . -name node_modules -prune -o -name .git -prune -o -name '*.go' -print)); \
	  if [ -n "$$unformatted" ]; then echo "go-lint: not gofmt-formatted (gofmt -w FILE formats it):"; echo "$$unformatted"; exit 1; fi
	go tool staticcheck ./...

# Some Go tests run the real agent (internal/agentproc), so it is built first.
go-test: agent
	@$(PROGRESS) "running go test $(GO_TEST_FLAGS) ./... (a line per package as each ends)" go test $(GO_TEST_FLAGS) ./...

agent-test: node_modules/.install-stamp
	@$(PROGRESS) "running the agent's tests (real agents on loopback)" npm test -w agent

browser-test: build harness testhost
	@scripts/need.sh browser-test chromium
	@$(PROGRESS) "running the browser tests (headless Chromium)" node --import tsx --test --test-concurrency=1 test/browser/*.test.ts

## package: dist/ zipped with a top-level folder named after the plugin id.
package: build
	@scripts/need.sh package zip
	rm -rf build/package && mkdir -p build/package
	cp -r dist build/package/vigil-cdp-app
	rm -f $(PLUGIN_ZIP)
	cd build/package && zip -qr ../../$(PLUGIN_ZIP) vigil-cdp-app
	@echo "packaged $(PLUGIN_ZIP)"

# The plugin validator's offline rules, applied to the zip and, with -source, to the source it was
# built from (build tooling, Go manifest, source maps); see docs/plugin-package-check.md.
package-check: package testhost
	bin/test/vigil-package-check -source . $(PLUGIN_ZIP)

## demo: the main job on an embedded default (DEMO_PORT, DEMO_PACE, DEMO_STAY: see scripts/demo.sh).
demo:
	@$(PROGRESS) "building the vigil CLI (Go; a first build downloads its modules)" $(MAKE) --no-print-directory cli
	@$(PROGRESS) "installing the agent's npm packages (first run only) and building the agent" $(MAKE) --no-print-directory agent
	./scripts/demo.sh

## bench-postgres: the shared history in PostgreSQL at 10,000 agents x 30 days (about 25 minutes, 45 GB in /var/tmp).
bench-postgres:
	go run ./test/bench/pghistory -agents 10000 -days 30 -minutes 3

## demo-ha: two vigil watch members dividing four agents and sharing a history in PostgreSQL (docs/ha.md).
demo-ha:
	@$(PROGRESS) "building the vigil CLI (Go; a first build downloads its modules)" $(MAKE) --no-print-directory cli
	@$(PROGRESS) "installing the agent's npm packages (first run only) and building the agent" $(MAKE) --no-print-directory agent
	./scripts/demo-ha.sh

## bench: benchmarks; figures go to docs/benchmarks.md.
bench: agent
	@command -v rsync >/dev/null || { echo "bench: installing rsync (the replicator's catch-up is compared with rsync's scan)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync >/dev/null; }
	npm run bench -w agent
	npm run bench:replicator -w agent
	npm run bench:journal -w agent
	npm run bench:request-log -w agent
	go test -run XXX -bench PollCycle -benchtime 5x -benchmem ./pkg/engine
	go run ./test/bench/fleet -agents 10000 -interval 10s -cycles 3 -steady 3
	go run ./test/bench/history -agents 10000 -minutes 15 -warmup 3

## soak: the replicator's failure tests at length (make test runs them short): 300 kill -9
## during random changes, a minute of in-place rewrites while capturing. About 10 minutes.
soak: node_modules/.install-stamp
	cd agent && VIGIL_KILL_LOOPS=$${VIGIL_KILL_LOOPS:-300} VIGIL_TORN_SECONDS=$${VIGIL_TORN_SECONDS:-60} \
	  node --import tsx --test --test-concurrency=1 --test-timeout=3600000 test/replicator-failures.test.ts test/replicator-consistency.test.ts

clean:
	rm -rf dist bin build agent/dist test/harness/dist artifacts vigil-cdp-app-*.zip
