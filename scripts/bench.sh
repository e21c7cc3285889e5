#!/usr/bin/env bash
# bench.sh: the side-by-side throughput benchmark (`make bench`). Starts its
# own stack under build/bench-stack, runs scripts/bench.py, stops the stack.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export STACK_DIR="$repo/build/bench-stack"
"$repo/scripts/deps.sh" --bench
# --statements wants pg_stat_statements loaded by the bench stack's server.
for arg in "$@"; do
	[[ $arg != --statements ]] || export TICKETD_STACK_PG_STATEMENTS=1
done
"$repo/scripts/stack.sh" down >/dev/null 2>&1 || true
STACK_SKIP_DEPS=1 "$repo/scripts/stack.sh" up
trap '"$repo/scripts/stack.sh" down >/dev/null 2>&1 || true' EXIT
/usr/bin/python3 "$repo/scripts/bench.py" "$@"
