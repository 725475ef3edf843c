#!/usr/bin/env bash
# Runs every test: restores packages, starts the Redis and PostgreSQL servers the tests use,
# checks that ../shared/fixtures is present, builds and runs all test projects, and ends
# with one summary line "tests: N passed, N failed, N skipped".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [ ! -d "$here/../shared/fixtures" ] && [ -z "${BULWARK_FIXTURES:-}" ]; then
  echo "test.sh: ../shared/fixtures is missing beside the repository (or set BULWARK_FIXTURES)." >&2
  exit 1
fi

# Fail here, with the cause, when the services cannot start (eval of an empty output would go on).
if ! services="$(scripts/test-services.sh)"; then
  echo "test.sh: Redis or PostgreSQL could not be started (scripts/test-services.sh said why above); no test was run." >&2
  exit 1
fi
eval "$services"

results="$here/.build/test-results"
rm -rf "$results"
mkdir -p "$results"
log="$results/dotnet-test.log"

dotnet build Bulwark.slnx -c Release --nologo -v quiet -clp:ErrorsOnly

status=0
dotnet test Bulwark.slnx -c Release --no-build --nologo \
  --logger "trx" --results-directory "$results" \
  --blame-hang --blame-hang-timeout 10m "$@" 2>&1 | tee "$log" || status=$?

# One closing line for humans and CI, summed over every test assembly's TRX file.
passed=0; failed=0; skipped=0
while IFS= read -r counters; do
  get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout)))
  skipped=$((skipped + $(get total) - $(get executed)))
done < <(grep -ho '<Counters [^>]*>' "$results"/*.trx 2>/dev/null || true)
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$status" = 0 ] && [ "$passed" = 0 ]; then echo "test.sh: no test ran" >&2; status=1; fi
exit "$status"
