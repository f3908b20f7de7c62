# lakebase build.
#
#   make deps    install every Debian and npm package the project uses (idempotent)
#   make         build binaries into build/bin and libraries into build/lib
#   make test    deps, script tests, build, unit tests (plain, then under ASan+UBSan),
#                a short fuzzing run, then the e2e suite
#   make script-tests  tests of scripts/ (the dependency installer), no root or network
#   make format  clang-format every C file; make format-check: fail on any that is not
#   make fuzz    libFuzzer targets (LB_FUZZ_SECONDS each)
#   make asan    unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan    the pageserver's e2e tests under ThreadSanitizer, against s3rver
#   make run     lakebase as an operator on devcluster: images, helm install,
#                examples/cluster.yaml, wait for Ready, psql and KUBECONFIG lines
#                (scripts/run-devcluster.sh; also make run-devcluster)
#   make run-local       the process-level launcher (scripts/run.py), a developer tool
#   make chart-crds  copy crds/ (the API) into the Helm chart's crds/
#   make images  build the container images in images/ with podman (cached: see images/build.sh)
#   make clean   remove build/
#
# Every component folder is a flat set of .c/.h files plus tests/test_*.c; new
# files are picked up without editing this file.

# The default goal is 'all', whatever rule the component templates define first.
.DEFAULT_GOAL := all

BUILD    ?= build
CC       ?= gcc
PKGS     := libcurl jansson yaml-0.1 libmicrohttpd openssl libprotobuf-c libzstd liblz4 zlib libpq sqlite3
PG_INC   := $(shell pg_config --includedir-server 2>/dev/null || echo /usr/include/postgresql/15/server)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS   ?= -O2 -g
# Each file sees common/, its own component's folder, and the root (so that a
# component includes another's header as "safekeeper/election.h").
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) -Icommon \
             -I$(firstword $(subst /, ,$<)) -I. -Icommon/tests \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lsnappy -lpthread -lm
TEST_LDLIBS := -lcmocka

# Components, lowest first: each folder's .c files (all but main.c) form a
# static library; a folder with main.c also yields a binary. Everything links
# the libraries in reverse of this order, so a component may use any library
# listed before it.
reverse = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
LIB_ORDER := common token lake ltap safekeeper pageserver compute proxy controller devcluster
COMPONENTS := $(foreach c,$(LIB_ORDER),$(if $(wildcard $(c)/*.c),$(c)))
libname = $(if $(filter common,$(1)),lakebase,$(1))
LIB_PATH = $(BUILD)/lib/lib$(call libname,$(1)).a
ALL_LIBS := $(foreach c,$(call reverse,$(COMPONENTS)),$(call LIB_PATH,$(c)))
LIBLAKEBASE := $(call LIB_PATH,common)

# Binary names where they differ from the folder.
BIN_token      := lakebase-token
BIN_compute    := compute-ctl
BIN_proxy      := lakebase-proxy
BIN_controller := lakebase-controller
binname = $(or $(BIN_$(1)),$(1))

define component_rules
$(call LIB_PATH,$(1)): $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	ar rcs $$@ $$^
ifneq ($(wildcard $(1)/main.c),)
BINS += $(BUILD)/bin/$(call binname,$(1))
$(BUILD)/bin/$(call binname,$(1)): $(BUILD)/obj/$(1)/main.o $(ALL_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $(BUILD)/obj/$(1)/main.o $(ALL_LIBS) $$(LDLIBS)
endif
endef

BINS :=
$(foreach c,$(COMPONENTS),$(eval $(call component_rules,$(c))))

TESTUTIL_SRC := common/tests/testutil.c
TESTUTIL_OBJ := $(TESTUTIL_SRC:%.c=$(BUILD)/obj/%.o)

# Unit tests: <component>/tests/test_*.c, each its own binary
# build/tests/<component>_test_<name>.
UNIT_SRC   := $(wildcard */tests/test_*.c)
UNIT_BIN   := $(patsubst %.c,$(BUILD)/tests/%,$(subst /tests/,_,$(UNIT_SRC)))

.PHONY: all deps test unit e2e asan tsan run run-local run-devcluster chart-crds clean fuzz bench script-tests pkgcheck images
SHELL := /bin/bash
all: $(ALL_LIBS) $(BINS)

deps:
	@./scripts/deps.sh

# Container images (podman build), skipped when the image for the current
# source hash exists; the first run on a machine also builds the Debian base.
images:
	@./images/build.sh

# Stop with the names of missing libraries, not with a compile error later.
pkgcheck:
	@missing=; for p in $(PKGS); do pkg-config --exists $$p || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "make: pkg-config finds no$$missing; run 'make deps' (scripts/deps.sh) to install them" >&2; \
	    exit 1; fi

script-tests:
	@./scripts/tests/test_deps.sh

# Every tracked C file as the root .clang-format lays it out.
FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	@clang-format -i $(FORMAT_SRC)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC) || \
	    { echo "make: files above are not formatted; run 'make format'" >&2; exit 1; }

$(BUILD)/obj/%.o: %.c | pkgcheck
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# A component's tests link its own library and those it may use (the ones
# listed before it in LIB_ORDER), so a half-written component never breaks
# the tests of the ones below it.
upto = $(if $(filter $(1),$(firstword $(2))),$(firstword $(2)),$(firstword $(2)) $(call upto,$(1),$(wordlist 2,$(words $(2)),$(2))))
TEST_LIBS = $(foreach c,$(call reverse,$(filter $(COMPONENTS),$(call upto,$(1),$(LIB_ORDER)))),$(call LIB_PATH,$(c)))
test_component = $(firstword $(subst _test_, ,$(1)))

.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/%: $$(BUILD)/obj/$$(subst _test_,/tests/test_,$$*).o $(TESTUTIL_OBJ) $$(call TEST_LIBS,$$(call test_component,$$*))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LDLIBS)

unit: $(LIBLAKEBASE) $(UNIT_BIN)
	@./scripts/run-unit-tests.sh $(UNIT_BIN)

e2e: all
	@./scripts/run-e2e.sh

test: deps
	@$(MAKE) --no-print-directory script-tests
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory fuzz LB_FUZZ_SECONDS=10
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory tsan

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" unit

# ThreadSanitizer: the binaries in build/tsan/bin, then the pageserver's
# e2e tests against them with an S3 store (s3rver), so that every thread's
# object-store traffic is checked too (about 5 minutes: part of make test).
# LB_TSAN_TESTS narrows the tests.
LB_TSAN_TESTS ?= e2e/test_pageserver*.py
tsan: deps
	@$(MAKE) --no-print-directory BUILD=build/tsan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=thread" all
	@LB_PROJECT_ROOT=$$PWD LB_BIN_DIR=$$PWD/build/tsan/bin LB_REMOTE_STORAGE=s3 \
	    TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$$PWD/scripts/tsan.supp" \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider $(LB_TSAN_TESTS)

# libFuzzer targets: <component>/fuzz/fuzz_*.c, built with clang against a
# sanitizer-instrumented library (their component's and common's), each run
# for LB_FUZZ_SECONDS.
FUZZ_SRC := $(wildcard */fuzz/fuzz_*.c)
FUZZ_LIBS := $(sort build/fuzz/lib/liblakebase.a $(foreach c,$(patsubst %/fuzz/,%,$(dir $(FUZZ_SRC))),\
                build/fuzz/lib/lib$(call libname,$(c)).a))
LB_FUZZ_SECONDS ?= 30
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang CFLAGS="-O1 -g" \
	    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" $(FUZZ_LIBS)
	@mkdir -p build/fuzz/bin
	@set -e; for src in $(FUZZ_SRC); do \
	    name=$$(basename $$src .c); comp=$${src%%/*}; \
	    lib=$$([ $$comp = common ] || echo build/fuzz/lib/lib$$comp.a); \
	    clang -std=c11 -D_GNU_SOURCE $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -Icommon \
	        -I$$comp -o build/fuzz/bin/$$name $$src $$lib build/fuzz/lib/liblakebase.a $(LDLIBS); \
	    mkdir -p build/fuzz/corpus/$$name; \
	    echo "fuzz: $$name for $(LB_FUZZ_SECONDS)s"; \
	    build/fuzz/bin/$$name -max_total_time=$(LB_FUZZ_SECONDS) -print_final_stats=1 \
	        build/fuzz/corpus/$$name 2>&1 | { grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true; } ; \
	    test $${PIPESTATUS[0]} -eq 0; \
	done

# Tools: <component>/tools/NAME.c -> build/tools/NAME, linked like the
# binaries (small command-line fronts to a component, used by e2e and bench).
TOOL_BIN := $(foreach f,$(wildcard */tools/*.c),$(BUILD)/tools/$(basename $(notdir $(f))))
all: $(TOOL_BIN)
$(BUILD)/tools/%: $$(BUILD)/obj/$$(firstword $$(foreach c,$$(COMPONENTS),$$(if $$(wildcard $$(c)/tools/$$*.c),$$(c))))/tools/$$*.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)

# Benchmark drivers: bench/NAME.c -> build/bench/NAME, linked like the
# binaries. Not part of all; the scripts in bench/ run them.
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
bench: $(BENCH_BIN)
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)

run: run-devcluster

# The process-level launcher: safekeepers, pageserver and compute as plain
# processes on loopback (scripts/run.py), for working on the data plane.
run-local: deps
	@$(MAKE) --no-print-directory all
	@./scripts/run.sh

# The operator on devcluster (scripts/run-devcluster.sh): what make run does.
run-devcluster: deps
	@$(MAKE) --no-print-directory all
	@./scripts/run-devcluster.sh

# The chart carries copies of the CRDs (helm installs crds/ first);
# e2e/test_chart.py checks that they are byte-identical to crds/.
chart-crds:
	@test -d crds || { echo "make: crds/ is not in this tree" >&2; exit 1; }
	cp crds/lakebase.io_*.yaml deploy/helm/lakebase/crds/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
