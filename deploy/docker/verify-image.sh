#!/usr/bin/env bash
# Builds Bulwark's image from the repository's Dockerfile with podman and runs it the way the
# deployments do (read-only root filesystem, /data volume, non-root), then checks /health, /ready,
# /metrics with the metrics token, the HEALTHCHECK, the user, that nothing was written outside /data
# and /tmp, and that no secret or state file is in any layer.
#
# On a machine that can pull the official .NET images, it builds with them. Where it cannot (a
# network that reaches only package registries), pass --local-base: it then makes two stand-in base
# images for THIS CHECK ONLY, a Debian bookworm root filesystem from debootstrap plus the .NET
# runtime (and SDK) installed on this machine, and restores NuGet packages from this machine's
# package folder. The Dockerfile itself is unchanged; only its SDK_IMAGE/RUNTIME_IMAGE arguments differ.
#
#   deploy/docker/verify-image.sh [--local-base]
#
# Opt-in (minutes: a debootstrap, a publish inside the build): not part of ./test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$root/.build/image-verify"
tag="localhost/bulwark:verify"
local_base=0
[ "${1:-}" = "--local-base" ] && local_base=1

say() { echo "verify-image: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
command -v podman >/dev/null || fail "podman is not installed (apt-get install podman)"
mkdir -p "$work"

build_args=()
volumes=()
if [ "$local_base" = 1 ]; then
  command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
  dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
  rootfs="$work/rootfs"
  if [ ! -x "$rootfs/bin/bash" ]; then
    say "debootstrap: a minimal Debian bookworm in $rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=ca-certificates,libssl3,zlib1g,libstdc++6,libgcc-s1,tzdata \
      bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
      || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
    # The user the official images define: app, uid and gid 1654.
    grep -q '^app:' "$rootfs/etc/passwd" || echo 'app:x:1654:1654::/home/app:/usr/sbin/nologin' >>"$rootfs/etc/passwd"
    grep -q '^app:' "$rootfs/etc/group" || echo 'app:x:1654:' >>"$rootfs/etc/group"
    rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*
  fi
  changes=(--change 'ENV APP_UID=1654' --change 'ENV DOTNET_RUNNING_IN_CONTAINER=true'
           --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  make_base() { # name, extra ENV line or "", parts of the .NET installation to include
    local name="$1" extra="$2"; shift 2
    local more=() pair
    for pair in $extra; do more+=(--change "ENV $pair"); done
    if podman image exists "$name"; then return; fi
    say "making the stand-in base image $name"
    local tar="$work/$(basename "${name//:/-}").tar"
    tar -C "$rootfs" -cf "$tar" .
    local parts=()
    for p in "$@"; do parts+=("${dotnet_root#/}/$p"); done
    tar -C / -rf "$tar" "${parts[@]}"
    # /usr/bin/dotnet, as the official images link it.
    local link; link="$(mktemp -d)"; mkdir -p "$link/usr/bin"; ln -s "$dotnet_root/dotnet" "$link/usr/bin/dotnet"
    tar -C "$link" -rf "$tar" usr/bin/dotnet; rm -rf "$link"
    podman import "${changes[@]}" "${more[@]}" "$tar" "$name" >/dev/null
    rm -f "$tar"
  }
  make_base localhost/bulwark-verify/aspnet:10.0 "" dotnet host shared LICENSE.txt
  # The SDK itself wants ICU, which the stand-in root filesystem lacks (the official SDK image has it);
  # and with no registry reachable from the build, NuGet's vulnerability audit cannot fetch its data.
  make_base localhost/bulwark-verify/sdk:10.0 "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 NuGetAudit=false" dotnet host shared sdk sdk-manifests packs templates LICENSE.txt
  build_args=(--build-arg SDK_IMAGE=localhost/bulwark-verify/sdk:10.0 --build-arg RUNTIME_IMAGE=localhost/bulwark-verify/aspnet:10.0)
  # The packages this machine already restored; the build's network may not reach a registry.
  volumes=(--volume "$HOME/.nuget/packages:/root/.nuget/packages")
fi

say "building $tag"
podman build --format docker "${build_args[@]}" "${volumes[@]}" -t "$tag" "$root" >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log" >&2; fail "podman build (log: $work/build.log)"; }

say "checking the image's configuration"
user="$(podman image inspect "$tag" --format '{{.Config.User}}')"
[ -n "$user" ] && [ "$user" != "root" ] && [ "$user" != "0" ] || fail "the image runs as '$user', not a non-root user"
podman image inspect "$tag" --format '{{json .Config.Healthcheck}}' | grep -q '/health' || fail "no HEALTHCHECK on /health"
podman image inspect "$tag" --format '{{json .Config.Volumes}}' | grep -q '"/data"' || fail "/data is not a volume"

say "looking for secrets and state in every layer"
rm -rf "$work/layers"; mkdir -p "$work/layers"
rm -f "$work/image.tar"
podman save --format docker-archive -o "$work/image.tar" "$tag" >/dev/null
tar -C "$work/layers" -xf "$work/image.tar"
found="$(for layer in "$work"/layers/*.tar "$work"/layers/*/layer.tar; do [ -f "$layer" ] && tar -tf "$layer"; done \
  | grep -E '(^|/)(hmac\.secret|bulwark\.db[^/]*|audit\.spool|appsettings[^/]*\.json|[^/]*\.(gguf|safetensors|pem|key|pfx|p12))$' \
  | grep -v -E '^(\./)?(etc/ssl|usr/share/ca-certificates|usr/lib/ssl)/' || true)" # the base image's CA certificates are public
[ -z "$found" ] || fail "files that must not be in the image: $found"
rm -rf "$work/layers" "$work/image.tar"

token="verify-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
name="bulwark-verify-$$"
volume="bulwark-verify-data-$$"
cleanup() { podman rm -f "$name" >/dev/null 2>&1 || true; podman volume rm -f "$volume" >/dev/null 2>&1 || true; }
trap cleanup EXIT
say "running it read-only on 127.0.0.1:$port"
# Limits below the machine's: a sandbox without CAP_SYS_RESOURCE cannot raise them to podman's defaults.
podman run -d --name "$name" --ulimit nofile=8192:8192 --ulimit nproc=4096:4096 --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
  -v "$volume:/data" -p "127.0.0.1:$port:8000" -e "Bulwark__Security__MetricsToken=$token" \
  "$tag" serve --kv-cache-memory 16MiB >/dev/null
for _ in $(seq 1 180); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  podman container exists "$name" && [ "$(podman inspect "$name" --format '{{.State.Running}}')" = true ] \
    || { podman logs "$name" >&2 || true; fail "the container stopped"; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/health" | grep -q ok || { podman logs "$name" >&2; fail "/health"; }
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { podman logs "$name" >&2; fail "/ready (a one-token generation)"; }
curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | grep -q '^bulwark_kv_cache_usage_ratio ' \
  || fail "/metrics with the metrics token"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")"
[ "$code" = 401 ] || fail "/metrics without a token answered $code, not 401"
podman healthcheck run "$name" >/dev/null || fail "the HEALTHCHECK command fails in the running container"
uid="$(podman exec "$name" id -u)"
[ "$uid" != 0 ] || fail "the server runs as root"
podman exec "$name" sh -c 'touch /app/x 2>/dev/null || touch /x 2>/dev/null' && fail "the root filesystem is writable"
# /etc/hosts, hostname and resolv.conf (and /run/.containerenv) are podman's own mounts, not writes.
changed="$(podman diff "$name" | awk '{print $2}' | grep -v -E '^/(data|tmp)(/|$)' \
  | grep -v -x -E '/etc|/etc/(hosts|hostname|resolv\.conf)|/run|/run/\.containerenv' || true)"
[ -z "$changed" ] || fail "written outside /data and /tmp: $changed"
podman exec "$name" test -f /data/state/bulwark.db || fail "no key store in /data/state"
say "OK: image $tag built$([ "$local_base" = 1 ] && echo ' on stand-in base images'), runs as uid $uid with a read-only root, /health, /ready, /metrics and the HEALTHCHECK pass, nothing written outside /data and /tmp, no secret or state in its layers"
