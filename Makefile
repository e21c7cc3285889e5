# ticketd: build, test, run, install. `make help` lists the targets.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system

SHELL := /bin/bash
CC ?= cc
SANITIZE ?=
WERROR ?= $(if $(CI),-Werror,)
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	-Wshadow -Wpointer-arith $(WERROR)
PKGS = rdkafka jansson libconfig libmicrohttpd
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARNINGS) $(CFLAGS) -MD -MP \
	-I/usr/include/postgresql -Isrc \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	$(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer,)
LDLIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lrdkafka -ljansson -lconfig -lmicrohttpd) \
	-lpq -lpthread
ALL_LDFLAGS = $(LDFLAGS) $(if $(SANITIZE),-fsanitize=$(SANITIZE),)

BUILD = build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)),)
comma := ,

DAEMON_MODULES = buf clock config cpus log request outcome offsets job kafka \
	availability cache \
	metrics pg pgarray sql ledger txn views publisher worker consumer \
	reaper route http replica secret pgcheck kafkacheck
DAEMON_OBJS = $(addprefix $(BUILD)/src/,$(addsuffix .o,$(DAEMON_MODULES)))
FLOOD_OBJS = $(BUILD)/producer/ticket-flood.o $(BUILD)/src/log.o \
	$(BUILD)/src/config.o $(BUILD)/src/kafka.o $(BUILD)/src/request.o \
	$(BUILD)/src/outcome.o $(BUILD)/src/buf.o $(BUILD)/src/secret.o \
	$(BUILD)/src/pgcheck.o $(BUILD)/src/kafkacheck.o
obj = $(addprefix $(BUILD)/src/,$(addsuffix .o,$(1)))

# Each unit test links only the modules it tests and what they need (the
# link line is the proof that a module is pure: the ledger's has neither
# libpq nor librdkafka). LIBS_<test> names the libraries beyond cmocka.
UNIT_TESTS = test_request test_offsets test_config test_http_parse \
	test_ledger test_ledger_model test_worker test_publisher test_secret \
	test_pgcheck test_job
UNIT_BINS = $(addprefix $(BUILD)/tests/unit/,$(UNIT_TESTS))
# Module tests that need a real PostgreSQL: run by the system tests.
DB_TEST_BINS = $(BUILD)/tests/db/test_pg
CODEC = request outcome buf
OBJS_test_request = $(call obj,$(CODEC))
LIBS_test_request = -ljansson
OBJS_test_offsets = $(call obj,offsets)
OBJS_test_config = $(call obj,config cpus log secret)
LIBS_test_config = -lconfig
OBJS_test_http_parse = $(call obj,route)
OBJS_test_ledger = $(call obj,ledger $(CODEC)) $(BUILD)/tests/unit/ledger_db.o
LIBS_test_ledger = -ljansson
OBJS_test_ledger_model = $(call obj,ledger $(CODEC)) $(BUILD)/tests/unit/ledger_db.o
LIBS_test_ledger_model = -ljansson
OBJS_test_job = $(call obj,job clock log $(CODEC))
LIBS_test_job = -ljansson -lrdkafka
# The worker against doubles of its database and Kafka sides (defined in
# the test); --wrap lets the test fail a reply's rendering on purpose.
OBJS_test_worker = $(call obj,worker clock log metrics $(CODEC))
LIBS_test_worker = -ljansson -lpthread -Wl,--wrap=outcome_render
# The publisher against librdkafka's in-process mock cluster.
OBJS_test_publisher = $(call obj,publisher kafka config log metrics clock job \
	secret $(CODEC))
LIBS_test_publisher = -lrdkafka -ljansson -lconfig -lpthread
# Secrets' masking and files: pure. The PostgreSQL check: libpq alone.
OBJS_test_secret = $(call obj,secret)
OBJS_test_pgcheck = $(call obj,pgcheck)
LIBS_test_pgcheck = -lpq

.PHONY: tsan all help deps test test-unit test-system test-replicated run up down bench fuzz \
	install uninstall clean format format-check check-config valgrind \
	ticketd ticket-flood

all: ticketd ticket-flood ## build ticketd and ticket-flood

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install the Debian packages and fetch the pinned Kafka jars
	scripts/deps.sh

# Always copied (a SANITIZE build and a plain one share these names), by
# rename, so that a running ./ticketd is not in the way.
ticketd: $(BUILD)/ticketd
	cp $< $@.tmp && mv -f $@.tmp $@

ticket-flood: $(BUILD)/ticket-flood
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/ticketd: $(DAEMON_OBJS) $(BUILD)/src/main.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/ticket-flood: $(FLOOD_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

.SECONDEXPANSION:
$(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o $$(OBJS_test_%)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_test_$*) -lcmocka

$(BUILD)/tests/db/test_pg: $(BUILD)/tests/db/test_pg.o $(call obj,pg)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lpq -lcmocka

test-unit: $(UNIT_BINS) ## run the cmocka unit tests
	tests/run.sh --unit-only $(UNIT_BINS)

test: ## install what is missing, build, run unit and system tests
	scripts/deps.sh
	$(MAKE) all $(UNIT_BINS) $(DB_TEST_BINS)
	TICKETD_BUILD=$(BUILD) tests/run.sh $(UNIT_BINS)

test-system: all $(DB_TEST_BINS) ## run the system tests only (real Kafka + PostgreSQL)
	TICKETD_BUILD=$(BUILD) tests/run.sh --system-only

test-replicated: ## the replicated deployment's failover scenarios (3 Kafka nodes, a PostgreSQL standby)
	scripts/deps.sh
	$(MAKE) all
	TICKETD_BUILD=$(BUILD) tests/run.sh --replicated

check-config: $(BUILD)/tests/unit/test_config ## every setting is documented in etc/ticketd.conf
	$(BUILD)/tests/unit/test_config

up: all ## start PostgreSQL, Kafka and ticketd in the background (.run/; TICKETD_STACK_SECURE=1: over SASL_SSL and TLS; TICKETD_STACK_REPLICATED=1: 3 Kafka nodes, a synchronous standby)
	scripts/stack.sh up
	scripts/run-ticketd.sh start

down: ## stop everything `make up` started
	scripts/stack.sh down

run: ## the local stack, ticketd and the seed's demo flood
	scripts/deps.sh
	$(MAKE) all
	scripts/stack.sh up
	scripts/run-ticketd.sh start
	. .run/stack.env && ./ticket-flood --fresh-seed

bench: all ## the side-by-side throughput benchmark
	scripts/bench.sh

VALGRIND = valgrind --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--suppressions=tests/valgrind.supp

valgrind: all $(UNIT_BINS) ## the unit tests and a short flood under memcheck
	for t in $(UNIT_BINS); do $(VALGRIND) -q $$t || exit 1; done
	FLOOD_COUNT=500 tests/flood-check.sh valgrind $(VALGRIND)

build-thread/tsan_thrd_shim.so: tests/tsan_thrd_shim.c
	@mkdir -p build-thread
	$(CC) -shared -fPIC -O1 -fsanitize=thread -o $@ $<

tsan: build-thread/tsan_thrd_shim.so ## a ThreadSanitizer ticketd through one flood
	$(MAKE) SANITIZE=thread ticketd
	TSAN_OPTIONS="halt_on_error=0 exitcode=66 suppressions=$(CURDIR)/tests/tsan.supp" \
		tests/flood-check.sh tsan env LD_PRELOAD=$(CURDIR)/build-thread/tsan_thrd_shim.so; \
		rc=$$?; $(MAKE) ticketd; exit $$rc

# libFuzzer: each target for FUZZ_SECONDS on a scratch copy of its seed
# corpus (new entries stay in build-fuzz/, never in the repository), after
# replaying the regression inputs of crashes fixed before. The daemon's
# modules they test are built again with clang, coverage and sanitizers, in
# build-fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARNINGS) -g -O1 -MD -MP \
	-I/usr/include/postgresql -Isrc \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SANITIZE)
FUZZ_TARGETS = request http

build-fuzz/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build-fuzz/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build-fuzz/fuzz_request: build-fuzz/tests/fuzz/fuzz_request.o \
		build-fuzz/src/request.o build-fuzz/src/outcome.o \
		build-fuzz/src/buf.o build-fuzz/src/log.o
	$(FUZZ_CC) $(FUZZ_SANITIZE) -fsanitize=fuzzer -o $@ $^ -ljansson

build-fuzz/fuzz_http: build-fuzz/tests/fuzz/fuzz_http.o build-fuzz/src/route.o \
		build-fuzz/src/request.o
	$(FUZZ_CC) $(FUZZ_SANITIZE) -fsanitize=fuzzer -o $@ $^ -ljansson

fuzz: $(addprefix build-fuzz/fuzz_,$(FUZZ_TARGETS)) ## run each fuzzer for FUZZ_SECONDS (default 60)
	@set -e; for t in $(FUZZ_TARGETS); do \
		bin=build-fuzz/fuzz_$$t; log=build-fuzz/fuzz-$$t.log; \
		regs=(tests/fuzz/regressions/$$t/*); \
		if [[ -e $${regs[0]} ]]; then \
			echo "fuzz_$$t: replaying $${#regs[@]} regression input(s)"; \
			$$bin -max_len=4096 "$${regs[@]}" >$$log 2>&1 || \
				{ tail -n 60 $$log; echo "fuzz_$$t: a regression input fails again ($$log)"; exit 1; }; \
		fi; \
		rm -rf build-fuzz/corpus-$$t; \
		cp -r tests/fuzz/corpus/$$t build-fuzz/corpus-$$t; \
		dict=; [[ -f tests/fuzz/$$t.dict ]] && dict=-dict=tests/fuzz/$$t.dict; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s on build-fuzz/corpus-$$t"; \
		if ! $$bin -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
				$$dict -artifact_prefix=build-fuzz/crash-$$t- \
				-print_final_stats=1 build-fuzz/corpus-$$t >$$log 2>&1; then \
			tail -n 60 $$log; \
			echo "fuzz_$$t: FAILED, input kept as build-fuzz/crash-$$t-* ($$log)"; \
			exit 1; \
		fi; \
		grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' $$log; \
	done

C_SOURCES = src/*.[ch] producer/*.c tests/unit/*.[ch] tests/db/*.c tests/fuzz/*.c \
	tests/tsan_thrd_shim.c
HAVE_CLANG_FORMAT = command -v clang-format >/dev/null || \
	{ echo "clang-format is missing: apt-get install clang-format" >&2; exit 1; }

format: ## reformat the C sources (.clang-format)
	@$(HAVE_CLANG_FORMAT)
	clang-format -i $(C_SOURCES)

format-check: ## fail when a C source is not formatted
	@$(HAVE_CLANG_FORMAT)
	clang-format --dry-run --Werror $(C_SOURCES)

install: all ## install binaries, config and systemd unit (PREFIX, DESTDIR)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/ticketd \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/ticketd
	install -m 755 ticketd ticket-flood $(DESTDIR)$(BINDIR)/
	install -m 644 etc/ticketd.conf $(DESTDIR)$(SYSCONFDIR)/ticketd/ticketd.conf
	install -m 644 db/schema.sql db/seed.sql db/check.sql \
		db/migrate-2026-11-26.sql db/migrate-2026-11-26b.sql \
		db/migrate-2026-12-01a.sql db/migrate-2026-12-01b.sql \
		db/migrate-2026-12-02.sql \
		$(DESTDIR)$(PREFIX)/share/ticketd/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		etc/ticketd.service.in > $(DESTDIR)$(UNITDIR)/ticketd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/ticketd.service

uninstall: ## remove what install put there
	rm -f $(DESTDIR)$(BINDIR)/ticketd $(DESTDIR)$(BINDIR)/ticket-flood \
		$(DESTDIR)$(UNITDIR)/ticketd.service
	rm -rf $(DESTDIR)$(PREFIX)/share/ticketd

clean: ## remove build output
	rm -rf build build-* ticketd ticket-flood

.SECONDARY:

-include $(shell find build* -name '*.d' 2>/dev/null)
