# The front door. `make run` starts the server; `make test` sets up what a
# fresh machine lacks and runs every check and test.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        := ./...

.PHONY: run test test-esdb lint fmt vet fuzz bench bench-store bench-rebuild bench-search bench-api bench-resume bench-growth postgres chromium build clean

# The binary runs in the foreground: Ctrl-C shuts it down cleanly (exit 0).
run: postgres build
	./bin/chatd

# -buildvcs=auto stamps the commit into `chatd -version` in a git checkout.
build:
	$(GO) build -buildvcs=auto -o bin/ ./cmd/...

# PostgreSQL's server binaries run the embedded database of `make run` and
# of the tests. On Debian/Ubuntu as root they are installed when missing.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing PostgreSQL (apt-get install postgresql)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries not found: install them (Debian/Ubuntu: sudo apt-get install postgresql)"; exit 1; \
	fi

# Chromium runs the web client's browser test. On Debian/Ubuntu as root it
# is installed when missing; elsewhere that test skips and says why.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Chromium for the browser test (apt-get install chromium)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
		echo "Chromium could not be installed: the browser test will skip"; \
	else \
		echo "Chromium not found: the browser test will skip (Debian/Ubuntu: sudo apt-get install chromium)"; \
	fi

test: postgres chromium lint fuzz
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	@echo "end-to-end API and WebSocket tests again, with the log in EventStoreDB (protocol test server)"
	CHAT_TEST_EVENTSTORE=esdb $(GO) test -race -count=1 -timeout 20m ./internal/chatd/

# The same suites against a real EventStoreDB/KurrentDB: the conformance
# suite and every end-to-end API and WebSocket test, with the log there.
#   EVENTSTORE_TEST_URL=esdb://127.0.0.1:2113?tls=false make test-esdb
test-esdb: postgres
	@if [ -z "$$EVENTSTORE_TEST_URL" ]; then \
		echo "test-esdb: EVENTSTORE_TEST_URL is not set, so there is no EventStoreDB to test against: skipped."; \
		echo "           Start one (docker compose up kurrentdb) and run: EVENTSTORE_TEST_URL=esdb://127.0.0.1:2113?tls=false make test-esdb"; \
	else \
		$(GO) test -race -count=1 -timeout 20m -run 'RealServer' ./eventstore/esdb/ && \
		$(GO) test -race -count=1 -timeout 20m ./internal/chatd/; \
	fi

# Each fuzz target for FUZZTIME (their seeds also run in every go test).
# go test fuzzes one target of one package at a time.
FUZZTIME ?= 3s
FUZZ_TARGETS := ./domain:FuzzParseMetadata ./domain:FuzzScanMessageSent ./internal/jsonscan:FuzzMembers ./http:FuzzJSONBodies ./http:FuzzSendForm ./http:FuzzPage ./http:FuzzDecodeFrame \
	./eventstore:FuzzParsePosition ./internal/ratelimit:FuzzParse
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >/dev/null || \
		{ echo "fuzz $$name stopped; once more (a failing input it found is kept in testdata and fails again at once)"; \
		  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; }; \
	done

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) mod tidy -diff
	$(GO) test -count=1 ./internal/layers/

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

# Benchmarks quote ratios against baselines measured in the same run.
bench: postgres bench-store bench-rebuild bench-search bench-api bench-resume bench-growth

bench-store:
	$(GO) test -run '^$$' -bench Append -benchtime 5000x -count 3 ./eventstore/postgres/
	$(GO) test -run '^$$' -bench Append -benchtime 3000x ./eventstore/esdb/
	$(GO) test -run '^$$' -bench CatchUp -benchtime 20x ./eventstore/esdb/
	$(GO) test -run '^$$' -bench CatchUp -benchtime 1x -timeout 20m ./eventstore/postgres/

# A rebuild of 1,000,000 events next to a raw COPY (REBUILD_EVENTS, REBUILD_ROOMS
# and REBUILD_BATCH change the log and the batch size).
bench-rebuild:
	$(GO) test -run '^$$' -bench Rebuild -benchtime 1x -timeout 20m ./projections/

# The search index backfilled by its live projector from a log of 100,000
# events (SEARCH_EVENTS to change), then rebuilt.
bench-search:
	$(GO) test -run '^$$' -bench SearchBackfill -benchtime 1x -timeout 20m ./projections/

# A WebSocket reconnect 1,000 events back in one room, with 10,000 and
# 200,000 events of other rooms in the log (RESUME_NOISE to change).
bench-resume: postgres
	$(GO) test -run '^$$' -bench ResumeLogLength -benchtime 20x -timeout 20m ./realtime/

bench-api: postgres
	$(GO) run ./cmd/chatbench $(CHATBENCH_FLAGS)

# Send and list latency with 1k, 100k and 1M events in the log and 10, 1k
# and 100k rooms, each cell on a fresh database (a few minutes; choose cells
# with GROWTH_FLAGS="-growth-events 1k,1M -growth-rooms 10").
bench-growth: postgres
	$(GO) run ./cmd/chatbench -scenarios g $(GROWTH_FLAGS)

clean:
	rm -rf bin .data
