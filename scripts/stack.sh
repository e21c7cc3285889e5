#!/usr/bin/env bash
# stack.sh: a throwaway PostgreSQL and a single-node Apache Kafka (KRaft) on
# loopback, on free ports, with their state under $STACK_DIR (default .run/).
#
#   scripts/stack.sh up          start both (or use TICKETD_PG / TICKETD_BROKERS
#                                when set), apply the schema, create the topics,
#                                write $STACK_DIR/stack.env
#   scripts/stack.sh down        stop everything it started (and ticketd*.pid)
#   scripts/stack.sh status      what runs
#   scripts/stack.sh pg-stop | pg-start | kafka-stop | kafka-start
#                                stop or restart one service, same port and data
#
# Environment: STACK_DIR, TICKETD_PG, TICKETD_BROKERS (use existing services),
# TICKETD_REQUEST_PARTITIONS (default 4), KEEP_STATE=1 (down keeps the data),
# STACK_SKIP_DEPS=1 (do not run scripts/deps.sh).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack_dir="${STACK_DIR:-$repo/.run}"
mkdir -p "$stack_dir"
stack_dir="$(cd "$stack_dir" && pwd)"
env_file="$stack_dir/stack.env"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$repo/scripts/kafka/pom.xml")"
kafka_libs="${KAFKA_LIBS:-$repo/.cache/kafka-$kafka_version/libs}"
request_topic="${TICKETD_REQUEST_TOPIC:-bookings.requests}"
reply_topic="${TICKETD_REPLY_TOPIC:-bookings.replies}"
dlq_topic="${TICKETD_DEAD_LETTER_TOPIC:-bookings.dead-letter}"

die() { echo "stack: $*" >&2; exit 1; }
say() { echo "stack: $*"; }

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: run its tools as postgres then.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_bin() {
	local dir
	dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
	[[ -x $dir/initdb ]] || die "PostgreSQL server binaries not found (run scripts/deps.sh)"
	echo "$dir"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

state_get() {
	[[ -f $stack_dir/ports ]] || return 0
	sed -n "s/^$1=//p" "$stack_dir/ports" | tail -n 1
}
state_set() { echo "$1=$2" >>"$stack_dir/ports"; }

# ---------------------------------------------------------------- PostgreSQL

pg_start() {
	local bin port data="$stack_dir/pg/data" sock="$stack_dir/pg/sock"
	bin="$(pg_bin)"
	port="$(state_get pg_port)"
	if [[ -z $port ]]; then
		port="$(free_port)"
		state_set pg_port "$port"
	fi
	if [[ ! -f $data/PG_VERSION ]]; then
		mkdir -p "$stack_dir/pg" "$sock"
		[[ $(id -u) -eq 0 ]] && chown -R postgres: "$stack_dir/pg"
		# The state dir may sit under a folder postgres cannot enter.
		[[ $(id -u) -eq 0 ]] && chmod o+x "$stack_dir" "$(dirname "$stack_dir")" 2>/dev/null || true
		as_pg "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 >"$stack_dir/pg/initdb.log" 2>&1 ||
			{ cat "$stack_dir/pg/initdb.log" >&2; die "initdb failed"; }
		cat >>"$data/postgresql.conf" <<-CONF
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$sock'
			fsync = on
			synchronous_commit = on
			max_connections = 200
			shared_buffers = 256MB
		CONF
	fi
	as_pg "$bin/pg_ctl" -D "$data" -l "$stack_dir/pg/log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$stack_dir/pg/log" >&2; die "PostgreSQL did not start"; }
}

pg_stop() {
	local data="$stack_dir/pg/data"
	[[ -f $data/postmaster.pid ]] || return 0
	as_pg "$(pg_bin)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

pg_setup() {
	local port
	port="$(state_get pg_port)"
	psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
		-c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ticketd') THEN CREATE ROLE ticketd LOGIN SUPERUSER; END IF; END \$\$" \
		>/dev/null
	if ! psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'ticketd'" | grep -q 1; then
		psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -q \
			-c "CREATE DATABASE ticketd OWNER ticketd" >/dev/null
	fi
	TICKETD_PG="host=127.0.0.1 port=$port dbname=ticketd user=ticketd"
}

apply_schema() {
	psql "$TICKETD_PG" -v ON_ERROR_STOP=1 -q -f "$repo/db/schema.sql" -f "$repo/db/seed.sql" \
		>/dev/null || die "applying db/schema.sql and db/seed.sql failed"
}

# --------------------------------------------------------------------- Kafka

kafka_start() {
	local dir="$stack_dir/kafka" port cport
	# deps.sh moves the jars into place only once all of them are fetched.
	ls "$kafka_libs"/kafka_2.13-*.jar >/dev/null 2>&1 ||
		die "no Kafka jars in $kafka_libs (run scripts/deps.sh)"
	alive "$dir/pid" && return 0
	port="$(state_get kafka_port)"
	cport="$(state_get kafka_controller_port)"
	if [[ -z $port ]]; then
		port="$(free_port)"
		cport="$(free_port)"
		state_set kafka_port "$port"
		state_set kafka_controller_port "$cport"
	fi
	mkdir -p "$dir/data"
	cat >"$dir/server.properties" <<-PROPS
		node.id=1
		process.roles=broker,controller
		listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
		advertised.listeners=PLAINTEXT://127.0.0.1:$port
		controller.quorum.voters=1@127.0.0.1:$cport
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
		log.dirs=$dir/data
		num.partitions=4
		offsets.topic.replication.factor=1
		offsets.topic.num.partitions=4
		transaction.state.log.replication.factor=1
		transaction.state.log.min.isr=1
		group.initial.rebalance.delay.ms=0
		auto.create.topics.enable=false
	PROPS
	if [[ ! -f $dir/data/meta.properties ]]; then
		java -cp "$kafka_libs/*" -Dlog4j.configuration="file:$repo/scripts/kafka/log4j.properties" \
			-Dkafka.logs.dir="$dir" kafka.tools.StorageTool format \
			-t "$(java -cp "$kafka_libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
			-c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
			{ cat "$dir/format.log" >&2; die "formatting the Kafka storage failed"; }
	fi
	setsid nohup java -Xms256m -Xmx512m -XX:+UseG1GC -cp "$kafka_libs/*" \
		-Dlog4j.configuration="file:$repo/scripts/kafka/log4j.properties" \
		-Dkafka.logs.dir="$dir" kafka.Kafka "$dir/server.properties" \
		>"$dir/stdout.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	# Ready when it answers metadata requests (bounded: 90 s).
	for _ in $(seq 1 180); do
		alive "$dir/pid" || { tail -n 30 "$dir/stdout.log" "$dir/broker.log" >&2 2>/dev/null; die "the Kafka broker exited during start-up"; }
		if kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1; then
			TICKETD_BROKERS="127.0.0.1:$port"
			return 0
		fi
		sleep 0.5
	done
	tail -n 30 "$dir/stdout.log" "$dir/broker.log" >&2 2>/dev/null
	die "the Kafka broker did not answer within 90 s"
}

kafka_stop() {
	local pid_file="$stack_dir/kafka/pid" pid
	alive "$pid_file" || { rm -f "$pid_file"; return 0; }
	pid="$(cat "$pid_file")"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pid_file"
}

create_topics() {
	/usr/bin/python3 - "$TICKETD_BROKERS" "$request_topic" "${TICKETD_REQUEST_PARTITIONS:-4}" \
		"$reply_topic" 4 "$dlq_topic" "${TICKETD_REQUEST_PARTITIONS:-4}" <<-'PY' || die "creating the topics failed"
		import sys
		from confluent_kafka.admin import AdminClient, NewTopic
		brokers, specs = sys.argv[1], sys.argv[2:]
		admin = AdminClient({"bootstrap.servers": brokers})
		# Requests may be large (up to 16 MiB): ticketd answers the ones
		# over its own limit with MESSAGE_TOO_LARGE instead of the broker
		# refusing them unseen.
		wanted = [NewTopic(specs[i], int(specs[i + 1]), 1,
		                   config={"max.message.bytes": "16777216"} if i == 0 else {})
		          for i in range(0, len(specs), 2)]
		existing = admin.list_topics(timeout=30).topics
		new = [t for t in wanted if t.topic not in existing]
		for topic, future in (admin.create_topics(new) if new else {}).items():
		    future.result(60)
		PY
}

# ---------------------------------------------------------------- commands

write_env() {
	local http_port
	http_port="$(state_get http_port)"
	if [[ -z $http_port ]]; then
		http_port="$(free_port)"
		state_set http_port "$http_port"
	fi
	cat >"$env_file" <<-ENV
		# Written by scripts/stack.sh up: source it to reach the local stack.
		export TICKETD_BROKERS='$TICKETD_BROKERS'
		export TICKETD_PG='$TICKETD_PG'
		export TICKETD_HTTP_PORT='$http_port'
		export TICKETD_HTTP='127.0.0.1:$http_port'
		export STACK_DIR='$stack_dir'
	ENV
}

up() {
	[[ ${STACK_SKIP_DEPS:-} == 1 ]] || "$repo/scripts/deps.sh"
	local own_pg=0 own_kafka=0
	if [[ -z ${TICKETD_PG:-} ]]; then
		own_pg=1
		pg_start
		pg_setup
		state_set own_pg 1
	fi
	apply_schema
	if [[ -z ${TICKETD_BROKERS:-} ]]; then
		own_kafka=1
		kafka_start
		state_set own_kafka 1
	fi
	create_topics
	write_env
	say "PostgreSQL $TICKETD_PG$([[ $own_pg == 1 ]] || echo ' (existing)')"
	say "Kafka $TICKETD_BROKERS$([[ $own_kafka == 1 ]] || echo ' (existing)'), topics $request_topic, $reply_topic, $dlq_topic"
	say "addresses in $env_file"
}

down() {
	local pid_file pid
	for pid_file in "$stack_dir"/*.pid; do
		[[ -f $pid_file ]] || continue
		pid="$(cat "$pid_file")"
		if kill -TERM "$pid" 2>/dev/null; then
			for _ in $(seq 1 75); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$pid_file"
	done
	kafka_stop
	pg_stop
	if [[ ${KEEP_STATE:-} != 1 ]]; then
		rm -rf "$stack_dir/pg" "$stack_dir/kafka" "$stack_dir/ports" "$env_file"
	fi
	say "stopped"
}

status() {
	local port
	port="$(state_get pg_port)"
	if [[ -n $port ]] && pg_isready -h 127.0.0.1 -p "$port" >/dev/null 2>&1; then
		say "PostgreSQL up on 127.0.0.1:$port"
	else
		say "PostgreSQL down"
	fi
	if alive "$stack_dir/kafka/pid"; then
		say "Kafka up on 127.0.0.1:$(state_get kafka_port) (pid $(cat "$stack_dir/kafka/pid"))"
	else
		say "Kafka down"
	fi
	for pid_file in "$stack_dir"/*.pid; do
		[[ -f $pid_file ]] || continue
		alive "$pid_file" && say "$(basename "$pid_file" .pid) up (pid $(cat "$pid_file"))"
	done
	return 0
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
pg-stop) pg_stop ;;
pg-start) pg_start ;;
kafka-stop) kafka_stop ;;
kafka-start) kafka_start ;;
*) die "usage: stack.sh up|down|status|pg-stop|pg-start|kafka-stop|kafka-start" ;;
esac
