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
# STACK_SKIP_DEPS=1 (do not run scripts/deps.sh), TICKETD_STACK_SECURE=1 (a
# secured stack: see secure_* below and docs/security.md; chosen when the
# stack is first made, kept until `down`).
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
availability_topic="${TICKETD_AVAILABILITY_TOPIC:-bookings.availability}"

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
secure() { [[ $(state_get secure) == 1 ]]; }

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
		# The benchmark's per-statement breakdown (scripts/bench.py --statements).
		[[ ${TICKETD_STACK_PG_STATEMENTS:-} != 1 ]] ||
			echo "shared_preload_libraries = 'pg_stat_statements'" >>"$data/postgresql.conf"
		if secure; then secure_pg_conf "$data"; fi
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
	local dir="$stack_dir/kafka" port cport sport=""
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
	if secure; then
		sport="$(state_get kafka_sasl_port)"
		if [[ -z $sport ]]; then
			sport="$(free_port)"
			state_set kafka_sasl_port "$sport"
		fi
	fi
	mkdir -p "$dir/data"
	# It may hold the keystore's password: the owner's only.
	(umask 077 && : >"$dir/server.properties")
	local listeners="PLAINTEXT://127.0.0.1:$port" protocols="PLAINTEXT:PLAINTEXT"
	if [[ -n $sport ]]; then
		listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
		protocols="$protocols,SASL_SSL:SASL_SSL"
	fi
	cat >"$dir/server.properties" <<-PROPS
		node.id=1
		process.roles=broker,controller
		listeners=$listeners,CONTROLLER://127.0.0.1:$cport
		advertised.listeners=$listeners
		controller.quorum.voters=1@127.0.0.1:$cport
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		listener.security.protocol.map=$protocols,CONTROLLER:PLAINTEXT
		log.dirs=$dir/data
		num.partitions=4
		offsets.topic.replication.factor=1
		offsets.topic.num.partitions=4
		transaction.state.log.replication.factor=1
		transaction.state.log.min.isr=1
		group.initial.rebalance.delay.ms=0
		auto.create.topics.enable=false
	PROPS
	if secure; then secure_kafka_properties >>"$dir/server.properties"; fi
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
	# name, partitions, config (k=v,...; "-" for none)
	/usr/bin/python3 - "$TICKETD_BROKERS" \
		"$request_topic" "${TICKETD_REQUEST_PARTITIONS:-4}" max.message.bytes=16777216 \
		"$reply_topic" 4 - \
		"$dlq_topic" "${TICKETD_REQUEST_PARTITIONS:-4}" - \
		"$availability_topic" 4 cleanup.policy=compact,min.cleanable.dirty.ratio=0.1,segment.ms=600000 \
		<<-'PY' || die "creating the topics failed"
		import sys
		from confluent_kafka.admin import AdminClient, NewTopic
		brokers, specs = sys.argv[1], sys.argv[2:]
		admin = AdminClient({"bootstrap.servers": brokers, "log_level": 4})
		# Requests may be large (up to 16 MiB): ticketd answers the ones
		# over its own limit with MESSAGE_TOO_LARGE instead of the broker
		# refusing them unseen. The availability topic is compacted: the
		# newest state of each section stays, keyed by section id.
		wanted = []
		for i in range(0, len(specs), 3):
		    config = {} if specs[i + 2] == "-" else dict(
		        kv.split("=", 1) for kv in specs[i + 2].split(","))
		    wanted.append(NewTopic(specs[i], int(specs[i + 1]), 1, config=config))
		existing = admin.list_topics(timeout=30).topics
		new = [t for t in wanted if t.topic not in existing]
		for topic, future in (admin.create_topics(new) if new else {}).items():
		    future.result(60)
		PY
}

# ------------------------------------------------------------ secured stack
#
# TICKETD_STACK_SECURE=1: beside the plain listener and the trusted roles
# the other tests use, a throwaway CA and a server certificate for
# 127.0.0.1 and localhost; Kafka gets a SASL_SSL listener with a
# SCRAM-SHA-512 user, PostgreSQL ssl=on and a role that must come over TLS
# with a SCRAM password. The passwords are random, in files only their
# owner reads ($stack_dir/secrets); nothing else names them.

tls_dir="$stack_dir/tls"
secrets_dir="$stack_dir/secrets"
kafka_user=ticketd
pg_secure_role=ticketd_tls

# A password file, made once: "stack-NAME-" and 32 random hex digits, so that
# a test can grep every output for it.
secret_make() {
	local file="$secrets_dir/$1"
	[[ -s $file ]] && return 0
	(umask 077 && mkdir -p "$secrets_dir" &&
		printf 'stack-%s-%s\n' "$1" "$(openssl rand -hex 16)" >"$file.tmp" &&
		mv "$file.tmp" "$file")
}

secret_get() { head -n 1 "$secrets_dir/$1"; }

tls_make() {
	[[ -s $tls_dir/server.crt && -s $tls_dir/kafka.p12 ]] && return 0
	command -v openssl >/dev/null || die "openssl is missing (run scripts/deps.sh)"
	local log="$tls_dir/openssl.log"
	mkdir -p "$tls_dir"
	chmod 755 "$tls_dir"
	secret_make kafka-keystore
	secret_make kafka-password
	# P-256 keys: quicker to make than RSA, and every client here takes them.
	{
		(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" -days 30 \
			-subj "/CN=ticketd local stack CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign") &&
			(umask 077 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-keyout "$tls_dir/server.key" -out "$tls_dir/server.csr" \
				-subj "/CN=localhost") &&
			openssl x509 -req -in "$tls_dir/server.csr" -CA "$tls_dir/ca.crt" \
				-CAkey "$tls_dir/ca.key" -CAcreateserial -CAserial "$tls_dir/ca.srl" \
				-days 30 -out "$tls_dir/server.crt" -extfile <(printf '%s\n' \
				"subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
				"keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=serverAuth") &&
			(umask 077 && openssl pkcs12 -export -in "$tls_dir/server.crt" \
				-inkey "$tls_dir/server.key" -certfile "$tls_dir/ca.crt" -name kafka \
				-passout "file:$secrets_dir/kafka-keystore" -out "$tls_dir/kafka.p12")
	} >"$log" 2>&1 || { cat "$log" >&2; die "making the stack's certificates failed"; }
	chmod 644 "$tls_dir/ca.crt" "$tls_dir/server.crt"
}

# postgresql.conf and pg_hba.conf of a fresh cluster in $1. The server reads
# its own copy of the key, owned by it (PostgreSQL refuses a key others read).
secure_pg_conf() {
	local data="$1" own="$stack_dir/pg/tls"
	mkdir -p "$own"
	cp "$tls_dir/server.crt" "$tls_dir/server.key" "$own/"
	chmod 600 "$own/server.key"
	[[ $(id -u) -eq 0 ]] && chown -R postgres: "$own"
	cat >>"$data/postgresql.conf" <<-CONF
		ssl = on
		ssl_cert_file = '$own/server.crt'
		ssl_key_file = '$own/server.key'
		password_encryption = 'scram-sha-256'
	CONF
	# The secured role only over TLS with its password; the roles of the
	# plain tests stay trusted; any other role needs a password.
	cat >"$data/pg_hba.conf" <<-HBA
		# Written by scripts/stack.sh (TICKETD_STACK_SECURE=1).
		local     all  all                 trust
		hostssl   all  $pg_secure_role     127.0.0.1/32  scram-sha-256
		hostnossl all  $pg_secure_role     127.0.0.1/32  reject
		host      all  postgres,ticketd    127.0.0.1/32  trust
		host      all  all                 127.0.0.1/32  scram-sha-256
	HBA
	[[ $(id -u) -eq 0 ]] && chown postgres: "$data/pg_hba.conf"
	return 0
}

# The role the secured clients log in as: a member of ticketd (the owner
# of the schema), with the password of the secret file. The statement goes
# through stdin, so that the password is on no command line.
secure_pg_role() {
	local port="$1" password
	secret_make pg-password
	password="$(secret_get pg-password)"
	printf '%s\n' \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$pg_secure_role') THEN CREATE ROLE $pg_secure_role LOGIN; END IF; END \$\$;" \
		"GRANT ticketd TO $pg_secure_role;" \
		"ALTER ROLE $pg_secure_role PASSWORD '$password';" |
		psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
			>/dev/null || die "creating the PostgreSQL role $pg_secure_role failed"
	# libpq's password file: host:port:database:user:password.
	(umask 077 && printf '%s\n' \
		"127.0.0.1:$port:*:$pg_secure_role:$password" \
		"localhost:$port:*:$pg_secure_role:$password" >"$secrets_dir/pgpass")
}

# Lines appended to server.properties: the SASL_SSL listener's keystore and
# its mechanisms, SCRAM-SHA-512 and PLAIN (what managed clusters offer; the
# same user and password for both). No authorizer: an authenticated user
# may do anything.
secure_kafka_properties() {
	cat <<-PROPS
		sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
		listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
		listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$kafka_user="$(secret_get kafka-password)";
		listener.name.sasl_ssl.ssl.keystore.type=PKCS12
		listener.name.sasl_ssl.ssl.keystore.location=$tls_dir/kafka.p12
		listener.name.sasl_ssl.ssl.keystore.password=$(secret_get kafka-keystore)
		listener.name.sasl_ssl.ssl.key.password=$(secret_get kafka-keystore)
	PROPS
}

# The SCRAM user, made with Kafka's own tool through the plain listener
# (KRaft keeps it in the metadata log). The password goes in a file
# (--add-config-file), never on the command line. Once per stack.
secure_kafka_user() {
	local dir="$stack_dir/kafka" file
	[[ $(state_get kafka_user) == "$kafka_user" ]] && return 0
	secret_make kafka-password
	file="$secrets_dir/scram.properties"
	# In a file the value has no brackets (on the command line it has).
	(umask 077 && printf 'SCRAM-SHA-512=iterations=8192,password=%s\n' \
		"$(secret_get kafka-password)" >"$file")
	if ! java -cp "$kafka_libs/*" -Dlog4j.configuration="file:$repo/scripts/kafka/log4j.properties" \
		-Dkafka.logs.dir="$dir" kafka.admin.ConfigCommand \
		--bootstrap-server "127.0.0.1:$(state_get kafka_port)" --alter \
		--entity-type users --entity-name "$kafka_user" \
		--add-config-file "$file" >"$dir/scram.log" 2>&1; then
		rm -f "$file"
		# The tool's refusals quote the password: not on the terminal.
		sed "s/$(secret_get kafka-password)/[password]/g" "$dir/scram.log" >&2
		rm -f "$dir/scram.log"
		die "creating the Kafka SCRAM user $kafka_user failed"
	fi
	rm -f "$file"
	state_set kafka_user "$kafka_user"
}

# stack.env for a secured stack: what a client of the secured services
# needs, as ticketd's own settings (sourcing it points ticketd and
# ticket-flood at SASL_SSL and TLS + SCRAM); the plain endpoints beside.
secure_env() {
	local sport pg_port
	sport="$(state_get kafka_sasl_port)"
	pg_port="$(state_get pg_port)"
	cat <<-ENV
		export TICKETD_STACK_SECURE='1'
		export TICKETD_BROKERS='127.0.0.1:$sport'
		export TICKETD_KAFKA_PROPERTIES='security.protocol=SASL_SSL,sasl.mechanisms=SCRAM-SHA-512,sasl.username=$kafka_user,ssl.ca.location=$tls_dir/ca.crt,ssl.endpoint.identification.algorithm=https'
		export TICKETD_KAFKA_SASL_PASSWORD_FILE='$secrets_dir/kafka-password'
		export TICKETD_PG='host=127.0.0.1 port=$pg_port dbname=ticketd user=$pg_secure_role sslmode=verify-full sslrootcert=$tls_dir/ca.crt'
		export TICKETD_PG_PASSFILE='$secrets_dir/pgpass'
		export STACK_CA_FILE='$tls_dir/ca.crt'
		export STACK_KAFKA_USER='$kafka_user'
		export STACK_PG_USER='$pg_secure_role'
		export STACK_PLAIN_BROKERS='$TICKETD_BROKERS'
		export STACK_PLAIN_PG='$TICKETD_PG sslmode=disable'
	ENV
}

# ---------------------------------------------------------------- commands

write_env() {
	local http_port
	http_port="$(state_get http_port)"
	if [[ -z $http_port ]]; then
		http_port="$(free_port)"
		state_set http_port "$http_port"
	fi
	{
		echo "# Written by scripts/stack.sh up: source it to reach the local stack."
		if secure; then
			secure_env
		else
			echo "export TICKETD_BROKERS='$TICKETD_BROKERS'"
			echo "export TICKETD_PG='$TICKETD_PG'"
		fi
		cat <<-ENV
			export TICKETD_HTTP_PORT='$http_port'
			export TICKETD_HTTP='127.0.0.1:$http_port'
			export STACK_DIR='$stack_dir'
		ENV
	} >"$env_file"
}

up() {
	[[ ${STACK_SKIP_DEPS:-} == 1 ]] || "$repo/scripts/deps.sh"
	local own_pg=0 own_kafka=0 want="${TICKETD_STACK_SECURE:-0}"
	[[ $want == 0 || $want == 1 ]] || die "TICKETD_STACK_SECURE must be 0 or 1, not '$want'"
	if [[ -f $stack_dir/ports ]]; then
		local have
		have="$(state_get secure)"
		[[ $want == "${have:-0}" ]] ||
			die "this stack was made with TICKETD_STACK_SECURE=${have:-0}: run scripts/stack.sh down first to change it"
	elif [[ $want == 1 ]]; then
		[[ -z ${TICKETD_PG:-}${TICKETD_BROKERS:-} ]] ||
			die "TICKETD_STACK_SECURE=1 secures the stack's own services: unset TICKETD_PG and TICKETD_BROKERS"
		state_set secure 1
	fi
	if secure; then tls_make; fi
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
	if secure; then
		secure_pg_role "$(state_get pg_port)"
		# The SCRAM user's JVM runs while the topics are made.
		secure_kafka_user &
		local user_pid=$!
		create_topics
		wait "$user_pid" || exit 1
	else
		create_topics
	fi
	write_env
	say "PostgreSQL $TICKETD_PG$([[ $own_pg == 1 ]] || echo ' (existing)')"
	say "Kafka $TICKETD_BROKERS$([[ $own_kafka == 1 ]] || echo ' (existing)'), topics $request_topic, $reply_topic, $dlq_topic, $availability_topic"
	if secure; then
		say "secured: Kafka SASL_SSL (SCRAM-SHA-512 or PLAIN, user $kafka_user) on 127.0.0.1:$(state_get kafka_sasl_port), PostgreSQL TLS + SCRAM as $pg_secure_role; CA $tls_dir/ca.crt, passwords in $secrets_dir"
	fi
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
		rm -rf "$stack_dir/pg" "$stack_dir/kafka" "$stack_dir/ports" "$env_file" \
			"$tls_dir" "$secrets_dir"
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
		if secure; then say "Kafka SASL_SSL on 127.0.0.1:$(state_get kafka_sasl_port)"; fi
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
