#!/usr/bin/env bash
# The whole test suite from a fresh checkout: installs the mosquitto broker when it is missing
# (the MQTT tests start their own on a free port), builds .venv, then lint, types and tests.
# Usage, from the repository root: bash tests/run.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "tests/run.sh: installing the mosquitto broker (Debian package 'mosquitto')" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto >/dev/null
    else
        echo "tests/run.sh: mosquitto is missing; install it (apt-get install mosquitto) and rerun" >&2
        exit 1
    fi
fi

python3 -m venv .venv
.venv/bin/pip install -q -e '.[test,dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
.venv/bin/pytest "$@"
