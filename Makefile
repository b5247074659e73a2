# sensegate developer tasks. `make test` is what CI runs (.ci/run).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: test fmt-check vet unit build demo qliksim clean

## test: gofmt check, go vet, and the whole Go suite under the race detector
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

## build: the sensegate binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/sensegate ./cmd/sensegate

## demo: the one-command demo (for now: the QSEoW simulator with its admin API)
demo:
	$(GO) run ./cmd/sensegate qliksim --cert-dir .demo/certs --admin-listen 127.0.0.1:4250

## qliksim: the QSEoW simulator alone, on its default loopback ports
qliksim:
	$(GO) run ./cmd/sensegate qliksim --cert-dir .demo/certs

clean:
	rm -rf bin .demo
