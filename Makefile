# sensegate developer tasks. `make test` is what CI runs (.ci/run).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: test fmt-check vet unit e2e build demo qliksim clean

## test: gofmt check, go vet, the whole Go suite under the race detector, and
## the end-to-end suite with real clients (installs Node packages as needed)
test: fmt-check vet unit e2e

fmt-check:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	./scripts/deps.sh
	$(GO) test -race -count=1 ./...

e2e:
	./scripts/e2e.sh

## build: the sensegate binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sensegate ./cmd/sensegate

## demo: the one-command demo: simulator + sensegate + sample mashup on http://localhost:8080
demo:
	$(GO) run ./cmd/sensegate demo --data-dir .demo

## qliksim: the QSEoW simulator alone, on its default loopback ports
qliksim:
	$(GO) run ./cmd/sensegate qliksim --cert-dir .demo/certs

clean:
	rm -rf bin .demo
