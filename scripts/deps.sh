#!/usr/bin/env bash
# deps.sh: install what ticketd needs on Debian, and fetch the pinned Apache
# Kafka broker jars. Idempotent: quick and quiet when everything is there.
#
#   scripts/deps.sh [--no-kafka]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$repo/scripts/kafka/pom.xml")"
kafka_libs="${KAFKA_LIBS:-$repo/.cache/kafka-$kafka_version/libs}"

packages=(
	build-essential pkg-config curl ca-certificates
	librdkafka-dev libpq-dev libjansson-dev libconfig-dev libmicrohttpd-dev
	libcmocka-dev postgresql kcat
	python3-pytest python3-psycopg2 python3-confluent-kafka python3-yaml
	default-jre-headless maven
)

install_packages() {
	local missing=() pkg sudo=()
	for pkg in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null ||
			{ echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "deps: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
}

fetch_kafka() {
	local stamp="$kafka_libs/.complete"
	[[ -f $stamp ]] && return 0
	echo "deps: fetching Apache Kafka $kafka_version jars into $kafka_libs"
	mkdir -p "$kafka_libs"
	local log="$repo/.cache/mvn-kafka.log"
	mvn -q -B -Dstyle.color=never -f "$repo/scripts/kafka/pom.xml" \
		dependency:copy-dependencies -DoutputDirectory="$kafka_libs" \
		>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; echo "deps: mvn could not fetch the Kafka jars" >&2; exit 1; }
	ls "$kafka_libs"/kafka_2.13-"$kafka_version".jar >/dev/null ||
		{ echo "deps: kafka_2.13-$kafka_version.jar missing after mvn" >&2; exit 1; }
	touch "$stamp"
}

install_packages
[[ ${1:-} == --no-kafka || -n ${KAFKA_LIBS:-} ]] || fetch_kafka
