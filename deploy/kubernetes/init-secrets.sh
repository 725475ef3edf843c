#!/usr/bin/env bash
# Writes secrets.env, the values kustomize turns into the Secret "bulwark-secrets": a random HMAC
# secret and metrics token, and the PostgreSQL and Redis connection strings from the environment:
#
#   BULWARK_POSTGRES='Host=postgres.db;Username=bulwark;Password=...;Database=bulwark' \
#   BULWARK_REDIS='redis.db:6379,password=...' ./init-secrets.sh
#
# An existing secrets.env is kept (replacing the HMAC secret invalidates every key). Never commit it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ -s secrets.env ]; then echo "init-secrets: secrets.env exists; kept." >&2; exit 0; fi
: "${BULWARK_POSTGRES:?set BULWARK_POSTGRES to the PostgreSQL connection string}"
: "${BULWARK_REDIS:?set BULWARK_REDIS to the Redis configuration (host:port,password=...)}"
umask 077
{
  echo "Bulwark__Security__HmacSecret=$(head -c 32 /dev/urandom | base64)"
  echo "Bulwark__Security__MetricsToken=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 48)"
  echo "Bulwark__Storage__Postgres=$BULWARK_POSTGRES"
  echo "Bulwark__Quotas__Redis=$BULWARK_REDIS"
} > secrets.env
echo "init-secrets: wrote secrets.env; apply with: kubectl apply -k $(pwd)" >&2
