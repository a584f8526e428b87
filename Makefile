# tapflow: make, make check, make bench, make install.
#   make                      build the three programs into build/
#   make check                install missing dependencies, build, run every test
#   make bench                benchmarks against the peer tools, measured in one run
#   make CROSS=aarch64-linux-gnu-   cross build for arm64 into build-arm64/ (armhf:
#                             CROSS=arm-linux-gnueabihf-); make check-cross tests both
#   make install              PREFIX=/usr/local DESTDIR=: programs, man pages, configs, units
#   make deb                  Debian packages in build-deb/ (with CROSS: for that arch)
# Variants: SAN=1 (ASan+UBSan, clang), FUZZ=1 (libFuzzer instrumentation), each in its
# own BUILD directory so they never mix objects.

CROSS ?=
ifeq ($(origin CC),default)
CC = $(CROSS)gcc
endif
# A cross build goes into build-ARCH/ (ARCH as Debian names it) and compiles against
# build-ARCH/sysroot, the target's -dev packages unpacked by deploy/deps.sh --cross.
ifneq ($(CROSS),)
ARCH := $(if $(filter aarch64-%,$(CROSS)),arm64,$(if $(filter arm-%gnueabihf-,$(CROSS)),armhf,$(error CROSS=$(CROSS): use aarch64-linux-gnu- or arm-linux-gnueabihf-)))
BUILD ?= build-$(ARCH)
SYSROOT ?= build-$(ARCH)/sysroot
else
ARCH := $(shell dpkg --print-architecture 2>/dev/null || uname -m)
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
LIBS = -lpcap -lconfig -llz4 -lzstd -lmicrohttpd -lm

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

PROGS := $(BUILD)/tapflow-probe $(BUILD)/tapflow-collector $(BUILD)/tapflow-query \
	$(BUILD)/tapflow-nfdump
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))

.PHONY: all check check-build unit tools fuzz bench install clean deps demo
.PHONY: check-cross man deb deb-all
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The query engine's inner loops (column decoding, filters, aggregation) gain 5-15% of
# wall time from -O3's vectorizer (make bench); the rest stays at OPT. HOT_OPT= opts out.
HOT_OPT ?= -O3
$(call obj,collector/store.c collector/query.c collector/filt.c): ALL_CFLAGS += $(HOT_OPT)

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
$(BUILD)/tapflow-nfdump: $(call obj,collector/nfdump_main.c) $(COLL_LIB) $(COMMON_LIB)
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

# ---- eBPF capture backend (probe/bpf/, probe/cap_ebpf.c) ----
# The BPF object is compiled once by clang for the BPF target, little-endian (x86 and
# every Pi), whatever CC and CROSS say, and stripped of DWARF (its BTF stays: libbpf and
# the skeleton use it); bpftool turns it into a skeleton header that embeds it in the
# probe. asm/types.h comes from the build host's multiarch include dir.
BPF_CLANG ?= clang
BPF_STRIP ?= llvm-strip
BPFTOOL ?= bpftool
BPF_CFLAGS = -O2 -g -target bpfel -ffreestanding -Wall -Wextra -Werror \
	-I/usr/include/$(shell gcc -dumpmachine) -Iprobe
ALL_CFLAGS += -I$(BUILD)/bpf
LIBS += -lbpf -lelf -lz
$(BUILD)/bpf/%.bpf.o: probe/bpf/%.bpf.c $(wildcard probe/bpf/*.h) probe/pkt.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -c -o $@ $<
	$(BPF_STRIP) -g $@
$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name tf_$*_bpf >$@.tmp && mv $@.tmp $@
.SECONDARY: $(BUILD)/bpf/flow.bpf.o $(BUILD)/bpf/scan.bpf.o
$(call obj,probe/cap_ebpf.c $(wildcard tests/unit/test_ebpf*.c)): $(BUILD)/bpf/flow.skel.h \
	$(BUILD)/bpf/scan.skel.h
# ---- end of the eBPF block ----

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

# ---- Cross builds, man pages, installation, packages (see rpi/README.md) ----
ifneq ($(CROSS),)
ALL_CFLAGS += --sysroot=$(SYSROOT)
ALL_LDFLAGS += --sysroot=$(SYSROOT)
# gcc 12 for 32-bit targets warns that snprintf("%s", any string) might pass INT_MAX
# bytes (probe/cap_afpacket.c): kept visible, not fatal.
ifeq ($(ARCH),armhf)
ALL_CFLAGS += -Wno-error=format-truncation
endif
$(call obj,$(COMMON_SRC) $(PROBE_SRC) $(COLL_SRC) $(wildcard */*_main.c) $(UNIT_SRC) \
	$(TOOL_SRC)): | $(SYSROOT)/.tapflow-sysroot
$(SYSROOT)/.tapflow-sysroot:
	bash deploy/deps.sh --cross $(ARCH)
endif

# Unit tests of the arm64 and armhf builds under qemu-user, and the offline path (pcap ->
# probe -> NetFlow on loopback -> collector -> query) with every binary under qemu.
check-cross:
	bash deploy/deps.sh --cross
	$(MAKE) --no-print-directory CROSS= all tools
	bash tests/run.sh integ -k cross_

# Man pages from the programs' own --help (so they never drift from the code). A cross
# build takes them from a native build in build/: the text is the same on every arch.
HOST_BUILD := $(if $(CROSS),build,$(BUILD))
man: $(if $(CROSS),,$(PROGS))
	$(if $(CROSS),$(MAKE) --no-print-directory CROSS= SAN= FUZZ= BUILD=$(HOST_BUILD) all)
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} \
		python3 deploy/man/mkman.py $(HOST_BUILD) $(BUILD)/man $(VERSION)

# Layout; `make deb` uses PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCTLDIR ?= $(PREFIX)/lib/sysctl.d
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/tapflow
UNITS := $(wildcard deploy/systemd/*.service)
# Configs in SYSCONFDIR/tapflow are installed only where none exists (never clobbered);
# units get this PREFIX's paths.
install: all man
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/tapflow-probe $(BUILD)/tapflow-collector $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(BUILD)/tapflow-query $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(BUILD)/tapflow-nfdump $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 644 $(BUILD)/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 $(BUILD)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 644 deploy/*.conf rpi/*.conf deploy/systemd/*.conf $(DESTDIR)$(DOCDIR)/examples/
	install -d $(DESTDIR)$(SYSCONFDIR)/tapflow
	for f in deploy/*.conf; do t=$(DESTDIR)$(SYSCONFDIR)/tapflow/$${f##*/}; \
		[ -e $$t ] || install -m 644 $$f $$t; done
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCTLDIR)
	for u in $(UNITS); do sed -e 's|/usr/sbin/|$(PREFIX)/sbin/|g' \
		-e 's|/etc/tapflow/|$(SYSCONFDIR)/tapflow/|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; done
	install -m 644 deploy/systemd/tapflow-collector.sysctl \
		$(DESTDIR)$(SYSCTLDIR)/60-tapflow-collector.conf

# Debian packages tapflow-probe and tapflow-collector (with tapflow-query) for this
# machine's arch, or with CROSS for arm64/armhf: built with Debian's hardening flags in
# their own build directory, installed into a staging root, split by deploy/debian/mkdeb.sh.
DEB_DIR ?= build-deb
DEB_CFLAGS ?= -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2 -Wformat \
	-Werror=format-security -ffile-prefix-map=$(CURDIR)=.
DEB_LDFLAGS ?= -Wl,-z,relro -Wl,-z,now
deb:
	rm -rf $(DEB_DIR)/$(ARCH)/root
	$(MAKE) --no-print-directory BUILD=$(DEB_DIR)/$(ARCH) CFLAGS="$(DEB_CFLAGS)" \
		LDFLAGS="$(DEB_LDFLAGS)" DESTDIR=$(CURDIR)/$(DEB_DIR)/$(ARCH)/root PREFIX=/usr \
		SYSCONFDIR=/etc UNITDIR=/lib/systemd/system SYSCTLDIR=/usr/lib/sysctl.d install
	STRIP=$(CROSS)strip bash deploy/debian/mkdeb.sh $(DEB_DIR)/$(ARCH)/root $(ARCH) \
		$(VERSION) $(DEB_DIR) $(if $(CROSS),$(SYSROOT))
deb-all:
	$(MAKE) --no-print-directory CROSS= deb
	$(MAKE) --no-print-directory CROSS=aarch64-linux-gnu- deb
	$(MAKE) --no-print-directory CROSS=arm-linux-gnueabihf- deb

clean:
	rm -rf build build-san build-fuzz build-*

-include $(shell find $(BUILD) -name '*.d' -type f -not -path '*/sysroot/*' 2>/dev/null)
