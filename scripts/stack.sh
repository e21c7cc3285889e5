#!/usr/bin/env bash
# stack.sh: a throwaway PostgreSQL and a single-node Apache Kafka (KRaft) on
# loopback, on free ports, with their state under $STACK_DIR (default .run/);
# or, replicated, three Kafka nodes and a PostgreSQL primary with a
# synchronous standby.
#
#   scripts/stack.sh up          start both (or use TICKETD_PG / TICKETD_BROKERS
#                                when set), apply the schema, create the topics,
#                                write $STACK_DIR/stack.env
#   scripts/stack.sh down        stop everything it started (and ticketd*.pid)
#   scripts/stack.sh status      what runs
#   scripts/stack.sh pg-stop | pg-start | kafka-stop | kafka-start
#                                stop or restart one service, same port and data
#   replicated only: kafka-kill N, kafka-stop N, kafka-start N, pg-kill-primary,
#   pg-promote, pg-rejoin, pg-sync on|off, pg-standby-stop, pg-standby-start
#                                (see usage below and docs/replication.md)
#
# Environment: STACK_DIR, TICKETD_PG, TICKETD_BROKERS (use existing services),
# TICKETD_REQUEST_PARTITIONS (default 4), KEEP_STATE=1 (down keeps the data),
# STACK_SKIP_DEPS=1 (do not run scripts/deps.sh), TICKETD_STACK_SECURE=1 (a
# secured stack: see secure_* below and docs/security.md), or
# TICKETD_STACK_REPLICATED=1 (a replicated stack: see the replicated section
# below and docs/replication.md); each chosen when the stack is first made,
# kept until `down`.
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
replicated() { [[ $(state_get replicated) == 1 ]]; }

# ---------------------------------------------------------------- PostgreSQL

# initdb and the server's settings, once, for the stack's (first) server.
pg_init() {
	local bin port data="$stack_dir/pg/data" sock="$stack_dir/pg/sock"
	bin="$(pg_bin)"
	port="$(state_get pg_port)"
	if [[ -z $port ]]; then
		port="$(free_port)"
		state_set pg_port "$port"
	fi
	[[ -f $data/PG_VERSION ]] && return 0
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
	# The benchmark's per-statement breakdown (scripts/bench.py --statements),
	# with the statements the triggers run listed beside the ones they serve.
	[[ ${TICKETD_STACK_PG_STATEMENTS:-} != 1 ]] ||
		printf '%s\n' "shared_preload_libraries = 'pg_stat_statements'" \
			"pg_stat_statements.track = all" >>"$data/postgresql.conf"
	if secure; then secure_pg_conf "$data"; fi
	if replicated; then replicated_pg_conf "$data"; fi
	return 0
}

pg_start() {
	if replicated; then
		pg_start_all
		return
	fi
	pg_init
	as_pg "$(pg_bin)/pg_ctl" -D "$stack_dir/pg/data" -l "$stack_dir/pg/log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$stack_dir/pg/log" >&2; die "PostgreSQL did not start"; }
}

pg_stop() {
	if replicated; then
		pg_stop_all
		return
	fi
	local data="$stack_dir/pg/data"
	[[ -f $data/postmaster.pid ]] || return 0
	as_pg "$(pg_bin)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# The role and the database, on the server at port $1 (default: the
# stack's first); TICKETD_PG names them.
pg_setup() {
	local port="${1:-$(state_get pg_port)}"
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

# Format (once) and launch one Kafka node whose server.properties is in
# $1; $2 is the cluster id to format with; the rest are JVM options.
kafka_launch() {
	local dir="$1" cluster="$2"
	shift 2
	if [[ ! -f $dir/data/meta.properties ]]; then
		java -cp "$kafka_libs/*" -Dlog4j.configuration="file:$repo/scripts/kafka/log4j.properties" \
			-Dkafka.logs.dir="$dir" kafka.tools.StorageTool format \
			-t "$cluster" -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
			{ cat "$dir/format.log" >&2; die "formatting the Kafka storage in $dir failed"; }
	fi
	setsid nohup java "$@" -cp "$kafka_libs/*" \
		-Dlog4j.configuration="file:$repo/scripts/kafka/log4j.properties" \
		-Dkafka.logs.dir="$dir" kafka.Kafka "$dir/server.properties" \
		>"$dir/stdout.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

kafka_random_uuid() {
	java -cp "$kafka_libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null
}

# Wait (bounded: $3 s) until the node in $1 answers metadata requests on
# port $2.
kafka_wait_ready() {
	local dir="$1" port="$2" seconds="${3:-90}"
	for _ in $(seq 1 $((seconds * 2))); do
		alive "$dir/pid" || { tail -n 30 "$dir/stdout.log" "$dir/broker.log" >&2 2>/dev/null; die "the Kafka broker in $dir exited during start-up"; }
		if kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	tail -n 30 "$dir/stdout.log" "$dir/broker.log" >&2 2>/dev/null
	die "the Kafka broker in $dir did not answer within $seconds s"
}

kafka_libs_check() {
	# deps.sh moves the jars into place only once all of them are fetched.
	ls "$kafka_libs"/kafka_2.13-*.jar >/dev/null 2>&1 ||
		die "no Kafka jars in $kafka_libs (run scripts/deps.sh)"
}

kafka_start() {
	local dir="$stack_dir/kafka" port cport sport=""
	kafka_libs_check
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
	local cluster=""
	[[ -f $dir/data/meta.properties ]] || cluster="$(kafka_random_uuid)"
	kafka_launch "$dir" "$cluster" -Xms256m -Xmx512m -XX:+UseG1GC
	kafka_wait_ready "$dir" "$port" 90
	TICKETD_BROKERS="127.0.0.1:$port"
}

# Stop the Kafka node in $1: SIGTERM (a controlled shutdown: its
# partitions' leadership moves first) and a bounded wait, then SIGKILL.
kafka_stop_dir() {
	local pid_file="$1/pid" pid
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

kafka_stop() { kafka_stop_dir "$stack_dir/kafka"; }

create_topics() {
	# Replicated: every topic on the three nodes, a write acknowledged
	# (acks=all) only once two replicas have it, and no replica that fell
	# behind may become leader (it would lose acknowledged records).
	local rf=1 ha=""
	if replicated; then
		rf=3
		ha=",min.insync.replicas=2,unclean.leader.election.enable=false"
	fi
	# name, partitions, config (k=v,...; "-" for none)
	/usr/bin/python3 - "$TICKETD_BROKERS" "$rf" \
		"$request_topic" "${TICKETD_REQUEST_PARTITIONS:-4}" "max.message.bytes=16777216$ha" \
		"$reply_topic" 4 "${ha#,}" \
		"$dlq_topic" "${TICKETD_REQUEST_PARTITIONS:-4}" "${ha#,}" \
		"$availability_topic" 4 "cleanup.policy=compact,min.cleanable.dirty.ratio=0.1,segment.ms=600000$ha" \
		<<-'PY' || die "creating the topics failed"
		import sys
		from confluent_kafka.admin import AdminClient, NewTopic
		brokers, rf, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
		admin = AdminClient({"bootstrap.servers": brokers, "log_level": 4})
		# Requests may be large (up to 16 MiB): ticketd answers the ones
		# over its own limit with MESSAGE_TOO_LARGE instead of the broker
		# refusing them unseen. The availability topic is compacted: the
		# newest state of each section stays, keyed by section id.
		wanted = []
		for i in range(0, len(specs), 3):
		    config = {} if specs[i + 2] in ("-", "") else dict(
		        kv.split("=", 1) for kv in specs[i + 2].split(","))
		    wanted.append(NewTopic(specs[i], int(specs[i + 1]), rf, config=config))
		existing = admin.list_topics(timeout=30).topics
		new = [t for t in wanted if t.topic not in existing]
		for topic, future in (admin.create_topics(new) if new else {}).items():
		    future.result(60)
		PY
	if replicated; then
		kafka_cluster_wait_topics "$request_topic" "$reply_topic" "$dlq_topic" "$availability_topic"
	fi
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

# --------------------------------------------------------- replicated stack
#
# TICKETD_STACK_REPLICATED=1: three Kafka nodes on loopback, each broker and
# controller (a three-voter KRaft quorum: any one may die), every topic with
# replication factor 3, min.insync.replicas=2 and no unclean leader
# election; and two PostgreSQL servers, a primary and a streaming standby
# made with pg_basebackup, the standby named in the primary's
# synchronous_standby_names (a COMMIT returns once the standby has flushed
# it). Node 1 of PostgreSQL is $stack_dir/pg, node 2 $stack_dir/pg2; which
# is primary is in the state file (pg_primary) and changes with pg-promote.
# Each server is started with its port and socket on the command line, so
# that the configuration files pg_basebackup and pg_rewind copy from the
# other node never move it. Chosen when the stack is first made, kept until
# `down`.

# What a replicated Kafka node costs: a 256 MB heap, the serial collector
# and the client compiler only (three JVMs share two cores; a broker on
# loopback at a few thousand messages a second needs no more).
kafka_node_jvm=(-Xms128m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

knode_check() {
	[[ ${1:-} =~ ^[123]$ ]] || die "no Kafka node '${1:-}': the nodes are 1, 2 and 3"
}

knode_dir() { echo "$stack_dir/kafka$1"; }

knode_ports() {
	local n
	for n in 1 2 3; do
		if [[ -z $(state_get "kafka${n}_port") ]]; then
			state_set "kafka${n}_port" "$(free_port)"
			state_set "kafka${n}_controller_port" "$(free_port)"
		fi
	done
}

knode_brokers() {
	echo "127.0.0.1:$(state_get kafka1_port),127.0.0.1:$(state_get kafka2_port),127.0.0.1:$(state_get kafka3_port)"
}

# Start node $1 in the background (its properties written again), unless it runs.
knode_launch() {
	local n="$1" dir port cport voters cluster
	dir="$(knode_dir "$n")"
	alive "$dir/pid" && return 0
	port="$(state_get "kafka${n}_port")"
	cport="$(state_get "kafka${n}_controller_port")"
	voters="1@127.0.0.1:$(state_get kafka1_controller_port),2@127.0.0.1:$(state_get kafka2_controller_port),3@127.0.0.1:$(state_get kafka3_controller_port)"
	cluster="$(state_get kafka_cluster_id)"
	mkdir -p "$dir/data"
	cat >"$dir/server.properties" <<-PROPS
		node.id=$n
		process.roles=broker,controller
		listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
		advertised.listeners=PLAINTEXT://127.0.0.1:$port
		controller.quorum.voters=$voters
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
		log.dirs=$dir/data
		num.partitions=4
		default.replication.factor=3
		min.insync.replicas=2
		unclean.leader.election.enable=false
		offsets.topic.replication.factor=3
		offsets.topic.num.partitions=4
		transaction.state.log.replication.factor=3
		transaction.state.log.min.isr=2
		group.initial.rebalance.delay.ms=0
		auto.create.topics.enable=false
	PROPS
	kafka_launch "$dir" "$cluster" "${kafka_node_jvm[@]}"
}

# Every node registered with the controllers (bounded: 90 s).
kafka_cluster_wait() {
	local brokers
	brokers="$(knode_brokers)"
	for _ in $(seq 1 180); do
		if kcat -b "$brokers" -L -m 2 2>/dev/null | grep -q '^ 3 brokers:'; then
			return 0
		fi
		sleep 0.5
	done
	die "the Kafka cluster did not show 3 brokers within 90 s"
}

# Every node knows each of the topics named, all their replicas in sync
# (bounded: 60 s). A node learns a new topic from the controllers' log a
# moment after the one that created it: a client that asked it first would
# be told the topic does not exist.
kafka_cluster_wait_topics() {
	local n port out topic ok
	for _ in $(seq 1 120); do
		ok=1
		for n in 1 2 3; do
			port="$(state_get "kafka${n}_port")"
			out="$(kcat -b "127.0.0.1:$port" -L -m 2 2>/dev/null)" || { ok=0; break; }
			grep -q "from broker $n:" <<<"$out" || { ok=0; break; }
			for topic in "$@"; do
				grep -q "topic \"$topic\" with" <<<"$out" || ok=0
			done
			# A partition whose in-sync replicas are fewer than three.
			grep -E 'isrs: [0-9]+(,[0-9]+)?$' <<<"$out" >/dev/null && ok=0
		done
		[[ $ok == 1 ]] && return 0
		sleep 0.5
	done
	die "not every Kafka node knows the topics $* within 60 s"
}

kafka_cluster_start() {
	local n
	kafka_libs_check
	knode_ports
	if [[ -z $(state_get kafka_cluster_id) ]]; then
		state_set kafka_cluster_id "$(kafka_random_uuid)"
	fi
	# All three first: none answers before two controllers have a leader.
	for n in 1 2 3; do knode_launch "$n"; done
	for n in 1 2 3; do
		kafka_wait_ready "$(knode_dir "$n")" "$(state_get "kafka${n}_port")" 120
	done
	kafka_cluster_wait
	TICKETD_BROKERS="$(knode_brokers)"
}

knode_start() {
	knode_check "$1"
	knode_launch "$1"
	kafka_wait_ready "$(knode_dir "$1")" "$(state_get "kafka${1}_port")" 120
}

knode_kill() {
	local dir pid
	knode_check "$1"
	dir="$(knode_dir "$1")"
	alive "$dir/pid" || return 0
	pid="$(cat "$dir/pid")"
	kill -KILL "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$dir/pid"
}

knode_stop() {
	knode_check "$1"
	kafka_stop_dir "$(knode_dir "$1")"
}

kafka_cluster_stop() {
	local n
	for n in 1 2 3; do kafka_stop_dir "$(knode_dir "$n")"; done
}

# PostgreSQL nodes 1 and 2.
pnode_check() {
	[[ ${1:-} =~ ^[12]$ ]] || die "no PostgreSQL node '${1:-}': the nodes are 1 and 2"
}

pnode_dir() { if [[ $1 == 1 ]]; then echo "$stack_dir/pg"; else echo "$stack_dir/pg$1"; fi; }
pnode_port() { if [[ $1 == 1 ]]; then state_get pg_port; else state_get "pg$1_port"; fi; }
pnode_other() { echo $((3 - $1)); }
pg_primary() { local p; p="$(state_get pg_primary)"; echo "${p:-1}"; }
pg_standby() { pnode_other "$(pg_primary)"; }

pnode_running() {
	local pid_file
	pid_file="$(pnode_dir "$1")/data/postmaster.pid"
	[[ -f $pid_file ]] && kill -0 "$(head -n 1 "$pid_file")" 2>/dev/null
}

# psql as postgres on node $1.
pnode_psql() {
	local n="$1"
	shift
	psql -h 127.0.0.1 -p "$(pnode_port "$n")" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

# Appended to the first server's postgresql.conf at initdb (the standby
# copies it): what streaming replication and pg_rewind need.
replicated_pg_conf() {
	cat >>"$1/postgresql.conf" <<-CONF
		wal_level = replica
		max_wal_senders = 10
		hot_standby = on
		# pg_rewind (pg-rejoin) needs every page change logged once.
		wal_log_hints = on
		# WAL kept for a standby that falls behind or an old primary that
		# rejoins, without a replication slot that would fill the disk.
		wal_keep_size = 256MB
	CONF
}

pnode_start() {
	local n="$1" dir port
	dir="$(pnode_dir "$n")"
	pnode_running "$n" && return 0
	[[ $n == 1 ]] && pg_init
	port="$(pnode_port "$n")"
	mkdir -p "$dir/sock"
	[[ $(id -u) -eq 0 ]] && chown postgres: "$dir/sock"
	as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
		-o "-c port=$port -c unix_socket_directories=$dir/sock" start >/dev/null ||
		{ tail -n 30 "$dir/log" >&2; die "PostgreSQL node $n did not start"; }
}

pnode_stop() {
	local dir
	dir="$(pnode_dir "$1")"
	[[ -f $dir/data/postmaster.pid ]] || return 0
	as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# Make node $1 a standby of node $2 (its data already a copy: a base backup
# or a rewind): no synchronous standby of its own (were it promoted, its
# commits would wait for a standby that is not there), streaming from $2
# under its own application_name, which $2's synchronous_standby_names
# names.
pnode_configure_standby() {
	local n="$1" from="$2" dir auto
	dir="$(pnode_dir "$n")"
	auto="$dir/data/postgresql.auto.conf"
	touch "$auto"
	sed -i -e '/^synchronous_standby_names/d' -e '/^primary_conninfo/d' "$auto"
	echo "primary_conninfo = 'host=127.0.0.1 port=$(pnode_port "$from") user=postgres application_name=pg$n'" >>"$auto"
	touch "$dir/data/standby.signal"
	[[ $(id -u) -eq 0 ]] && chown postgres: "$auto" "$dir/data/standby.signal"
	return 0
}

# Node $1 streams from the primary (bounded: 60 s).
pg_wait_streaming() {
	local n="$1" primary
	primary="$(pg_primary)"
	for _ in $(seq 1 120); do
		if [[ $(pnode_psql "$primary" -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg$n' AND state = 'streaming'" 2>/dev/null) == 1 ]]; then
			return 0
		fi
		sleep 0.5
	done
	die "PostgreSQL node $n does not stream from node $primary within 60 s"
}

# A new standby (node 2) from a base backup of the primary.
pg_make_standby() {
	local n="$1" dir port
	dir="$(pnode_dir "$n")"
	port="$(state_get "pg${n}_port")"
	if [[ -z $port ]]; then
		state_set "pg${n}_port" "$(free_port)"
	fi
	rm -rf "$dir/data"
	mkdir -p "$dir/data"
	chmod 700 "$dir/data"
	[[ $(id -u) -eq 0 ]] && chown -R postgres: "$dir"
	as_pg "$(pg_bin)/pg_basebackup" -h 127.0.0.1 -p "$(pnode_port "$(pg_primary)")" -U postgres \
		-D "$dir/data" -X stream -c fast >"$dir/basebackup.log" 2>&1 ||
		{ cat "$dir/basebackup.log" >&2; die "pg_basebackup for node $n failed"; }
	pnode_configure_standby "$n" "$(pg_primary)"
	pnode_start "$n"
	pg_wait_streaming "$n"
}

# synchronous_standby_names on the primary: the standby's name (on), or
# empty (off: commits return before the standby has them). Kept in the
# state, so that a promoted node takes the same mode when a standby joins it.
pg_sync() {
	local mode="${1:-}" primary name=""
	[[ $mode == on || $mode == off ]] || die "usage: stack.sh pg-sync on|off"
	replicated || die "pg-sync: not a replicated stack (TICKETD_STACK_REPLICATED=1)"
	primary="$(pg_primary)"
	[[ $mode == on ]] && name="pg$(pnode_other "$primary")"
	pnode_psql "$primary" -c "ALTER SYSTEM SET synchronous_standby_names = '$name'" >/dev/null &&
		pnode_psql "$primary" -c "SELECT pg_reload_conf()" >/dev/null ||
		die "cannot set synchronous_standby_names on node $primary"
	state_set pg_sync "$([[ $mode == on ]] && echo 1 || echo 0)"
	[[ $mode == on ]] || return 0
	pnode_running "$(pnode_other "$primary")" || return 0
	for _ in $(seq 1 120); do
		if [[ $(pnode_psql "$primary" -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'" 2>/dev/null) == sync ]]; then
			return 0
		fi
		sleep 0.5
	done
	die "node $(pnode_other "$primary") is not a synchronous standby within 60 s"
}

pg_sync_wanted() { [[ $(state_get pg_sync) != 0 ]]; }

# The primary (made once: initdb, role, database), then the standby (made
# once from a base backup), synchronous unless pg-sync off said otherwise.
pg_replicated_up() {
	local primary
	primary="$(pg_primary)"
	pnode_start "$primary"
	pg_setup "$(pnode_port "$primary")"
	if [[ -f $(pnode_dir "$(pg_standby)")/data/PG_VERSION ]]; then
		pnode_start "$(pg_standby)"
	else
		pg_make_standby "$(pg_standby)"
	fi
	if pg_sync_wanted; then pg_sync on; else pg_sync off; fi
	TICKETD_PG="$(pg_conninfo_all)"
}

# Both nodes in one libpq conninfo: libpq tries them in order and keeps the
# one that takes writes, so a client finds the primary without being told.
pg_conninfo_all() {
	echo "host=127.0.0.1,127.0.0.1 port=$(pnode_port 1),$(pnode_port 2) dbname=ticketd user=ticketd target_session_attrs=read-write"
}

pg_start_all() {
	pnode_start "$(pg_primary)"
	pnode_start "$(pg_standby)"
}

pg_stop_all() {
	pnode_stop "$(pg_primary)"
	pnode_stop "$(pg_standby)"
}

# kill -9 the primary's postmaster and every process of its server at once,
# as a machine that dies would (the postmaster alone would leave its
# backends to notice).
pg_kill_primary() {
	local primary dir pid pids
	replicated || die "pg-kill-primary: not a replicated stack (TICKETD_STACK_REPLICATED=1)"
	primary="$(pg_primary)"
	dir="$(pnode_dir "$primary")"
	pnode_running "$primary" || die "the primary (node $primary) does not run"
	pid="$(head -n 1 "$dir/data/postmaster.pid")"
	mapfile -t pids < <(ps -o pid= --ppid "$pid")
	kill -KILL "$pid" "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	say "killed PostgreSQL node $primary (pid $pid and ${#pids[@]} children)"
}

# Promote the standby. Refused while the primary runs: two servers that
# take writes would split the data.
pg_promote() {
	local primary standby
	replicated || die "pg-promote: not a replicated stack (TICKETD_STACK_REPLICATED=1)"
	primary="$(pg_primary)"
	standby="$(pg_standby)"
	pnode_running "$primary" &&
		die "the primary (node $primary) still runs: pg-kill-primary or pg-stop it first"
	as_pg "$(pg_bin)/pg_ctl" -D "$(pnode_dir "$standby")/data" -w -t 60 promote >/dev/null ||
		die "promoting node $standby failed"
	for _ in $(seq 1 120); do
		if [[ $(pnode_psql "$standby" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; then
			state_set pg_primary "$standby"
			say "node $standby is the primary"
			return 0
		fi
		sleep 0.5
	done
	die "node $standby still in recovery 60 s after promotion"
}

# The old primary back, as a standby of the new one: pg_rewind first takes
# back whatever it wrote that the new primary never had (commits that were
# never acknowledged), then it streams, and is made synchronous again
# unless pg-sync off was said.
pg_rejoin() {
	local primary old dir log
	replicated || die "pg-rejoin: not a replicated stack (TICKETD_STACK_REPLICATED=1)"
	primary="$(pg_primary)"
	old="$(pnode_other "$primary")"
	dir="$(pnode_dir "$old")"
	pnode_running "$old" && die "node $old runs already"
	log="$dir/rewind.log"
	# A just-promoted server writes its new timeline into its control
	# file at the next checkpoint; before that, pg_rewind sees one
	# timeline and finds nothing to rewind.
	pnode_psql "$primary" -c "CHECKPOINT" >/dev/null || die "CHECKPOINT on node $primary failed"
	as_pg "$(pg_bin)/pg_rewind" -D "$dir/data" \
		--source-server="host=127.0.0.1 port=$(pnode_port "$primary") user=postgres dbname=postgres" \
		>"$log" 2>&1 || { cat "$log" >&2; die "pg_rewind of node $old failed"; }
	pnode_configure_standby "$old" "$primary"
	pnode_start "$old"
	pg_wait_streaming "$old"
	if pg_sync_wanted; then pg_sync on; fi
	say "node $old streams from node $primary"
}

pg_standby_stop() {
	replicated || die "pg-standby-stop: not a replicated stack (TICKETD_STACK_REPLICATED=1)"
	pnode_stop "$(pg_standby)"
}

pg_standby_start() {
	replicated || die "pg-standby-start: not a replicated stack (TICKETD_STACK_REPLICATED=1)"
	pnode_start "$(pg_standby)"
	pg_wait_streaming "$(pg_standby)"
}

replicated_env() {
	cat <<-ENV
		export STACK_REPLICATED='1'
		export TICKETD_BROKERS='$TICKETD_BROKERS'
		export TICKETD_PG='$(pg_conninfo_all)'
		export STACK_PG_NODE1='host=127.0.0.1 port=$(pnode_port 1) dbname=ticketd user=ticketd'
		export STACK_PG_NODE2='host=127.0.0.1 port=$(pnode_port 2) dbname=ticketd user=ticketd'
		export STACK_PG_READS='host=127.0.0.1,127.0.0.1 port=$(pnode_port 1),$(pnode_port 2) dbname=ticketd user=ticketd target_session_attrs=prefer-standby'
	ENV
}

replicated_status() {
	local n role
	for n in 1 2; do
		role=standby
		[[ $n == "$(pg_primary)" ]] && role=primary
		if pnode_running "$n"; then
			say "PostgreSQL node $n ($role) up on 127.0.0.1:$(pnode_port "$n")"
		else
			say "PostgreSQL node $n ($role) down"
		fi
	done
	say "PostgreSQL replication: $(pg_sync_wanted && echo synchronous || echo asynchronous)"
	for n in 1 2 3; do
		if alive "$(knode_dir "$n")/pid"; then
			say "Kafka node $n up on 127.0.0.1:$(state_get "kafka${n}_port") (pid $(cat "$(knode_dir "$n")/pid"))"
		else
			say "Kafka node $n down"
		fi
	done
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
		elif replicated; then
			replicated_env
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
	local want_rep="${TICKETD_STACK_REPLICATED:-0}"
	[[ $want == 0 || $want == 1 ]] || die "TICKETD_STACK_SECURE must be 0 or 1, not '$want'"
	[[ $want_rep == 0 || $want_rep == 1 ]] ||
		die "TICKETD_STACK_REPLICATED must be 0 or 1, not '$want_rep'"
	if [[ -f $stack_dir/ports ]]; then
		local have have_rep
		have="$(state_get secure)"
		have_rep="$(state_get replicated)"
		[[ $want == "${have:-0}" ]] ||
			die "this stack was made with TICKETD_STACK_SECURE=${have:-0}: run scripts/stack.sh down first to change it"
		[[ $want_rep == "${have_rep:-0}" ]] ||
			die "this stack was made with TICKETD_STACK_REPLICATED=${have_rep:-0}: run scripts/stack.sh down first to change it"
	else
		[[ $want == 1 && $want_rep == 1 ]] &&
			die "TICKETD_STACK_SECURE=1 and TICKETD_STACK_REPLICATED=1 are not made together: choose one"
		if [[ $want == 1 || $want_rep == 1 ]]; then
			[[ -z ${TICKETD_PG:-}${TICKETD_BROKERS:-} ]] ||
				die "TICKETD_STACK_SECURE=1 and TICKETD_STACK_REPLICATED=1 make the stack's own services: unset TICKETD_PG and TICKETD_BROKERS"
		fi
		[[ $want == 1 ]] && state_set secure 1
		[[ $want_rep == 1 ]] && state_set replicated 1
	fi
	if secure; then tls_make; fi
	if replicated; then
		replicated_up
		return
	fi
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

replicated_up() {
	pg_replicated_up
	apply_schema
	kafka_cluster_start
	create_topics
	write_env
	say "PostgreSQL node $(pg_primary) primary, node $(pg_standby) $(pg_sync_wanted && echo synchronous || echo asynchronous) standby: $TICKETD_PG"
	say "Kafka 3 nodes $TICKETD_BROKERS, replication factor 3, min.insync.replicas=2, topics $request_topic, $reply_topic, $dlq_topic, $availability_topic"
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
	if replicated; then kafka_cluster_stop; else kafka_stop; fi
	pg_stop
	if [[ ${KEEP_STATE:-} != 1 ]]; then
		rm -rf "$stack_dir/pg" "$stack_dir/kafka" "$stack_dir/ports" "$env_file" \
			"$tls_dir" "$secrets_dir" "$stack_dir/pg2" "$stack_dir/kafka1" \
			"$stack_dir/kafka2" "$stack_dir/kafka3"
	fi
	say "stopped"
}

status() {
	local port
	if replicated; then
		replicated_status
	else
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
	fi
	for pid_file in "$stack_dir"/*.pid; do
		[[ -f $pid_file ]] || continue
		alive "$pid_file" && say "$(basename "$pid_file" .pid) up (pid $(cat "$pid_file"))"
	done
	return 0
}

# kafka-stop / kafka-start: the one broker; on a replicated stack node N,
# or every node when N is not given.
kafka_command() {
	local what="$1" n="${2:-}"
	if ! replicated; then
		[[ -z $n ]] || die "kafka-$what $n: a single-node stack has no node numbers"
		[[ $what == kill ]] && die "kafka-kill: only on a replicated stack (TICKETD_STACK_REPLICATED=1)"
		if [[ $what == stop ]]; then kafka_stop; else kafka_start; fi
		return
	fi
	if [[ -z $n ]]; then
		[[ $what == start ]] && { kafka_cluster_start; return; }
		[[ $what == stop ]] && { kafka_cluster_stop; return; }
		die "usage: stack.sh kafka-kill N (N = 1, 2 or 3)"
	fi
	case "$what" in
	stop) knode_stop "$n" ;;
	start) knode_start "$n" ;;
	kill) knode_kill "$n" ;;
	esac
}

usage() {
	cat >&2 <<-USAGE
		usage: stack.sh COMMAND
		  up | down | status
		  pg-stop | pg-start            every PostgreSQL server, same ports and data
		  kafka-stop [N] | kafka-start [N]
		                                the broker (replicated: node N, or all)
		replicated stack only (TICKETD_STACK_REPLICATED=1):
		  kafka-kill N                  kill -9 Kafka node N (1, 2 or 3)
		  pg-kill-primary               kill -9 the PostgreSQL primary and its processes
		  pg-promote                    promote the standby (the primary must be down)
		  pg-rejoin | pg-start-old-primary
		                                rewind the old primary, start it as the standby
		  pg-sync on|off                the standby synchronous (default) or not
		  pg-standby-stop | pg-standby-start
	USAGE
	exit 1
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
pg-stop) pg_stop ;;
pg-start) pg_start ;;
kafka-stop) kafka_command stop "${2:-}" ;;
kafka-start) kafka_command start "${2:-}" ;;
kafka-kill) kafka_command kill "${2:-}" ;;
pg-kill-primary) pg_kill_primary ;;
pg-promote) pg_promote ;;
pg-rejoin | pg-start-old-primary) pg_rejoin ;;
pg-sync) pg_sync "${2:-}" ;;
pg-standby-stop) pg_standby_stop ;;
pg-standby-start) pg_standby_start ;;
*) usage ;;
esac
