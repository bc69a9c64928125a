# SPDX-License-Identifier: Apache-2.0
# accord - build, test, run, bench.
#
#   make            build/accord (warnings are errors)
#   make asan       build/asan/accord with AddressSanitizer + UBSan
#   make test       every test: unit (rubric/) and HTTP against a throwaway PostgreSQL
#   make run        serve on 127.0.0.1:8080 with an embedded cluster under var/
#   make bench      benchmarks (minutes; not part of make test)
#   make docker-test  the image and the compose file, with a dockerd of its own (minutes)
#   make fuzz       libFuzzer targets for untrusted input (FUZZ_SECONDS each)
#   make format     clang-format every C file
#
# `make deps-run` (run first by run) installs the Debian packages a fresh
# machine lacks to build and serve; `make deps-test` (run first by test and
# bench) adds what the tests need. Both wait up to APT_LOCK_WAIT seconds for
# another apt/dpkg to finish, and name the missing packages when they cannot
# install them.

BUILD      := build
Q          := @   # make Q= shows full compiler command lines
PKGS       := libevent libevent_pthreads jansson libpq uuid libcrypto libcurl libsodium libxml-2.0
# Debian packages, one list per purpose (add yours to the list it belongs to).
# RUN_PKGS: build and serve. TEST_PKGS: what `make test` adds.
RUN_PKGS   := gcc libc6-dev make pkg-config libevent-dev libjansson-dev libpq-dev uuid-dev libssl-dev \
              libcurl4-openssl-dev libsodium-dev libxml2-dev postgresql postgresql-contrib
TEST_PKGS  := python3 python3-numpy python3-sklearn python3-statsmodels python3-pandas \
              r-cran-psych prometheus curl chromium \
              python3-aiosmtpd openssl pgbouncer
# The real S3 of the object-storage tests (tests/s3/rgw.py: Ceph mon + OSD +
# radosgw), without recommends (ceph-mgr and its Python stack are not needed).
S3_TEST_PKGS := ceph-mon ceph-osd radosgw
# BENCH_PKGS: what `make bench` adds (nginx serves the same file as accord
# in the scaling part's download comparison, issue 15).
BENCH_PKGS := nginx-light
# Commands the tests need that another source may provide (nodesource's
# nodejs bundles npm): COMMAND:DEBIAN_PACKAGE, installed only when missing.
TEST_CMDS  := node:nodejs npm:npm
APT_LOCK_WAIT ?= 900
APT_GET    ?= apt-get
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wformat=2 -Wvla
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -g $(WARN) -Iserver -Irubric -I$(BUILD)/gen \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS     ?= -O2
LDLIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
SAN        := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

RUBRIC_SRC := $(sort $(wildcard rubric/*.c))
SERVER_SRC := $(sort $(wildcard server/*.c))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC  := $(sort $(wildcard tests/bench/*.c))
MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))

RUBRIC_OBJ := $(RUBRIC_SRC:%.c=$(BUILD)/obj/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/migrations.o \
              $(BUILD)/obj/gen/common_passwords.o $(BUILD)/obj/gen/openapi_json.o \
              $(BUILD)/obj/gen/web_assets.o
ASAN_RUBRIC_OBJ := $(RUBRIC_SRC:%.c=$(BUILD)/asan/obj/%.o)
ASAN_SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/asan/obj/%.o) $(BUILD)/asan/obj/gen/migrations.o \
                   $(BUILD)/asan/obj/gen/common_passwords.o $(BUILD)/asan/obj/gen/openapi_json.o \
                   $(BUILD)/asan/obj/gen/web_assets.o
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/tests/%)
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all asan test unit-test sql-test irr-test http-test oidc-deps badge-deps lint-test lint-deps \
        browser-deps browser-test screenshots \
        run bench fuzz deps deps-run deps-test format clean docker-test
.DELETE_ON_ERROR:

all: $(BUILD)/accord

asan: $(BUILD)/asan/accord $(UNIT_BIN)

$(BUILD)/accord: $(SERVER_OBJ) $(RUBRIC_OBJ)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/accord: $(ASAN_SERVER_OBJ) $(ASAN_RUBRIC_OBJ)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/migrations.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/asan/obj/%.o: %.c | $(BUILD)/gen/migrations.c
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(SAN) -MMD -MP -c -o $@ $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/asan/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(SAN) -c -o $@ $<

# The migrations are compiled into the binary, so a deployed accord needs no
# source tree to set up its database.
$(BUILD)/gen/migrations.c: $(MIGRATIONS) db/embed.awk
	@mkdir -p $(dir $@)
	awk -f db/embed.awk $(MIGRATIONS) > $@

# The common-passwords list (server/password.h), lower-cased and sorted for bsearch.
$(BUILD)/gen/common_passwords.c: server/data/common-passwords.txt
	@mkdir -p $(dir $@)
	{ echo '#include <stddef.h>'; echo 'const char *const common_passwords[] = {'; \
	  grep -v -e '^#' -e '^$$' $< | tr 'A-Z' 'a-z' | LC_ALL=C sort -u | \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/",/'; \
	  echo '};'; echo 'const size_t n_common_passwords = sizeof common_passwords / sizeof common_passwords[0];'; \
	} > $@

# So is the OpenAPI document it serves at /openapi.json.
$(BUILD)/gen/openapi_json.c: server/openapi.json server/embed.awk
	@mkdir -p $(dir $@)
	awk -v name=openapi_json -f server/embed.awk server/openapi.json > $@

# The web app (web/, issue 11) is compiled in too: the binary alone serves it
# (server/static.h). Plain files, no build step: what is in web/ is what runs.
WEB_FILES  := $(sort $(shell find web -type f -name '*.html' -o -type f -name '*.js' \
                -o -type f -name '*.css' -o -type f -name '*.svg'))
$(BUILD)/gen/web_assets.c: $(WEB_FILES) web/embed.sh
	@mkdir -p $(dir $@)
	web/embed.sh $(WEB_FILES) > $@

# Unit tests link rubric/ only: it has no I/O and builds on its own.
$(BUILD)/asan/tests/%: tests/unit/%.c $(ASAN_RUBRIC_OBJ) tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(ASAN_RUBRIC_OBJ) -lpthread -lm

# test_password checks server/password.c with the compiled-in list and libsodium.
$(BUILD)/asan/tests/test_password: tests/unit/test_password.c $(BUILD)/asan/obj/server/password.o \
                                   $(BUILD)/asan/obj/gen/common_passwords.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/password.o \
	    $(BUILD)/asan/obj/gen/common_passwords.o $(LDLIBS)

# test_jwt checks server/jwt.c, which needs only OpenSSL and jansson.
$(BUILD)/asan/tests/test_jwt: tests/unit/test_jwt.c $(BUILD)/asan/obj/server/jwt.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/jwt.o $(LDLIBS)

# test_jws checks server/jws.c (badge signing), which needs jwt.o's base64url.
$(BUILD)/asan/tests/test_jws: tests/unit/test_jws.c $(BUILD)/asan/obj/server/jws.o \
                              $(BUILD)/asan/obj/server/jwt.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/jws.o \
	    $(BUILD)/asan/obj/server/jwt.o $(LDLIBS)

# test_sse checks server/sse.c (live updates' wire format), which needs only libevent.
$(BUILD)/asan/tests/test_sse: tests/unit/test_sse.c $(BUILD)/asan/obj/server/sse.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/sse.o $(LDLIBS)

# test_read_grant checks server/read_grant.c (evidence read grants): libevent, pthreads.
$(BUILD)/asan/tests/test_read_grant: tests/unit/test_read_grant.c \
                                     $(BUILD)/asan/obj/server/read_grant.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/read_grant.o \
	    $(LDLIBS)

# test_sha256_midstate checks server/sha256_midstate.c (tus uploads' resumable hash): OpenSSL.
$(BUILD)/asan/tests/test_sha256_midstate: tests/unit/test_sha256_midstate.c \
                                          $(BUILD)/asan/obj/server/sha256_midstate.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/sha256_midstate.o \
	    $(LDLIBS)

# test_s3_sign checks server/s3_sign.c (SigV4 presigning: OpenSSL, libcurl's URL parser).
$(BUILD)/asan/tests/test_s3_sign: tests/unit/test_s3_sign.c $(BUILD)/asan/obj/server/s3_sign.o \
                                  tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/s3_sign.o $(LDLIBS)

# test_webhook checks server/webhook.c (signatures, address checks) and the
# outbox's back-off: OpenSSL and libcurl, no database.
$(BUILD)/asan/tests/test_webhook: tests/unit/test_webhook.c $(BUILD)/asan/obj/server/webhook.o \
                                  $(BUILD)/asan/obj/server/outbox_backoff.o tests/unit/check.h
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -Itests/unit $(SAN) -o $@ $< $(BUILD)/asan/obj/server/webhook.o \
	    $(BUILD)/asan/obj/server/outbox_backoff.o $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(RUBRIC_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD/CC   $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(RUBRIC_OBJ) $(LDLIBS)

# $(call apt_install,PACKAGES,COMMANDS,APT_OPTIONS): installs what dpkg says
# is missing. A held apt lock is waited for (DPkg::Lock::Timeout), then
# reported plainly.
define apt_install
	@missing=""; for p in $(1); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for c in $(2); do \
	    command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ] || ! command -v $(APT_GET) >/dev/null; then \
	    echo "missing Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing"; exit 1; \
	fi; \
	echo "installing:$$missing (waiting up to $(APT_LOCK_WAIT) s if apt is busy)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt="$(APT_GET) -o DPkg::Lock::Timeout=$(APT_LOCK_WAIT) -y -qq"; \
	log=$$(mktemp); \
	if ! $$apt install $(3) $$missing >$$log 2>&1; then \
	    $$apt update >>$$log 2>&1; \
	    $$apt install $(3) $$missing >>$$log 2>&1 || { \
	        if grep -q "Could not get lock" $$log; then \
	            echo "apt is busy: another install held its lock for more than $(APT_LOCK_WAIT) s"; \
	            grep -m1 "Could not get lock" $$log; \
	            echo "try again when it has finished (or raise APT_LOCK_WAIT)"; \
	        else tail -20 $$log; echo "could not install:$$missing"; fi; \
	        rm -f $$log; exit 1; }; \
	fi; rm -f $$log
endef

# Serving needs no recommended extras: in a Debian 12 chroot they were 43
# packages (libgd, fonts, X11 libraries, sysstat) that neither the build
# nor the server uses.
deps-run:
	$(call apt_install,$(RUN_PKGS),,--no-install-recommends)

deps-test:
	$(call apt_install,$(RUN_PKGS) $(TEST_PKGS),$(TEST_CMDS))
	$(call apt_install,$(S3_TEST_PKGS),,--no-install-recommends)

deps: deps-test

unit-test: $(UNIT_BIN)
	@rc=0; for t in $(UNIT_BIN); do $$t || rc=1; done; exit $$rc

sql-test:
	tests/sql/run.sh
	tests/sql/calibration.sh
	tests/sql/oidc.sh
	tests/sql/hardening.sh

# Cross-checks `accord irr` against independent implementations from Debian
# (scikit-learn, statsmodels, R psych); Debian's python3, which sees them.
irr-test: $(BUILD)/accord
	/usr/bin/python3 tests/irr/crosscheck.py $(BUILD)/accord

# The independent badge verifier (tests/badge: npm jose + ajv, pinned by its
# lockfile); the HTTP suite's badge tests run it against the server.
BADGE_NODE := tests/badge/node_modules/.package-lock.json
badge-deps: $(BADGE_NODE)

$(BADGE_NODE): tests/badge/package.json tests/badge/package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } || \
	    { echo "the badge tests need Node.js and npm: apt-get install nodejs npm"; exit 1; }
	cd tests/badge && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The HTTP suite runs against the sanitizer build: a leak or memory error in
# the server fails the test during which it happened.
http-test: $(BUILD)/asan/accord oidc-deps badge-deps
	python3 tests/http/run.py --bin $(BUILD)/asan/accord

# The OpenID Provider the sign-in tests run (npm oidc-provider, jose; pinned
# by tests/oidc/package-lock.json). Node from Debian when there is none.
oidc-deps: tests/oidc/node_modules/.installed

tests/oidc/node_modules/.installed: tests/oidc/package.json tests/oidc/package-lock.json
	@command -v npm >/dev/null || { echo "the OIDC tests need Node.js and npm (make deps-test)"; exit 1; }
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The contract linters (Redocly CLI, Spectral): npm packages pinned by
# tests/lint/package-lock.json, installed without their install scripts
# (analytics banners); reinstalled when the lockfile changes.
tests/lint/node_modules/.package-lock.json: tests/lint/package-lock.json tests/lint/package.json
	cd tests/lint && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

lint-deps: tests/lint/node_modules/.package-lock.json

lint-test: lint-deps
	tests/lint/run.sh

# The web app's browser stories (issue 11): Debian's chromium (TEST_PKGS)
# driven headless by npm playwright-core, pages checked by @axe-core/playwright
# (pinned by tests/browser/package-lock.json; playwright-core downloads no
# browser of its own). Against the sanitizer build, like the HTTP suite.
BROWSER_NODE := tests/browser/node_modules/.package-lock.json
browser-deps: $(BROWSER_NODE)

$(BROWSER_NODE): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "the browser tests need Node.js and npm (make deps-test)"; exit 1; }
	cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

browser-test: $(BUILD)/asan/accord browser-deps oidc-deps
	python3 tests/browser/run.py --bin $(BUILD)/asan/accord

# The README's screenshots of each role's main pages (web/screenshots/),
# taken by the same stories.
screenshots: deps-test
	$(MAKE) all browser-deps oidc-deps
	python3 tests/browser/run.py --bin $(BUILD)/accord --screenshots web/screenshots

test: deps-test
	$(MAKE) all asan
	$(MAKE) unit-test
	$(MAKE) sql-test
	$(MAKE) irr-test
	$(MAKE) lint-test
	$(MAKE) http-test
	$(MAKE) browser-test

run: deps-run
	$(MAKE) all
	db/run-embedded.sh $(BUILD)/accord

bench: deps-test
	$(call apt_install,$(BENCH_PKGS),,--no-install-recommends)
	$(MAKE) all $(BENCH_BIN) browser-deps
	tests/bench/run.sh
	python3 tests/browser/run.py --bin $(BUILD)/accord --bench

# docker/: builds the image and runs docker/docker-compose.yml for real with a
# dockerd of its own (no bridge, no iptables: host network, loopback only),
# stopped when done; the Debian base image comes from debootstrap, cached in
# /var/cache/accord-docker (docker/test.sh). Not part of `make test`: about
# ten minutes cold, two warm.
DOCKER_PKGS := docker.io docker-compose debootstrap curl python3
docker-test:
	$(call apt_install,$(DOCKER_PKGS),,--no-install-recommends)
	docker/test.sh

# libFuzzer targets (clang), each run for FUZZ_SECONDS from its seed corpus.
FUZZ_SECONDS ?= 60
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

$(BUILD)/fuzz/%: tests/fuzz/%.c $(RUBRIC_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Irubric $(FUZZ_FLAGS) -o $@ $^ -lpthread -lm

fuzz:
	@command -v clang >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; } || \
	    { echo "make fuzz needs clang (apt-get install clang libclang-rt-14-dev)"; exit 1; }
	$(MAKE) $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	    name=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$name; \
	    echo "== $$name for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	        $(BUILD)/fuzz/corpus-$$name tests/fuzz/corpus || exit 1; done

format:
	clang-format -i $(wildcard server/*.[ch] rubric/*.[ch] tests/unit/*.[ch] tests/bench/*.[ch] tests/fuzz/*.c)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# `make print-RUN_PKGS`: a variable's value (the package lists, for tests and people).
print-%:
	@echo $($*)
