# kiln's build, test and demo targets. "make help" lists them.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin/kiln
FUZZTIME ?= 30s
# Packages with fuzz targets, and the target in each.
FUZZ := ./pkg/treeinfo:FuzzParse ./pkg/builder:FuzzPackages ./pkg/kickstart:FuzzParse ./pkg/tdl:FuzzParse ./ksserve:FuzzPaths ./ksserve:FuzzRequest ./iso:FuzzReader ./pkg/fat:FuzzReader ./integration/internal/anaconda:FuzzParseLocation ./ksserve/tftp:FuzzParseRequest

.PHONY: help setup bench-setup build fixtures test bench bench-proxy bench-proxy-link bench-netboot bench-iso bench-build bench-vm fuzz lint demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## install Debian packages and Go modules the build and tests need
	@scripts/setup.sh

build: ## build bin/kiln
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kiln

fixtures: setup ## build the integration tests' installer, mirror and install media into .cache/fixtures (cached)
	$(GO) run ./integration/cmd/fixtures

test: setup ## run every test (CI=true turns missing-tool skips into failures)
	$(GO) vet ./...
	$(GO) test -count=1 -race -timeout 45m $$($(GO) list ./... | grep -v '/integration')
	$(GO) test -count=1 -timeout 45m ./integration/...

bench-setup: setup
	@PACKAGES_FILE=.ci/bench-packages scripts/setup.sh

bench: bench-setup ## run the benchmarks, printing ratios against the peer tools
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...

bench-proxy: bench-setup ## the mirror proxy against nginx's proxy_cache and direct downloads
	$(GO) test -run '^$$' -bench 'Proxy' -benchtime 3x ./ksserve

bench-proxy-link: bench-setup ## the cold cache with the upstream behind a 1 Gbit/s link (HTB, in a private network namespace)
	$(GO) build -o /dev/null ./cmd/kiln && $(GO) test -c -o ksserve/ksserve.test ./ksserve
	cd ksserve && KILN_BENCH_LINK=$${KILN_BENCH_LINK:-1gbit} unshare -rn ./ksserve.test -test.run '^$$' -test.bench 'ProxyColdLink' -test.benchtime 3x

bench-netboot: bench-setup ## kiln serve --iso serving out of the ISO against nginx serving the same files from disk; one --boot pxe build against --boot direct
	$(GO) test -run '^$$' -bench 'ISOTree' -benchtime 3x ./ksserve
	$(GO) test -run '^$$' -bench 'BuildPXE' -benchtime 1x -timeout 60m ./integration

bench-iso: bench-setup ## kiln iso against cp and xorriso on a 2 GB DVD-like image (ext4, and XFS with reflinks as root)
	$(GO) test -run '^$$' -bench Remaster -benchtime 1x -timeout 60m ./iso

bench-build: bench-setup ## kiln build --boot direct against --boot iso and Debian's packer, on the DVD fixture; what --accel auto adds over tcg; the output phases apart
	$(GO) test -run '^$$' -bench Build -benchtime 2x -timeout 60m ./integration

bench-vm: bench-setup ## kiln's supervision overhead over a bare qemu-system-x86_64
	$(GO) test -run '^$$' -bench Overhead -benchtime 5x ./qemu

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

demo: setup build ## the reference scenario end to end: check, then kiln build from a Rocky-like DVD
	@scripts/demo.sh

clean:
	rm -rf bin
