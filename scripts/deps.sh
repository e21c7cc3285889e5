#!/usr/bin/env bash
# deps.sh: install what ticketd needs to build, test and run on Debian, and
# fetch the pinned Apache Kafka broker jars (scripts/kafka/pom.xml) from
# Maven Central. Idempotent, and quick when everything is already there.
#
#   scripts/deps.sh [--no-kafka | --bench]
#
#   --no-kafka     skip the Kafka jars, the contract tools and the
#                  examples' Maven artifacts
#   --bench        also what `make bench` needs: matplotlib (its picture)
#                  and its HTTP load tool (vegeta, a Go module, built with
#                  the go command into .cache/go/bin)
#   KAFKA_LIBS=DIR use the Kafka jars already in DIR (nothing is fetched)
#
# The jars land in .cache/kafka-VERSION/libs; the file `complete` beside that
# folder holds the checksum of the pom they were fetched with, so a changed
# pom fetches them again and an interrupted fetch is simply redone.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="$repo/scripts/kafka/pom.xml"

packages=(
	# build
	make gcc libc6-dev pkg-config
	librdkafka-dev libpq-dev libjansson-dev libconfig-dev libmicrohttpd-dev
	# unit tests, and `make fuzz` (clang with its libFuzzer runtime)
	libcmocka-dev clang libclang-rt-dev
	# the local stack (scripts/stack.sh) and the system tests
	postgresql kcat curl ca-certificates default-jre-headless maven
	# the secured stack's throwaway certificates (TICKETD_STACK_SECURE=1)
	openssl
	python3-pytest python3-psycopg2 python3-confluent-kafka python3-yaml
	# the contract tests: schemas checked against live traffic, promtool
	# for the alert rules, a venv for schemathesis (scripts/contract-tools.sh)
	python3-jsonschema python3-venv prometheus
)
# node and npm run the AsyncAPI parser; a machine may have them from
# elsewhere (a newer node), and Debian's npm would conflict with that.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

say() { echo "deps: $*"; }
die() { echo "deps: $*" >&2; exit 1; }

missing_packages() {
	local pkg
	for pkg in "${packages[@]}"; do
		dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q ' installed$' ||
			echo "$pkg"
	done
}

install_packages() {
	local missing sudo=()
	mapfile -t missing < <(missing_packages)
	if [[ ${#missing[@]} -eq 0 ]]; then
		say "all ${#packages[@]} Debian packages present"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null ||
			die "not root and no sudo: cannot install ${missing[*]} (install them, or run as root)"
		sudo=(sudo)
		[[ -t 0 ]] || sudo=(sudo -n) # no terminal (CI): never wait for a password
	fi
	say "installing ${missing[*]}"
	local log
	log="$(mktemp)"
	# Another install may hold apt's lock: wait for it (bounded) instead of failing.
	if ! { "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
			install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		rm -f "$log"
		die "apt-get could not install ${missing[*]}"
	fi
	rm -f "$log"
}

kafka_version() {
	sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom"
}

fetch_kafka() {
	local version cache libs stamp sum log
	version="$(kafka_version)"
	[[ -n $version ]] || die "no <kafka.version> in $pom"
	cache="$repo/.cache/kafka-$version"
	libs="$cache/libs"
	stamp="$cache/complete"
	sum="$(sha256sum "$pom" | cut -d' ' -f1)"
	if [[ -f $stamp && $(cat "$stamp") == "$sum" && -d $libs ]]; then
		say "Kafka $version jars present in $libs"
		return 0
	fi
	mkdir -p "$cache"
	# One fetch at a time (two stacks may start at once); the second waits
	# and then finds the stamp.
	exec 9>"$cache/.lock"
	flock 9
	if [[ -f $stamp && $(cat "$stamp") == "$sum" && -d $libs ]]; then
		return 0
	fi
	say "fetching Apache Kafka $version jars into $libs"
	log="$cache/mvn.log"
	rm -rf "$libs.tmp"
	mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
		-DoutputDirectory="$libs.tmp" >"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "mvn could not fetch the Kafka jars (full log: $log)"
	}
	[[ -f $libs.tmp/kafka_2.13-$version.jar ]] ||
		die "kafka_2.13-$version.jar missing after mvn (log: $log)"
	rm -rf "$libs"
	mv "$libs.tmp" "$libs"
	echo "$sum" >"$stamp"
	exec 9>&-
}

# The Spring example's artifacts (spring-kafka and what it needs, and the
# build plugins), fetched once into .cache/maven-examples, as the broker's
# jars are; its test then builds it offline. The stamp is the pom's
# checksum, so a changed pom fetches again.
fetch_examples() {
	local pom_ex="$repo/examples/spring/pom.xml" dir="$repo/.cache/maven-examples" sum log
	sum="$(sha256sum "$pom_ex" | cut -d' ' -f1)"
	if [[ -f $dir/complete && $(cat "$dir/complete") == "$sum" ]]; then
		say "Spring example's artifacts present in $dir"
		return 0
	fi
	mkdir -p "$dir"
	exec 8>"$dir/.lock"
	flock 8
	say "fetching the Spring example's artifacts into $dir"
	log="$dir/mvn.log"
	mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$dir" -f "$pom_ex" \
		package dependency:copy-dependencies -DoutputDirectory=target/lib >"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "mvn could not fetch the Spring example's artifacts (full log: $log)"
	}
	echo "$sum" >"$dir/complete"
	exec 8>&-
}

# vegeta, pinned, for `make bench`: a Go module built from the module proxy
# into the project's cache (nothing outside the repository changes).
vegeta_version=v12.13.0
install_vegeta() {
	local bin="$repo/.cache/go/bin/vegeta" go
	# go install leaves the version out of the binary: a stamp beside it.
	if [[ -x $bin && $(cat "$bin.version" 2>/dev/null) == "$vegeta_version" ]]; then
		say "vegeta $vegeta_version present"
		return 0
	fi
	go="$(command -v go || true)"
	[[ -n $go ]] || go=/usr/local/go/bin/go
	if [[ ! -x $go ]]; then
		packages=(golang-go)
		install_packages
		go="$(command -v go)"
	fi
	say "building vegeta $vegeta_version with $("$go" version)"
	GOBIN="$repo/.cache/go/bin" GOPATH="$repo/.cache/go/path" \
		GOMODCACHE="$repo/.cache/go/mod" GOFLAGS=-modcacherw \
		"$go" install "github.com/tsenart/vegeta/v12@$vegeta_version" ||
		die "could not build vegeta $vegeta_version (it needs Go 1.22 or newer)"
	echo "$vegeta_version" >"$bin.version"
}

main() {
	local kafka=1 bench=0
	case "${1:-}" in
	"") ;;
	--no-kafka) kafka=0 ;;
	--bench) bench=1 ;;
	*) die "usage: deps.sh [--no-kafka | --bench]" ;;
	esac
	install_packages
	if [[ $bench == 1 ]]; then
		packages=(python3-matplotlib)
		install_packages
		install_vegeta
	fi
	if [[ $kafka == 0 ]]; then
		return 0
	elif [[ -n ${KAFKA_LIBS:-} ]]; then
		ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 ||
			die "KAFKA_LIBS=$KAFKA_LIBS holds no kafka_2.13-*.jar"
	else
		fetch_kafka
	fi
	"$repo/scripts/contract-tools.sh"
	fetch_examples
}

main "$@"
