#!/usr/bin/env bash
# The shop demo (`make demo`): the runner on the local broker with six
# deployments of the tenant "shop", all made through the control API:
#   shop-generator  a producer module (Rust) making shop traffic on a timer
#   shop-ingest     a producer module (Rust) validating webhook posts
#   activity-stats  a consumer module (Rust) keeping statistics and raising alerts
#   cart-alerts     a consumer module (Go) spotting add-to-cart bursts per user
#   pii-router      a consumer module (Python) redacting and routing events
#   action-enricher a consumer module (Rust): the Kafka tutorial's pipeline,
#                   user-actions-topic -> processed-user-actions-topic
# and a live view of the statistics and alerts. In the background, the
# tutorial's own kafka-python scripts (deploy/demo/tutorial) feed and read
# action-enricher: producer.py sends a few user actions a second and one
# unreadable record (dead-lettered to user-actions-dlq), consumer.py prints
# the processed events to target/demo/tutorial-consumer.log.
# Expects `make kafka-up build guests` to have run (the Makefile does that;
# `make setup` makes the tutorial's kafka-python virtualenv).
#   DEMO_SECONDS=60  stop by itself after a minute (default: until Ctrl-C)
#   DEMO_RATE=200    events per second from the generator
#   TUTORIAL_RATE=3  events per second from the tutorial's producer
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=target/release
run=target/demo
mkdir -p "$run"
rate=${DEMO_RATE:-200}
tutorial_rate=${TUTORIAL_RATE:-3}
tutorial_python=deploy/demo/tutorial/python.sh
"$tutorial_python" -c 'import kafka' || exit 1

echo "demo: starting ingesta (log: $run/ingesta.log)"
"$bin/ingesta" serve --config deploy/demo/ingesta.toml >"$run/ingesta.log" 2>&1 &
runner=$!
tutorial_pids=()
stop() {
  # The tutorial's scripts first: the producer flushes, the consumer
  # commits what it read, both while the runner and broker are still up.
  for pid in "${tutorial_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${tutorial_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  kill -TERM "$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null && echo "demo: ingesta drained, committed and stopped" \
    || echo "demo: ingesta exited with an error; see $run/ingesta.log"
}
trap stop EXIT

export INGESTA_API=http://127.0.0.1:8480 INGESTA_TOKEN=demo-shop-token
for _ in $(seq 1 120); do
  curl -fs "$INGESTA_API/readyz" >/dev/null 2>&1 && break
  kill -0 "$runner" 2>/dev/null || { cat "$run/ingesta.log"; exit 1; }
  sleep 0.5
done

# The topics, created as the tenant "shop" would, within its create_topics
# grant: the tutorial's pipeline with the tutorial's settings (7 days,
# 1 GiB segments, 10 GiB per partition; replication 1 on this single
# broker: use --replication-factor 3 --config min.insync.replicas=2 on a
# production cluster).
echo "demo: creating the topics through the control API (ingesta topic create)"
topic() { "$bin/ingesta" topic create "$@" --if-not-exists; }
for t in user-activity:4 user-activity-stats:4 user-activity-alerts:1 user-activity-cart-alerts:1 \
  user-activity-clean:4 user-activity-quarantine:1 user-activity-stats-dlq:1 \
  user-activity-cart-alerts-dlq:1 user-activity-pii-router-dlq:1 user-actions-dlq:1; do
  topic "${t%%:*}" --partitions "${t##*:}" --retention-hours 24
done
for t in user-actions-topic processed-user-actions-topic; do
  topic "$t" --partitions 3 --retention-hours 168 \
    --config segment.bytes=1073741824 --config retention.bytes=10737418240
done

# Deploy as the tenant "shop" would: upload the module and create the
# deployment through the control API (its state is kept in Kafka, so a
# previous demo's deployment is replaced).
for d in activity-stats cart-alerts pii-router action-enricher shop-generator shop-ingest; do
  "$bin/ingesta" rm "$d" >/dev/null 2>&1 || true
done
echo "demo: deploying activity-stats (Rust), cart-alerts (Go), pii-router (Python) and action-enricher (Rust) through the control API"
"$bin/ingesta" deploy --file deploy/demo/activity-stats.toml
"$bin/ingesta" deploy --file deploy/demo/cart-alerts.toml
"$bin/ingesta" deploy --file deploy/demo/pii-router.toml
"$bin/ingesta" deploy --file deploy/demo/action-enricher.toml

# Wait until the deployments have joined their groups, so `start = latest`
# does not skip the first simulated events.
for _ in $(seq 1 120); do
  [ "$(grep -c "partitions assigned" "$run/ingesta.log")" -ge 4 ] && break
  kill -0 "$runner" 2>/dev/null || { cat "$run/ingesta.log"; exit 1; }
  sleep 0.5
done

echo "demo: deploying shop-generator: shop traffic at $rate events/s from a wasm module on a timer"
"$bin/ingesta" deploy --file deploy/demo/shop-generator.toml \
  --config topic=user-activity --config rate="$rate"

echo "demo: deploying shop-ingest: a webhook endpoint that validates shop events"
"$bin/ingesta" deploy --file deploy/demo/shop-ingest.toml
ingest="$INGESTA_API/v1/ingest/shop-ingest"
now=$(($(date +%s) * 1000))
echo "demo: POST a valid purchase to $ingest (answered once Kafka has it):"
curl -s -X POST "$ingest" -H "Authorization: Bearer demo-ingest-key" \
  -d "{\"user_id\":42,\"action\":\"purchase\",\"product_id\":149,\"product_name\":\"Expedition Tent\",\"price\":1199.0,\"ts\":$now}"
echo
echo "demo: POST an invalid event (refused with every reason, nothing published):"
curl -s -X POST "$ingest" -H "Authorization: Bearer demo-ingest-key" \
  -d '{"user_id":"x","action":"refund","product_id":1,"price":-1,"ts":1}'
echo

echo "demo: the Kafka tutorial's scripts (kafka-python): consumer.py reading processed-user-actions-topic,"
echo "      producer.py sending $tutorial_rate user actions/s and 1 unreadable record to user-actions-topic"
"$tutorial_python" deploy/demo/tutorial/consumer.py >"$run/tutorial-consumer.log" 2>&1 &
tutorial_pids+=($!)
"$tutorial_python" deploy/demo/tutorial/producer.py --rate "$tutorial_rate" --bad 1 \
  >"$run/tutorial-producer.log" 2>&1 &
tutorial_pids+=($!)

echo "demo: in another terminal (export INGESTA_TOKEN=demo-shop-token):"
echo "        $bin/ingesta ls                        # the six deployments"
echo "        $bin/ingesta top                       # live rates, errors and lag"
echo "        $bin/ingesta status activity-stats     # state, counters, lag per partition"
echo "        $bin/ingesta logs -f activity-stats    # the handler's own log lines"
echo "        $bin/ingesta status cart-alerts        # the Go module; pii-router is the Python one"
echo "        tail -f $run/tutorial-consumer.log  # the tutorial's events, enriched by action-enricher"
echo "        $bin/ingesta dlq ls action-enricher    # the unreadable record, set aside with the reason"
echo "        curl -s $INGESTA_API/metrics           # Prometheus metrics (deploy/monitoring/)"
"$bin/shop-watch" --stats-topic user-activity-stats --alerts-topic user-activity-alerts \
  --from latest ${DEMO_SECONDS:+--seconds "$DEMO_SECONDS"}
