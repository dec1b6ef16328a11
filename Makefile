# stickyseat: `make demo` runs the blog's scenario on a real HAProxy; `make test` runs every test.
GO ?= go
# Debian installs haproxy and redis-server in /usr/sbin and /usr/bin.
export PATH := $(PATH):/usr/sbin:/usr/bin

.PHONY: all build demo test fuzz bench bench-http deps clean

all: build

build:
	$(GO) build -o bin/stickyseat ./cmd/stickyseat

deps:
	@scripts/deps.sh haproxy redis-server docker-compose chromium chromedriver=chromium-driver

demo: build
	@scripts/deps.sh --require haproxy
	$(GO) run ./internal/demo --agent bin/stickyseat $(DEMO_ARGS)

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# Longer fuzzing of the frame guard and the key extractors (not part of `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime $(FUZZTIME) ./agent
	$(GO) test -run '^$$' -fuzz FuzzXML -fuzztime $(FUZZTIME) ./keyfrom
	$(GO) test -run '^$$' -fuzz FuzzJSON -fuzztime $(FUZZTIME) ./keyfrom
	$(GO) test -run '^$$' -fuzz FuzzRegex -fuzztime $(FUZZTIME) ./keyfrom

# Benchmarks of the decision path (numbers in the README come from these).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./store/memory ./assign ./keyfrom

# The same wrk load through HAProxy with stickyseat and with a native stick table, one run.
bench-http: build
	@scripts/deps.sh --require haproxy wrk
	$(GO) run ./bench/httpbench --agent bin/stickyseat --users 1000 --duration 15s

clean:
	rm -rf bin
