# posgate — build, test, demo and benchmark targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...
FUZZTIME ?= 10s
BENCHTIME ?= 1s

.PHONY: help build test demo bench bench-scale fuzz lint deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

deps: ## install the Debian packages tests need when missing: SoftHSM2, opensc, sip-tester (apt as root, else print the command)
	@scripts/deps.sh

build: ## build every binary into ./bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test: deps ## run the whole suite with the race detector and shuffled order
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -count=1 -timeout 20m $(PKGS)

demo: deps build ## start center, gateway and a terminal on embedded defaults; show an approved and a declined sale
	@scripts/demo.sh

bench: deps ## run every benchmark, one package at a time, and write the results to .bench/latest.txt
	@mkdir -p .bench
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS) | tee .bench/latest.txt

bench-scale: deps ## gateway scale benchmark: 100-1000 simulated terminals through the real binaries; table in .bench/scale.md
	@mkdir -p .bench
	POSGATE_SCALE=1 POSGATE_SCALE_OUT=$(CURDIR)/.bench/scale.md $(GO) test -run '^TestGatewayScale$$' -count=1 -v -timeout 30m ./cmd/internal/e2e

fuzz: ## run every fuzz target for $(FUZZTIME) each
	@scripts/fuzz.sh $(FUZZTIME)

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean: ## remove build output and the demo's data
	rm -rf $(BIN) .bench data
