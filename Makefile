# fanin — see README.md. CI runs `make test` (via .ci/run), exactly as a developer does.
GO ?= go

.PHONY: build test lint bench demo fuzz soak tools clean

build: ## the ingest binary, in ./bin
	$(GO) build -o bin/ingest ./cmd/ingest

test: lint bin/litestream ## vet, then every test with the race detector (embedded NATS, SQLite in temp dirs)
	$(GO) test -race -count=1 -timeout 15m ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: ## the benchmark harness: drain vs sink vs per-message vs fanin, in one run
	$(GO) run ./bench

demo: ## a simulated 10,000-PC broadcast on the embedded server
	$(GO) run ./cmd/ingest demo

fuzz: ## a minute of fuzzing per codec target
	$(GO) test -run='^$$' -fuzz=FuzzDecodeStarted -fuzztime=60s ./internal/codec
	$(GO) test -run='^$$' -fuzz=FuzzDecodeResult -fuzztime=60s ./internal/codec

soak: bin/litestream ## the long fault runs: 100k-message SIGKILL test, 5,000 model cases (not in CI)
	FANIN_SOAK=1 $(GO) test -count=1 -timeout 30m ./internal/sink/ ./faults/

tools: bin/litestream ## the pinned tools the tests run as processes (built once, from the module proxy)

bin/litestream: tools/litestream/go.mod tools/litestream/go.sum ## litestream, for faults/litestream_test.go
	cd tools/litestream && $(GO) build -o ../../bin/litestream github.com/benbjohnson/litestream/cmd/litestream

clean:
	rm -rf bin fanin-demo.db fanin-demo.db-wal fanin-demo.db-shm
