#!/usr/bin/env bash
# Runs the whole test suite. Starts what is not running (PostgreSQL, NATS with JetStream,
# a MongoDB-wire server built once into .tools/) and stops what it started.
# Extra arguments go to the test runner, e.g. scripts/test.sh relay_torture
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
mkdir -p "$DATA_DIR"
trap stop_started EXIT

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
# Tests get their own MongoDB-wire server (in memory) unless MONGODB_URL names one.
export MONGODB_URL=${MONGODB_URL:-mongodb://127.0.0.1:27018/?directConnection=true}

ensure_postgres "$TEST_DATABASE_URL"
ensure_nats "$NATS_URL"
# A fresh store each run (secantusd-rs keeps its data in a directory).
if ! port_open "$(url_host "$MONGODB_URL")" "$(url_port "$MONGODB_URL" 27017)"; then
    rm -rf "$DATA_DIR/mongo-test"
fi
ensure_mongo "$MONGODB_URL" "$DATA_DIR/mongo-test"
# Outage tests start (and kill) private MongoDB-wire servers of their own.
ensure_secantus
export SECANTUSD_BIN=${SECANTUSD_BIN:-$SECANTUSD_RS}
# The /docs page is checked in a real headless browser.
ensure_chromium
# The gateway's shipped configuration is run against the services.
ensure_nginx
# Both APIs are fuzzed against their own OpenAPI documents.
ensure_schemathesis

# Some tests run the service binaries themselves (start-up errors, SIGTERM).
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast -- "$@"
fi
