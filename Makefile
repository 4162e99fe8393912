# ingesta — every workflow starts here. `make demo` and `make test` set up
# everything they need (Rust target, Kafka jars, a local KRaft broker).

SHELL := /bin/bash
CARGO ?= cargo
GUESTS := -p noop -p identity -p activity-stats -p action-enricher -p shop-generator -p shop-ingest -p beacon -p not-a-consumer -p hostile -p hostile-producer -p conformance-echo -p conformance-beacon
GUEST_DIR := target/wasm32-wasip2/guest
# Go and Python projects, built with `ingesta build` (deploy/guests.sh).
GO_PROJECTS := guest-examples/go/activity-stats guest-examples/go/cart-alerts tests/conformance/go/echo tests/conformance/go/beacon
PY_PROJECTS := guest-examples/python/activity-stats guest-examples/python/pii-router tests/conformance/python/echo tests/conformance/python/beacon
# Native test runs of the Go and Python SDKs and projects.
PY_TEST := PYTHONPATH=$(CURDIR)/sdk/python python3 -m unittest discover -s tests -t .

.PHONY: all setup kafka-up kafka-fresh kafka-down kafka-status build guests lint unit sdk-test integration test demo bench clean

all: build guests

## setup: install the Rust target, build prerequisites and Kafka jars (idempotent)
setup:
	@bash deploy/setup.sh

## kafka-up / kafka-down: start or stop the local single-node KRaft broker on 127.0.0.1:9092
kafka-up: setup
	@bash deploy/kafka/kafka.sh start
## kafka-fresh: the same, on an emptied data dir unless a broker is already running
## (tests and benchmarks create throwaway topics; runs would otherwise pile them up)
kafka-fresh: setup
	@bash deploy/kafka/kafka.sh start --fresh
kafka-down:
	@bash deploy/kafka/kafka.sh stop
kafka-status:
	@bash deploy/kafka/kafka.sh status

## build: the runner and the test/demo tools (release: tests and demo use it too)
build: setup
	$(CARGO) build --release -p ingesta -p ingesta-tests

## guests: every guest example and test fixture, as wasm components
## (Rust with cargo; Go and Python with `ingesta build`)
guests: setup build
	$(CARGO) build --target wasm32-wasip2 --profile guest $(GUESTS)
	@bash deploy/guests.sh $(GO_PROJECTS) $(PY_PROJECTS)

## lint: formatting and clippy with warnings as errors
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

## unit: unit and doc tests (no broker needed)
unit: setup
	$(CARGO) test --release --workspace --lib --bins

## sdk-test: the Go and Python SDKs' and projects' own unit tests, natively
sdk-test: setup
	@eval "$$(bash sdk/go/tools/goproxy.sh)" && for m in sdk/go $(GO_PROJECTS); do \
		echo "go test: $$m"; (cd $$m && go test ./...) || exit 1; done
	@for m in sdk/python $(PY_PROJECTS); do \
		echo "python tests: $$m"; (cd $$m && $(PY_TEST)) || exit 1; done

## integration: end-to-end tests against the real broker
integration: kafka-fresh build guests
	$(CARGO) test --release -p ingesta-tests --tests -- --test-threads=2

## test: everything CI checks, from a fresh clone
test: setup lint sdk-test kafka-fresh build guests
	$(CARGO) test --release --workspace -- --test-threads=2

## demo: local Kafka + runner + the shop example, with live stats and alerts
demo: kafka-up build guests
	@bash deploy/demo/run.sh

## bench: throughput of raw consume vs ingesta (see docs/benchmarks.md)
bench: kafka-fresh build guests
	$(CARGO) run --release -p ingesta-tests --bin ingesta-bench -- --out target/bench-latest.md
	$(CARGO) run --release -p ingesta-tests --bin deploy-bench | tee target/bench-deploy-latest.md
	$(CARGO) run --release -p ingesta-tests --bin density-bench | tee target/bench-density-latest.md
	$(CARGO) run --release -p ingesta-tests --bin density-bench -- --deployments 1000 --sleep-after-ms 5000 \
		| tee target/bench-density-asleep-latest.md
	$(CARGO) run --release -p ingesta-tests --bin latency-bench | tee target/bench-latency-latest.md
	$(CARGO) run --release -p ingesta-tests --bin ingest-bench | tee target/bench-ingest-latest.md
	$(CARGO) run --release -p ingesta-tests --bin sdk-bench | tee target/bench-sdk-latest.md
	$(CARGO) run --release -p ingesta-tests --bin ingesta-bench -- --sizes 100 --records 200000 \
		--cases raw,activity-stats,activity-stats-go,activity-stats-python --out target/bench-lang-latest.md
	@echo "results: target/bench-latest.md (compare with docs/benchmarks.md)"

clean:
	$(CARGO) clean
