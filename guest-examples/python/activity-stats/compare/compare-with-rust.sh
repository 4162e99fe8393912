#!/usr/bin/env bash
# Feeds the same events to the Rust and the Python activity-stats components
# through guest-call and diffs every emitted record (keys, values, headers).
# Usage: compare-with-rust.sh RUST.wasm PYTHON.wasm [GUEST_CALL]
# Error messages are compared separately: the Python ones differ only in
# the wording of JSON syntax errors (Python's json module vs serde_json).
# batch-c holds the Spanish-language tutorial's shapes (aliases, other
# actions, missing and null optional fields, event ids); it is cut into
# batches of 10 so each batch's records get their own timestamps (guest-call
# stamps record i of a batch 1732460000000 + i), which alerts fall back to.
set -eu
rust=$1 py=$2 call=${3:-guest-call}
here=$(dirname "$0")
out=$(mktemp -d)
run() { # wasm input name [guest-call args]
    "$call" "$1" --topic user-activity-stats --topic user-activity-alerts --topic s --topic a \
        "${@:4}" < "$here/$2" | grep -v -e '"compile_ms"' -e '"log"' > "$out/$3"
}
status=0
for lang in rust py; do
    eval wasm=\$$lang
    run "$wasm" batch-a.jsonl "$lang-a" --batch 50
    run "$wasm" batch-b.jsonl "$lang-b" --batch 50
    run "$wasm" batch-b.jsonl "$lang-cfg" --batch 50 --config alert_purchase_over=0.25 \
        --config stats_topic=s --config alerts_topic=a
    run "$wasm" batch-c.jsonl "$lang-c" --batch 10
    run "$wasm" bad.jsonl "$lang-bad" --batch 1
done
for case in a b cfg c; do
    if cmp -s "$out/rust-$case" "$out/py-$case"; then
        echo "$case: identical ($(wc -l < "$out/py-$case") lines)"
    else
        echo "$case: DIFFERENT"; diff "$out/rust-$case" "$out/py-$case" || status=1
    fi
done
same=$(paste -d '\n' "$out/rust-bad" "$out/py-bad" | paste - - | awk -F'\t' '$1==$2' | wc -l)
echo "bad: $same of $(wc -l < "$out/rust-bad") error outcomes identical"
rm -r "$out"
exit $status
