#!/usr/bin/env bash
# run-ticketd.sh: start or stop a background ticketd against the local stack
# (the one `scripts/stack.sh up` wrote to $STACK_DIR/stack.env).
#
#   scripts/run-ticketd.sh start [NAME]   start ./ticketd, wait until ready
#   scripts/run-ticketd.sh stop [NAME]    SIGTERM it and wait for its exit
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack_dir="${STACK_DIR:-$repo/.run}"
name="${2:-ticketd}"
pid_file="$stack_dir/$name.pid"
log_file="$stack_dir/$name.log"

die() { echo "run-ticketd: $*" >&2; exit 1; }

start() {
	[[ -f "$stack_dir/stack.env" ]] || die "no $stack_dir/stack.env: run scripts/stack.sh up first"
	# shellcheck disable=SC1091
	. "$stack_dir/stack.env"
	if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
		echo "$name already running (pid $(cat "$pid_file"))"
		return 0
	fi
	[[ -x "$repo/ticketd" ]] || die "no ./ticketd: run make first"
	TICKETD_BROKERS="$TICKETD_BROKERS" TICKETD_PG="$TICKETD_PG" \
		TICKETD_HTTP_PORT="${TICKETD_HTTP_PORT:-8080}" \
		setsid "$repo/ticketd" -c "$repo/etc/ticketd.conf" \
		>>"$log_file" 2>&1 </dev/null &
	echo $! >"$pid_file"
	# Ready: in the group with its database connections (bounded wait).
	for _ in $(seq 1 150); do
		kill -0 "$(cat "$pid_file")" 2>/dev/null ||
			{ tail -n 20 "$log_file" >&2; die "$name exited during start-up"; }
		if curl -fsS "http://127.0.0.1:${TICKETD_HTTP_PORT:-8080}/readyz" >/dev/null 2>&1; then
			echo "$name ready: pid $(cat "$pid_file"), http://127.0.0.1:${TICKETD_HTTP_PORT:-8080}/, log $log_file"
			return 0
		fi
		sleep 0.2
	done
	tail -n 20 "$log_file" >&2
	die "$name not ready after 30 s"
}

stop() {
	[[ -f "$pid_file" ]] || return 0
	local pid
	pid="$(cat "$pid_file")"
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pid_file"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) die "usage: run-ticketd.sh start|stop [NAME]" ;;
esac
