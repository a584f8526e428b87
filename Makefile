# tapflow: make, make check, make bench, make install.
#   make                      build the three programs into build/
#   make check                install missing dependencies, build, run every test
#   make bench                benchmarks against the peer tools, measured in one run
#   make CROSS=aarch64-linux-gnu-   cross build (see rpi/)
# Variants: SAN=1 (ASan+UBSan, clang), FUZZ=1 (libFuzzer instrumentation), each in its
# own BUILD directory so they never mix objects.

CROSS ?=
ifeq ($(origin CC),default)
CC = $(CROSS)gcc
endif
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
OPT ?= -O2 -g
WARN := -Wall -Wextra -Werror
CFLAGS ?= $(OPT)
ALL_CFLAGS = $(CFLAGS) $(WARN) -std=gnu11 -pthread -MMD -MP \
	-D_GNU_SOURCE -DTF_VERSION='"$(VERSION)"' -Icommon -Iprobe -Icollector
ALL_LDFLAGS = $(LDFLAGS) -pthread
LIBS = -lpcap -lconfig -llz4 -lzstd -lm

ifeq ($(SAN),1)
CC = clang
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
CC = clang
ALL_CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	-DTF_FUZZING
ALL_LDFLAGS += -fsanitize=address,undefined
endif

# Program entry points are *_main.c; everything else in a folder is its library.
COMMON_SRC := $(wildcard common/*.c)
PROBE_SRC := $(filter-out %_main.c,$(wildcard probe/*.c))
COLL_SRC := $(filter-out %_main.c,$(wildcard collector/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_LIB := $(BUILD)/libtfcommon.a
PROBE_LIB := $(BUILD)/libtfprobe.a
COLL_LIB := $(BUILD)/libtfcollector.a
LIBS_ALL := $(COLL_LIB) $(PROBE_LIB) $(COMMON_LIB)

PROGS := $(BUILD)/tapflow-probe $(BUILD)/tapflow-collector $(BUILD)/tapflow-query
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))

.PHONY: all check check-build unit tools fuzz bench install clean deps demo
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(COMMON_LIB): $(call obj,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(CROSS)ar rcs $@ $^
$(PROBE_LIB): $(call obj,$(PROBE_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(CROSS)ar rcs $@ $^
$(COLL_LIB): $(call obj,$(COLL_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && $(CROSS)ar rcs $@ $^

$(BUILD)/tapflow-probe: $(call obj,probe/probe_main.c) $(PROBE_LIB) $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/tapflow-collector: $(call obj,collector/collector_main.c) $(COLL_LIB) $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/tapflow-query: $(call obj,collector/query_main.c) $(COLL_LIB) $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka
$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

unit: $(UNIT_BINS)
tools: $(TOOL_BINS)
fuzz: $(FUZZ_BINS)

deps:
	bash deploy/deps.sh

# The main job end to end on this machine: capture -> probe -> collector -> query.
demo:
	bash deploy/deps.sh --build
	$(MAKE) --no-print-directory all tools
	bash deploy/demo.sh

# Every build the tests use: release (integration, peers), sanitizers (unit tests and
# the pcap corpus), libFuzzer targets.
check-build: all tools unit
	$(MAKE) --no-print-directory BUILD=build-san SAN=1 all unit tools
	$(MAKE) --no-print-directory BUILD=build-fuzz FUZZ=1 fuzz

check: deps
	$(MAKE) --no-print-directory check-build
	bash tests/run.sh

bench: deps all tools
	bash tests/bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/tapflow-probe $(BUILD)/tapflow-collector $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(BUILD)/tapflow-query $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/doc/tapflow/examples
	install -m 644 deploy/*.conf $(DESTDIR)$(PREFIX)/share/doc/tapflow/examples/

clean:
	rm -rf build build-san build-fuzz build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
