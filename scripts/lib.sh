# Shared by scripts/dev.sh and scripts/test.sh: find or start what CamReviews needs on one
# machine (PostgreSQL, NATS with JetStream, a MongoDB-wire server), and stop what we started.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_DIR=${CAMREVIEWS_DATA_DIR:-$ROOT/.data}
SECANTUS_VERSION=0.5.3-beta.196
SCHEMATHESIS_VERSION=4.32.5
TOOLS=$ROOT/.tools
SECANTUSD_RS=$TOOLS/secantus/bin/secantusd-rs
STARTED_PIDS=()

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds what
    local deadline=$((SECONDS + $3))
    until port_open "$1" "$2"; do
        ((SECONDS < deadline)) || die "$4 did not come up on $1:$2"
        sleep 0.2
    done
}

# host and port of a URL like scheme://[user@]host:port/...; default port as $2
url_host() { local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%[/?]*}; echo "${rest%%:*}"; }
url_port() {
    local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%[/?]*}
    if [[ $rest == *:* ]]; then echo "${rest##*:}"; else echo "$2"; fi
}

stop_started() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

ensure_postgres() { # admin URL
    local host port
    host=$(url_host "$1"); port=$(url_port "$1" 5432)
    port_open "$host" "$port" && return
    log "PostgreSQL is not answering on $host:$port; starting the local cluster"
    if command -v pg_ctlcluster >/dev/null; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    else
        service postgresql start || true
    fi
    wait_port "$host" "$port" 30 PostgreSQL
}

ensure_database() { # admin URL, database name
    if ! psql "$1" -tAc "SELECT 1 FROM pg_database WHERE datname = '$2'" | grep -q 1; then
        log "creating database $2"
        psql "$1" -qc "CREATE DATABASE \"$2\""
    fi
}

ensure_nats() { # NATS URL
    local host port
    host=$(url_host "$1"); port=$(url_port "$1" 4222)
    port_open "$host" "$port" && return
    command -v nats-server >/dev/null || {
        log "installing nats-server (Debian package)"
        apt_install nats-server
    }
    log "NATS is not answering on $host:$port; starting nats-server with JetStream"
    mkdir -p "$DATA_DIR/nats"
    nats-server -a "$host" -p "$port" -js -sd "$DATA_DIR/nats" >"$DATA_DIR/nats.log" 2>&1 &
    STARTED_PIDS+=($!)
    wait_port "$host" "$port" 30 nats-server
}

# Installs Debian packages (as root, or through sudo): apt_install PACKAGE...
apt_install() {
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
        || die "could not install $* (apt-get install $*)"
}

# Chromium from the OS packages, for the browser test of /docs (CHROMIUM_BIN).
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        export CHROMIUM_BIN=${CHROMIUM_BIN:-$(command -v chromium)}
        return
    fi
    log "installing Chromium (Debian package) for the browser test"
    apt_install chromium
    export CHROMIUM_BIN=$(command -v chromium)
}

# nginx from the OS packages, for the gateway test (NGINX_BIN).
ensure_nginx() {
    if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
        log "installing nginx (Debian package) for the gateway test"
        apt_install nginx-light
        # The package starts a server on port 80; the test runs its own.
        local sudo=""
        [[ $(id -u) == 0 ]] || sudo="sudo"
        $sudo service nginx stop >/dev/null 2>&1 || true
    fi
    export NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
}

# SecantusDB's Rust build (a MongoDB-wire server; crates.io `secantus-mdb`, GPL-2.0): an
# external server process for development and tests only, never a workspace dependency. Built
# once from crates.io into $TOOLS (ignored by git): about six minutes on two cores the first
# time, seconds after that. Its crate declares a newer rust-version than it needs, hence
# --ignore-rust-version; it builds a C++ storage engine, hence cmake.
ensure_secantus() {
    if [[ -x $SECANTUSD_RS && $(cat "$TOOLS/secantus/VERSION" 2>/dev/null) == "$SECANTUS_VERSION" ]]; then
        return
    fi
    if ! command -v cmake >/dev/null 2>&1; then
        log "installing cmake (Debian package) to build SecantusDB"
        apt_install cmake
    fi
    log "building SecantusDB $SECANTUS_VERSION (secantusd-rs) into $TOOLS/secantus; first time only, about 6 minutes"
    cargo install secantus-mdb --version "$SECANTUS_VERSION" --locked --ignore-rust-version \
        --root "$TOOLS/secantus" --quiet \
        || die "could not build secantusd-rs (cargo install secantus-mdb --version $SECANTUS_VERSION)"
    [[ -x $SECANTUSD_RS ]] || die "cargo install secantus-mdb did not produce $SECANTUSD_RS"
    echo "$SECANTUS_VERSION" >"$TOOLS/secantus/VERSION"
}

# schemathesis (PyPI), which fuzzes both APIs from their own OpenAPI documents, in the
# project's virtual environment under $TOOLS (SCHEMATHESIS_BIN).
ensure_schemathesis() {
    local venv=$TOOLS/venv
    if [[ $("$venv/bin/schemathesis" --version 2>/dev/null) != *" $SCHEMATHESIS_VERSION" ]]; then
        log "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $venv"
        python3 -m venv "$venv" || die "could not create $venv (python3 -m venv)"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
            || die "could not install schemathesis $SCHEMATHESIS_VERSION"
    fi
    export SCHEMATHESIS_BIN=$venv/bin/schemathesis
}

ensure_mongo() { # MongoDB URL, storage directory
    local host port
    host=$(url_host "$1"); port=$(url_port "$1" 27017)
    port_open "$host" "$port" && return
    ensure_secantus
    log "no MongoDB on $host:$port; starting SecantusDB (MongoDB wire protocol) there"
    mkdir -p "$2"
    "$SECANTUSD_RS" --host "$host" --port "$port" --storage-path "$2" --cache-size 256M \
        --log-file-max 32MB \
        >"$DATA_DIR/secantus-$port.log" 2>&1 &
    STARTED_PIDS+=($!)
    wait_port "$host" "$port" 60 SecantusDB
}
