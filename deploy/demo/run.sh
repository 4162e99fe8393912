#!/usr/bin/env bash
# The shop demo (`make demo`): the runner with activity-stats on the local
# broker, a traffic simulator, and a live view of statistics and alerts.
# Expects `make kafka-up build guests` to have run (the Makefile does that).
#   DEMO_SECONDS=60  stop by itself after a minute (default: until Ctrl-C)
#   DEMO_RATE=200    events per second from the simulator
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=target/release
run=target/demo
mkdir -p "$run"
rate=${DEMO_RATE:-200}

"$bin/create-topics" user-activity:4 user-activity-stats:4 user-activity-alerts:1

echo "demo: starting ingesta (log: $run/ingesta.log)"
"$bin/ingesta" serve --config deploy/demo/ingesta.toml >"$run/ingesta.log" 2>&1 &
runner=$!
sim=""
stop() {
  [ -n "$sim" ] && kill -INT "$sim" 2>/dev/null || true
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

# Deploy as the tenant "shop" would: upload the module and create the
# deployment through the control API (its state is kept in Kafka, so a
# previous demo's deployment is replaced).
"$bin/ingesta" rm activity-stats >/dev/null 2>&1 || true
echo "demo: deploying activity-stats through the control API"
"$bin/ingesta" deploy --file deploy/demo/activity-stats.toml

# Wait until the deployment has joined its group, so `start = latest`
# does not skip the first simulated events.
for _ in $(seq 1 60); do
  grep -q "partitions assigned" "$run/ingesta.log" && break
  kill -0 "$runner" 2>/dev/null || { cat "$run/ingesta.log"; exit 1; }
  sleep 0.5
done

echo "demo: simulating shop traffic at $rate events/s (log: $run/shop-sim.log)"
"$bin/shop-sim" --topic user-activity --rate "$rate" >"$run/shop-sim.log" 2>&1 &
sim=$!

echo "demo: in another terminal (export INGESTA_TOKEN=demo-shop-token):"
echo "        $bin/ingesta top                       # live rates, errors and lag"
echo "        $bin/ingesta status activity-stats     # state, counters, lag per partition"
echo "        $bin/ingesta logs -f activity-stats    # the handler's own log lines"
echo "        curl -s $INGESTA_API/metrics           # Prometheus metrics (deploy/monitoring/)"
"$bin/shop-watch" --stats-topic user-activity-stats --alerts-topic user-activity-alerts \
  --from latest ${DEMO_SECONDS:+--seconds "$DEMO_SECONDS"}
