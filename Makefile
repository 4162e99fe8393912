# ingesta — every workflow starts here. `make demo` and `make test` set up
# everything they need (Rust target, Kafka jars, a local KRaft broker).

SHELL := /bin/bash
CARGO ?= cargo
GUESTS := -p noop -p identity -p activity-stats -p shop-generator -p shop-ingest -p beacon -p not-a-consumer -p hostile -p hostile-producer
GUEST_DIR := target/wasm32-wasip2/guest

.PHONY: all setup kafka-up kafka-down kafka-status build guests lint unit integration test demo bench clean

all: build guests

## setup: install the Rust target, build prerequisites and Kafka jars (idempotent)
setup:
	@bash deploy/setup.sh

## kafka-up / kafka-down: start or stop the local single-node KRaft broker on 127.0.0.1:9092
kafka-up: setup
	@bash deploy/kafka/kafka.sh start
kafka-down:
	@bash deploy/kafka/kafka.sh stop
kafka-status:
	@bash deploy/kafka/kafka.sh status

## build: the runner and the test/demo tools (release: tests and demo use it too)
build: setup
	$(CARGO) build --release -p ingesta -p ingesta-tests

## guests: every guest example and test fixture, as wasm components
guests: setup
	$(CARGO) build --target wasm32-wasip2 --profile guest $(GUESTS)

## lint: formatting and clippy with warnings as errors
lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

## unit: unit and doc tests (no broker needed)
unit: setup
	$(CARGO) test --release --workspace --lib --bins

## integration: end-to-end tests against the real broker
integration: kafka-up build guests
	$(CARGO) test --release -p ingesta-tests --tests -- --test-threads=2

## test: everything CI checks, from a fresh clone
test: setup lint kafka-up build guests
	$(CARGO) test --release --workspace -- --test-threads=2

## demo: local Kafka + runner + the shop example, with live stats and alerts
demo: kafka-up build guests
	@bash deploy/demo/run.sh

## bench: throughput of raw consume vs ingesta (see docs/benchmarks.md)
bench: kafka-up build guests
	$(CARGO) run --release -p ingesta-tests --bin ingesta-bench -- --out target/bench-latest.md
	$(CARGO) run --release -p ingesta-tests --bin deploy-bench | tee target/bench-deploy-latest.md
	$(CARGO) run --release -p ingesta-tests --bin ingest-bench | tee target/bench-ingest-latest.md
	@echo "results: target/bench-latest.md (compare with docs/benchmarks.md)"

clean:
	$(CARGO) clean
