# stickyseat: `make demo` runs the blog's scenario on a real HAProxy; `make test` runs every test.
GO ?= go
# Debian installs haproxy and redis-server in /usr/sbin and /usr/bin.
export PATH := $(PATH):/usr/sbin:/usr/bin

# HAPROXY=/path/to/haproxy makes demo, test-faults and bench use that binary (a path is made
# absolute, as the tests run in their package's directory); HAPROXY_BINS="a b ..." is the
# list `make test` runs every HAProxy test on. Both default to the haproxy on PATH.
HAPROXY ?=
HAPROXY_ABS := $(if $(findstring /,$(HAPROXY)),$(abspath $(HAPROXY)),$(HAPROXY))
ifneq ($(HAPROXY_ABS),)
HAPROXY_ONE := HAPROXY_BINS="$(HAPROXY_ABS)"
endif

.PHONY: all build demo test fuzz bench bench-go bench-spop bench-http deps clean

all: build

build:
	$(GO) build -o bin/stickyseat ./cmd/stickyseat

deps:
	@scripts/deps.sh haproxy redis-server docker-compose chromium chromedriver=chromium-driver

demo: build
	@$(if $(HAPROXY),true,scripts/deps.sh --require haproxy)
	$(HAPROXY_ONE) $(GO) run ./internal/demo --agent bin/stickyseat $(DEMO_ARGS)

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# The fault suite: two HAProxy nodes, two agents, one Redis under steady load while
# agents are killed, Redis stops or stalls, HAProxy reloads and a backend stops; every answer
# is checked. Minutes long, so `make test` skips it (it runs only with STICKYSEAT_FAULTS=1).
test-faults: deps
	$(HAPROXY_ONE) STICKYSEAT_FAULTS=1 $(GO) test -count=1 -timeout 15m -v ./faults

# Longer fuzzing of the frame guard and the key extractors (not part of `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime $(FUZZTIME) ./agent
	$(GO) test -run '^$$' -fuzz FuzzDecoders -fuzztime $(FUZZTIME) ./agent/spop
	$(GO) test -run '^$$' -fuzz FuzzXML -fuzztime $(FUZZTIME) ./keyfrom
	$(GO) test -run '^$$' -fuzz FuzzJSON -fuzztime $(FUZZTIME) ./keyfrom
	$(GO) test -run '^$$' -fuzz FuzzRegex -fuzztime $(FUZZTIME) ./keyfrom

# Benchmarks, all in one go: the Go benchmarks of the decision path, the SPOP targets of
# the agents alone (stickyseat bench, no HAProxy), and the same wrk load through HAProxy in
# five setups. The README's numbers come from it; see its "Numbers" section.
BENCH_ROUNDS ?= 3
BENCH_DURATION ?= 10s
BENCH_USERS ?= 1000,100000
bench: bench-go bench-spop bench-http

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./store/memory ./assign ./keyfrom

# stateless floor vs memory store, growth to 1M live seats, Redis against redis-benchmark.
bench-spop: build
	@scripts/deps.sh --require redis-server
	$(GO) run ./bench/httpbench --agent bin/stickyseat --http=false --spop --rounds $(BENCH_ROUNDS)

# (a) round robin, (b) native stick table, (c) stateless SPOA, (d) stickyseat memory, (e) redis.
bench-http: build
	@scripts/deps.sh --require $(if $(HAPROXY),,haproxy) wrk redis-server
	$(HAPROXY_ONE) $(GO) run ./bench/httpbench --agent bin/stickyseat --users $(BENCH_USERS) --duration $(BENCH_DURATION) --rounds $(BENCH_ROUNDS)

clean:
	rm -rf bin
