#!/usr/bin/env bash
# Install and start a local PostgreSQL for the store tests; print and export MMDEMO_TEST_POSTGRES_URL.
#
#   source .ci/postgres.sh        # as root on Debian 12: exports the URL into this shell
#   bash .ci/postgres.sh          # same, prints `MMDEMO_TEST_POSTGRES_URL=…` on the last line
#
# Idempotent: a second run finds the package, the cluster, the role and the database, and only
# (re)starts what is not running. Uses Debian's cluster (pg_createcluster / pg_ctlcluster).
# Override with MMDEMO_PG_USER, MMDEMO_PG_PASSWORD, MMDEMO_PG_DB.

_mmdemo_postgres() {
    local user="${MMDEMO_PG_USER:-mmdemo}" password="${MMDEMO_PG_PASSWORD:-mmdemo}" db="${MMDEMO_PG_DB:-mmdemo_test}"
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "postgres.sh: run as root (or install sudo)" >&2; return 1; }
        as_root=(sudo)
    fi

    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "postgres.sh: installing postgresql" >&2
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
    fi

    local version
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || { echo "postgres.sh: no PostgreSQL server found after install" >&2; return 1; }

    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
        echo "postgres.sh: creating cluster $version/main" >&2
        "${as_root[@]}" pg_createcluster "$version" main >/dev/null || return 1
    fi
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
        echo "postgres.sh: starting cluster $version/main" >&2
        "${as_root[@]}" pg_ctlcluster "$version" main start || return 1
    fi
    local port
    port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"

    local i
    for i in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 0.5
    done
    pg_isready -q -h 127.0.0.1 -p "$port" || { echo "postgres.sh: server on port $port is not ready" >&2; return 1; }

    _mmdemo_psql() { "${as_root[@]}" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }
    # Names and password go in as psql variables (:'pw' quotes them), never spliced into SQL by hand.
    if [ "$(_mmdemo_psql -tA -v u="$user" <<<"SELECT 1 FROM pg_roles WHERE rolname = :'u'")" != "1" ]; then
        _mmdemo_psql -v u="$user" -v pw="$password" <<<"CREATE ROLE :\"u\" LOGIN PASSWORD :'pw'" || return 1
    else
        _mmdemo_psql -v u="$user" -v pw="$password" <<<"ALTER ROLE :\"u\" LOGIN PASSWORD :'pw'" || return 1
    fi
    if [ "$(_mmdemo_psql -tA -v d="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'d'")" != "1" ]; then
        "${as_root[@]}" runuser -u postgres -- createdb -p "$port" -O "$user" "$db" || return 1
    fi
    unset -f _mmdemo_psql

    export MMDEMO_TEST_POSTGRES_URL="postgresql://${user}:${password}@127.0.0.1:${port}/${db}"
    echo "MMDEMO_TEST_POSTGRES_URL=${MMDEMO_TEST_POSTGRES_URL}"
}

if (return 0 2>/dev/null); then   # sourced: keep the caller's shell and options
    _mmdemo_postgres
else
    _mmdemo_postgres
    exit $?
fi
