#!/usr/bin/env bash
# Runs the Python of the tutorial's virtualenv (kafka-python), which
# `make setup` (deploy/setup.sh) makes under the ingesta cache:
#   deploy/demo/tutorial/python.sh deploy/demo/tutorial/producer.py --count 20
py="${INGESTA_CACHE:-$HOME/.cache/ingesta}/python/tutorial-venv/bin/python"
if [ ! -x "$py" ]; then
  echo "tutorial: $py is missing; run \`make setup\` (it installs kafka-python there)" >&2
  exit 1
fi
exec "$py" "$@"
