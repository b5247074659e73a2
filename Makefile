# sensegate developer tasks. `make test` is what CI runs (.ci/run).
GO      ?= go

.PHONY: test fmt-check vet unit e2e deploy-check bench-smoke build demo qliksim clean fuzz bench soak

## test: gofmt check, go vet, the whole Go suite under the race detector, and
## the end-to-end suite with real clients (installs Node packages as needed),
## the Helm chart's validation (installs helm and kubeconform in bin/tools),
## and a smoke run of the load harness (installs wrk and nginx)
test: fmt-check vet unit e2e deploy-check bench-smoke

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

## deploy-check: helm lint, helm template | kubeconform -strict (offline schemas)
deploy-check:
	./scripts/deploy-check.sh

## bench-smoke: the load harness once, small and short (bench -quick), failing
## on errors (-strict: failed requests, a wrong ticket count), not on figures
## (a loaded CI machine measures nothing); docs/performance.md is left alone
bench-smoke:
	GO=$(GO) ./scripts/bench.sh -quick -strict -out ''

## build: the sensegate binary in bin/, with the release flags of
## scripts/build.sh (the Dockerfile's too); VERSION=… COMMIT=… override git's
build:
	GO=$(GO) VERSION=$(VERSION) COMMIT=$(COMMIT) ./scripts/build.sh bin/sensegate

## demo: the one-command demo: simulator + sensegate + sample mashup on http://localhost:8080
## (cmd/sensegate-demo, a development tool apart from the sensegate binary)
demo:
	$(GO) run ./cmd/sensegate-demo --data-dir .demo

## qliksim: the QSEoW simulator alone, on its default loopback ports
qliksim:
	$(GO) run ./cmd/qliksim --cert-dir .demo/certs

## fuzz: each fuzz target for FUZZTIME (their seeds run as tests in `make unit`)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run XXX -fuzz '^FuzzHeaderIdentify$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzHeaderIdentifyUntrusted$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzParseUser$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzSafeRedirect$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzUserKey$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzOpenString$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzJWTIdentify$$' -fuzztime $(FUZZTIME) ./identity/
	$(GO) test -run XXX -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./seal/
	$(GO) test -run XXX -fuzz '^FuzzStripTicketParams$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run XXX -fuzz '^FuzzDropCookies$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run XXX -fuzz '^FuzzRPCScanner$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run XXX -fuzz '^FuzzParseOpenDoc$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run XXX -fuzz '^FuzzIsLoginRedirect$$' -fuzztime $(FUZZTIME) ./qlik/
	$(GO) test -run XXX -fuzz '^FuzzTicketResponse$$' -fuzztime $(FUZZTIME) ./ticket/
	$(GO) test -run XXX -fuzz '^FuzzXrfkey$$' -fuzztime $(FUZZTIME) ./tooling/qliksim/
	$(GO) test -run XXX -fuzz '^FuzzAttributeJSON$$' -fuzztime $(FUZZTIME) ./tooling/qliksim/

## bench: the load harness on loopback (installs wrk and nginx from Debian when
## missing): direct, bare ReverseProxy, nginx and sensegate in front of the
## simulator; writes docs/performance.md. Not part of `make test`.
## BENCHFLAGS=-quick for a smoke test.
bench:
	GO=$(GO) ./scripts/bench.sh $(BENCHFLAGS)

## soak: the isolation test (200 users, HTTP and websockets, Qlik restart and
## idle timeouts mid-run) with ten times the iterations of `make unit`'s run
soak:
	SENSEGATE_SOAK=1 $(GO) test -race -count=1 -timeout 30m -run '^TestIsolationUnderLoad$$' -v ./proxy/

clean:
	rm -rf bin .demo
