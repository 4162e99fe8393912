#!/usr/bin/env bash
# Install what building and testing ingesta needs on a fresh machine.
# Idempotent: every step checks first, so a second run takes a second.
#   - Rust target wasm32-wasip2 and the clippy/rustfmt components
#   - C toolchain pieces librdkafka's build needs (cmake, OpenSSL headers)
#   - promtool (Debian package prometheus), which checks the alert rules
#   - Apache Kafka jars (deploy/kafka/kafka.sh fetch; cached outside the clone)
#   - Go guests: the module proxy directory for the bindings' runtime
#     package (sdk/go/tools/goproxy.sh) and Go 1.27.3, which the go command
#     fetches into its module cache
#   - Python guests: componentize-py in a virtualenv under the cache
#   - the Kafka tutorial's scripts (deploy/demo/tutorial): kafka-python in a
#     virtualenv of its own under the cache, $CACHE/python/tutorial-venv
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }

need_cmd() { command -v "$1" >/dev/null 2>&1; }

# --- system packages (Debian) -------------------------------------------
missing=()
need_cmd cmake || missing+=(cmake)
need_cmd cc || missing+=(build-essential)
need_cmd pkg-config || missing+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
need_cmd java || missing+=(openjdk-17-jre-headless)
need_cmd mvn || missing+=(maven)
need_cmd promtool || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && need_cmd apt-get; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# --- Rust ------------------------------------------------------------------
need_cmd rustup || { echo "setup: rustup is required (https://rustup.rs)" >&2; exit 1; }
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  say "adding Rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi
for c in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$c"; then
    say "adding Rust component $c"
    rustup component add "$c"
  fi
done

# --- Go and Python guest toolchains ----------------------------------------
CACHE="${INGESTA_CACHE:-$HOME/.cache/ingesta}"
need_cmd go || { echo "setup: Go 1.26 or newer is required for Go guests (https://go.dev/dl)" >&2; exit 1; }
eval "$(bash sdk/go/tools/goproxy.sh)"
if ! GOTOOLCHAIN="$GOTOOLCHAIN" go version >/dev/null 2>&1; then
  echo "setup: cannot get Go toolchain $GOTOOLCHAIN through the Go module proxy" >&2; exit 1
fi
COMPONENTIZE_PY=0.25.1
venv="$CACHE/python/venv"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY" ]; then
  need_cmd python3 || { echo "setup: Python 3.10 or newer is required for Python guests" >&2; exit 1; }
  say "installing componentize-py $COMPONENTIZE_PY into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi
# kafka-python 2.1 or newer speaks the protocol versions Kafka 4 kept; the
# 2.x line takes the tutorial's plain-function serializers without the
# deprecation warnings 3.x prints for them. Apart from componentize-py's
# venv, so neither pin constrains the other.
KAFKA_PYTHON=2.3.3
tutorial_venv="$CACHE/python/tutorial-venv"
if [ "$("$tutorial_venv/bin/python" -c 'import kafka; print(kafka.__version__)' 2>/dev/null)" != "$KAFKA_PYTHON" ]; then
  need_cmd python3 || { echo "setup: Python 3.10 or newer is required for the tutorial's scripts" >&2; exit 1; }
  say "installing kafka-python $KAFKA_PYTHON into $tutorial_venv"
  rm -rf "$tutorial_venv"
  python3 -m venv "$tutorial_venv"
  "$tutorial_venv/bin/pip" install --quiet --disable-pip-version-check "kafka-python==$KAFKA_PYTHON"
fi

# --- Kafka -----------------------------------------------------------------
bash deploy/kafka/kafka.sh fetch
say "ok"
