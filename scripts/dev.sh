#!/usr/bin/env bash
# Starts the whole system locally: PostgreSQL and NATS if not running, SecantusDB when no
# MongoDB answers at MONGODB_URL, then the four services. Prints their URLs; Ctrl-C stops
# everything it started. Logs go to .data/logs/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
mkdir -p "$DATA_DIR/logs"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/camreviews}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export MONGODB_URL=${MONGODB_URL:-mongodb://127.0.0.1:27017/?directConnection=true}
export CAMREVIEWS_DATA_DIR=$DATA_DIR
export RUST_LOG=${RUST_LOG:-info}
# The superuser command-api creates at start-up if none exists (local defaults; set your own).
export SUPERUSER_USERNAME=${SUPERUSER_USERNAME:-admin}
export SUPERUSER_EMAIL=${SUPERUSER_EMAIL:-admin@camreviews.local}
export SUPERUSER_PASSWORD=${SUPERUSER_PASSWORD:-camreviews-dev}
PROFILE=${CAMREVIEWS_PROFILE:-dev}   # CAMREVIEWS_PROFILE=release for an optimised build

trap 'log "stopping"; stop_started' EXIT
trap 'STOPPING=1; exit 130' INT TERM

admin_url=${DATABASE_URL%/*}/postgres
ensure_postgres "$admin_url"
ensure_database "$admin_url" "${DATABASE_URL##*/}"
ensure_nats "$NATS_URL"
ensure_mongo "$MONGODB_URL" "$DATA_DIR/mongo"

log "building the services ($PROFILE profile)"
cargo build --profile "$PROFILE" --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin_dir=$target_dir/$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")

declare -A ADDRS=(
    [command-api]=${COMMAND_API_ADDR:-127.0.0.1:8081}
    [query-api]=${QUERY_API_ADDR:-127.0.0.1:8082}
    [projector]=${PROJECTOR_ADDR:-127.0.0.1:8083}
    [notifier]=${NOTIFIER_ADDR:-127.0.0.1:8084}
)
export COMMAND_API_ADDR=${ADDRS[command-api]} QUERY_API_ADDR=${ADDRS[query-api]}
export PROJECTOR_ADDR=${ADDRS[projector]} NOTIFIER_ADDR=${ADDRS[notifier]}

for service in command-api query-api projector notifier; do
    "$bin_dir/$service" >"$DATA_DIR/logs/$service.log" 2>&1 &
    STARTED_PIDS+=($!)
done

for service in command-api query-api projector notifier; do
    addr=${ADDRS[$service]}
    deadline=$((SECONDS + 60))
    until curl -fsS "http://$addr/readyz" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            curl -sS "http://$addr/readyz" >&2 || true
            die "$service is not ready; see $DATA_DIR/logs/$service.log"
        fi
        sleep 0.3
    done
done

cat <<TXT

CamReviews is running (logs in $DATA_DIR/logs/):
  command API   http://${ADDRS[command-api]}     (docs /docs; health /healthz, /readyz, /metrics)
  query API     http://${ADDRS[query-api]}     (docs /docs)
  projector     http://${ADDRS[projector]}
  notifier      http://${ADDRS[notifier]}
  PostgreSQL    $DATABASE_URL
  NATS          $NATS_URL
  MongoDB       $MONGODB_URL
  superuser     $SUPERUSER_USERNAME (password from SUPERUSER_PASSWORD)

Log in:  curl -s http://${ADDRS[command-api]}/api/v1/auth/login -H 'content-type: application/json' \\
           -d '{"username": "$SUPERUSER_USERNAME", "password": "<SUPERUSER_PASSWORD>"}'

Press Ctrl-C to stop.
TXT
status=0
wait -n "${STARTED_PIDS[@]}" || status=$?
sleep 0.2 # a Ctrl-C reaches the services too (they exit 0 on a signal); let our trap run first
[[ -n ${STOPPING:-} || $status -eq 0 ]] || die "a process exited with status $status; see $DATA_DIR/logs/"
