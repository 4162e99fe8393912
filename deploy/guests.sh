#!/usr/bin/env bash
# Builds the Go and Python guests (examples and conformance fixtures) with
# `ingesta build`, two at a time, into target/wasm32-wasip2/guest/<lang>/.
# A project is rebuilt only when something it is built from (its files,
# the SDK, the WIT, the ingesta binary) is newer than its component.
#
#   deploy/guests.sh DIR...     # e.g. guest-examples/go/activity-stats
set -euo pipefail
cd "$(dirname "$0")/.."

INGESTA="${INGESTA:-target/release/ingesta}"
OUT="${GUEST_DIR:-target/wasm32-wasip2/guest}"
# Build against this checkout's SDKs, not the copy inside the binary.
export INGESTA_SDK_DIR="$PWD"

build_one() {
    local dir="$1" lang name out
    case "$dir" in
        */go/*) lang=go ;;
        */python/*) lang=python ;;
        *) echo "guests: $dir is neither a go/ nor a python/ project" >&2; return 1 ;;
    esac
    name="$(basename "$dir")"
    out="$OUT/$lang/$name.wasm"
    if [[ -f "$out" ]] && [[ -z "$(find "$dir" "sdk/$lang" wit "$INGESTA" -newer "$out" -type f \
            -not -path '*/__pycache__/*' -print -quit)" ]]; then
        echo "guests: $out is up to date"
        return 0
    fi
    "$INGESTA" build "$dir" -o "$out"
}
export -f build_one
export INGESTA OUT

printf '%s\n' "$@" | xargs -P 2 -I{} bash -c 'build_one "$1"' _ {}
