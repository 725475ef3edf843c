#!/usr/bin/env bash
# Writes the Compose stack's secrets, once: random passwords and tokens in secrets/ (mode 0600) and
# bulwark.env, the replicas' settings that hold secrets. Existing files are kept, so running it
# again changes nothing. Neither is committed (.gitignore). Put your Alertmanager receivers' secrets
# in secrets/pagerduty_routing_key and secrets/slack_webhook_url.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 077
mkdir -p secrets
random() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+=' | head -c "$2"; }
keep_or_write() { [ -s "secrets/$1" ] || printf '%s' "$2" > "secrets/$1"; }
keep_or_write postgres_password "$(random 48 40)"
keep_or_write redis_password "$(random 48 40)"
keep_or_write metrics_token "$(random 48 48)"      # Bulwark:Security:MetricsToken needs >= 32 characters
keep_or_write grafana_admin_password "$(random 24 24)"
keep_or_write pagerduty_routing_key "replace-with-your-pagerduty-integration-key"
keep_or_write slack_webhook_url "https://hooks.slack.invalid/replace-with-your-webhook"
# The directory is private (0700); the files inside are readable (0644) because Compose bind-mounts
# them with their own modes, and Prometheus, Alertmanager and Grafana run as non-root users of their own.
chmod 0644 secrets/*
if [ ! -s bulwark.env ]; then
  cat > bulwark.env <<ENV
# Settings of both Bulwark replicas that hold secrets (docs/configuration.md, docs/security.md).
Bulwark__Security__HmacSecret=$(head -c 32 /dev/urandom | base64)
Bulwark__Security__MetricsToken=$(cat secrets/metrics_token)
Bulwark__Storage__Postgres=Host=postgres;Username=bulwark;Password=$(cat secrets/postgres_password);Database=bulwark
Bulwark__Quotas__Redis=redis:6379,password=$(cat secrets/redis_password)
ENV
fi
echo "init-secrets: secrets/ and bulwark.env are ready (kept if they existed)."
