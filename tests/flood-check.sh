#!/usr/bin/env bash
# flood-check.sh: run ./ticketd under a checker (valgrind, or a TSan build
# run bare) through one mixed flood on a throwaway stack, SIGTERM it, and
# fail unless it exits 0 and the flood is clean.
#
#   tests/flood-check.sh NAME [WRAPPER...]
#   e.g. tests/flood-check.sh valgrind valgrind --error-exitcode=99 --leak-check=full
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="$1"
shift
export STACK_DIR="$repo/build/flood-check-$name"
"$repo/scripts/stack.sh" down >/dev/null 2>&1 || true
"$repo/scripts/stack.sh" up >/dev/null
trap '"$repo/scripts/stack.sh" down >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
. "$STACK_DIR/stack.env"
log="$STACK_DIR/ticketd.log"
TICKETD_GROUP_ID="flood-check-$name" TICKETD_REAPER_INTERVAL_MS=200 \
	"$@" "$repo/ticketd" -c "$repo/etc/ticketd.conf" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
	curl -fsS "http://$TICKETD_HTTP/readyz" 2>/dev/null | grep -q '"assigned_partitions":[1-9]' && break
	kill -0 "$pid" 2>/dev/null || { tail -n 40 "$log"; echo "$name: ticketd exited early"; exit 1; }
	sleep 0.2
done
flood_rc=0
"$repo/ticket-flood" --quiet --fresh-seed --event 900 --section 900 --sections 4 \
	--capacity 100000 -n "${FLOOD_COUNT:-2000}" -q 1 -c 200 --mix 20 --ttl 2 -t 600 || flood_rc=$?
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
grep -E "ERROR SUMMARY|definitely lost|WARNING: ThreadSanitizer|SUMMARY:" "$log" | sort | uniq -c || true
if [[ $rc -ne 0 || $flood_rc -ne 0 ]]; then
	tail -n 60 "$log"
	echo "$name: ticketd exit $rc, ticket-flood exit $flood_rc"
	exit 1
fi
echo "$name: clean (ticketd exit 0, flood ok)"
