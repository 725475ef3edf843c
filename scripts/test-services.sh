#!/usr/bin/env bash
# Installs (from Debian's packages) and starts the real Redis and PostgreSQL servers the tests
# use, on loopback only, with their data under .build/services; installs the tools the deploy/
# tests run (Prometheus, Alertmanager, docker-compose, podman, kubectl) and the browser the console tests
# drive (chromium, chromium-driver). Prints the environment
# variables the tests read; source its output: eval "$(scripts/test-services.sh)".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$here/.build/services"
mkdir -p "$state"
redis_port="${BULWARK_TEST_REDIS_PORT:-6391}"
# The port this clone's PostgreSQL last listened on (another clone's may hold the default).
pg_port_file="$state/pg.port"
pg_port="${BULWARK_TEST_PG_PORT:-$(cat "$pg_port_file" 2>/dev/null || echo 5441)}"

log() { echo "test-services: $*" >&2; }
fail() { log "$*"; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The real tools the deploy/ tests drive (tests/Bulwark.Server.Tests/Deploy): promtool and prometheus,
# amtool, docker-compose (config only), podman (deploy/docker/verify-image.sh), and kubectl for
# kustomize (Debian's kubernetes-client, only when no kubectl is installed: another package may own it).
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
# A real headless browser for the console's end-to-end tests (tests/Bulwark.Server.Tests/Console), driven by
# Selenium through Debian's chromedriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
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
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 \
    || fail "redis did not answer on 127.0.0.1:$redis_port (is something else on that port? see $state/redis.log; set BULWARK_TEST_REDIS_PORT)"
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
# Only this clone's own cluster is used: a server another clone left running (perhaps with its
# data directory deleted since) may hold the port, so this one then moves to the next free port.
if run_pg "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
  pg_port="$(sed -n 4p "$pgdata/postmaster.pid")"
else
  rm -f "$pgdata/postmaster.pid" # left by a cluster that was killed; pg_ctl status says it is not running
  first="$pg_port"
  while port_busy "$pg_port"; do
    [ -n "${BULWARK_TEST_PG_PORT:-}" ] && fail "port $pg_port (BULWARK_TEST_PG_PORT) is taken by another server"
    pg_port=$((pg_port + 1))
    [ "$pg_port" -gt $((first + 50)) ] && fail "no free port for postgres in $first..$((first + 50))"
  done
  [ "$pg_port" != "$first" ] && log "port $first is taken by another server (not this clone's cluster); using $pg_port"
  log "starting postgres on 127.0.0.1:$pg_port"
  run_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k /tmp" start >/dev/null \
    || { tail -n 20 "$pgdata/server.log" >&2 || true; fail "postgres did not start on 127.0.0.1:$pg_port (log above: $pgdata/server.log)"; }
fi
echo "$pg_port" > "$pg_port_file"
run_pg "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='bulwark_test'" | grep -q 1 \
  || run_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bulwark_test

echo "export BULWARK_TEST_REDIS=127.0.0.1:$redis_port"
echo "export BULWARK_TEST_POSTGRES='Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=bulwark_test'"
