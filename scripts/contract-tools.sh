#!/usr/bin/env bash
# contract-tools.sh: install the tools that check the contract documents
# (docs/asyncapi.yaml, docs/openapi.yaml) into project-local folders, at
# the versions pinned under tools/contract/:
#
#   .cache/contract-node/node_modules  the AsyncAPI parser (package-lock.json)
#   .cache/contract-venv               schemathesis, openapi-spec-validator
#                                      (requirements.txt, every version pinned)
#
# Idempotent: each folder keeps the checksum of the file it was made from
# and is made again only when that file changed or an install broke off.
# Needs node, npm and python3-venv (scripts/deps.sh installs them).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/tools/contract"
cache="$repo/.cache"

say() { echo "contract-tools: $*"; }
die() { echo "contract-tools: $*" >&2; exit 1; }

stamp_ok() { [[ -f $1/complete && $(cat "$1/complete") == "$2" ]]; }

install_node() {
	local dir="$cache/contract-node" sum log
	sum="$(cat "$tools/package.json" "$tools/package-lock.json" | sha256sum | cut -d' ' -f1)"
	if stamp_ok "$dir" "$sum"; then
		say "AsyncAPI parser present in $dir"
		return 0
	fi
	command -v npm >/dev/null || die "npm is missing (scripts/deps.sh installs it)"
	say "installing the AsyncAPI parser into $dir"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$tools/package.json" "$tools/package-lock.json" "$dir/"
	log="$dir/npm.log"
	# ci: exactly the lock file's versions; no install scripts are needed.
	(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts) >"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "npm ci failed (log: $log)"; }
	echo "$sum" >"$dir/complete"
}

install_venv() {
	local dir="$cache/contract-venv" sum log
	sum="$(sha256sum "$tools/requirements.txt" | cut -d' ' -f1)"
	if stamp_ok "$dir" "$sum"; then
		say "schemathesis present in $dir"
		return 0
	fi
	say "installing schemathesis and openapi-spec-validator into $dir"
	rm -rf "$dir"
	/usr/bin/python3 -m venv "$dir" || die "python3 -m venv failed (python3-venv missing?)"
	log="$dir/pip.log"
	"$dir/bin/pip" install -q --disable-pip-version-check -r "$tools/requirements.txt" >"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "pip install failed (log: $log)"; }
	echo "$sum" >"$dir/complete"
}

mkdir -p "$cache"
# One install at a time: two test runs may start together.
exec 9>"$cache/.contract-tools.lock"
flock 9
install_node
install_venv
