#!/usr/bin/env bash
# run.sh: run the unit tests (cmocka binaries given as arguments) and the
# system tests (pytest, real Kafka and PostgreSQL), then print one line:
# "N passed, N failed". Exits non-zero when anything failed or nothing ran.
# --replicated runs the replicated deployment's tests instead
# (tests/replicated: three Kafka nodes, a PostgreSQL standby).
#
#   tests/run.sh [--unit-only | --system-only | --replicated] [UNIT_BINARY...]
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
mode=all
units=()
for arg in "$@"; do
	case "$arg" in
	--unit-only) mode=unit ;;
	--system-only) mode=system ;;
	--replicated) mode=replicated ;;
	*) units+=("$arg") ;;
	esac
done

# The Debian interpreter: the one with python3-pytest, -psycopg2 and
# -confluent-kafka, whatever python3 comes first on PATH.
python=/usr/bin/python3
passed=0
failed=0

# For a SANITIZE= build: any report fails the process that made it, and
# the tests see that as a non-zero exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=24}"

if [[ $mode == unit || $mode == all ]]; then
	for bin in "${units[@]}"; do
		out="$("$bin" 2>&1)"
		rc=$?
		echo "$out"
		p=$(grep -Eo '^\[  PASSED  \] [0-9]+' <<<"$out" | awk '{s+=$NF} END {print s+0}')
		f=$(grep -Eo '^\[  FAILED  \] [0-9]+ test' <<<"$out" | awk '{s+=$(NF-1)} END {print s+0}')
		if [[ $rc -ne 0 && $f -eq 0 ]]; then
			echo "run.sh: $bin exited $rc" >&2
			f=1
		fi
		passed=$((passed + p))
		failed=$((failed + f))
	done
fi

if [[ $mode != unit ]]; then
	mkdir -p build
	junit="build/system-tests.xml"
	suite=(tests/system)
	# The scenarios' figures are the point of the replicated run: shown.
	[[ $mode == replicated ]] && { junit="build/replicated-tests.xml"; suite=(tests/replicated -s); }
	rm -f "$junit"
	"$python" -m pytest "${suite[@]}" -v -p no:cacheprovider \
		--junitxml="$junit" ${PYTEST_ARGS:-}
	rc=$?
	if [[ -f $junit ]]; then
		read -r p f s < <("$python" - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(x.get("tests", 0)) for x in suites)
f = sum(int(x.get("failures", 0)) + int(x.get("errors", 0)) for x in suites)
s = sum(int(x.get("skipped", 0)) for x in suites)
print(t - f - s, f, s)
PY
)
		# A skipped system test is a test that did not prove anything.
		passed=$((passed + p))
		failed=$((failed + f + s))
	fi
	if [[ $rc -ne 0 && ! -f $junit ]]; then
		echo "run.sh: pytest exited $rc without results" >&2
		failed=$((failed + 1))
	fi
fi

if [[ $((passed + failed)) -eq 0 ]]; then
	echo "run.sh: no test ran" >&2
	failed=1
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
