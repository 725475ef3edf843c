#!/usr/bin/env bash
# Installs (from Debian's packages) and starts the real Redis and PostgreSQL servers the tests
# use, on loopback only, with their data under .build/services. Prints the environment
# variables the tests read; source its output: eval "$(scripts/test-services.sh)".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$here/.build/services"
mkdir -p "$state"
redis_port="${BULWARK_TEST_REDIS_PORT:-6391}"
pg_port="${BULWARK_TEST_PG_PORT:-5441}"

log() { echo "test-services: $*" >&2; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]} from Debian packages..."
  if [ "$(id -u)" != 0 ]; then log "must run as root to install ${need[*]}"; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

# Redis: a private instance, no persistence, loopback only.
if ! redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
  log "starting redis on 127.0.0.1:$redis_port"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$state" --logfile "$state/redis.log" --pidfile "$state/redis.pid" >&2
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# PostgreSQL: a private cluster owned by the postgres user, trust auth on loopback.
pgbin="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")"
pgdata="$state/pg"
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -f "$pgdata/PG_VERSION" ]; then
  log "initialising postgres cluster in $pgdata"
  mkdir -p "$pgdata"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$state/pg"
  run_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
fi
if ! run_pg "$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q; then
  log "starting postgres on 127.0.0.1:$pg_port"
  run_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k /tmp" start >/dev/null
fi
run_pg "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='bulwark_test'" | grep -q 1 \
  || run_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bulwark_test

echo "export BULWARK_TEST_REDIS=127.0.0.1:$redis_port"
echo "export BULWARK_TEST_POSTGRES='Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=bulwark_test'"
