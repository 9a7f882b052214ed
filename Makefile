# TinyKV-C top-level build: libraries per module, four programs in bin/, tests per layer.
#
# Conventions (new files need no Makefile edits):
#   <module>/*.c          -> build/lib<module>.a   (files ending in _main.c excluded)
#   <module>/*_main.c     -> a program, mapped to its name in PROGRAMS below
#   proto/*.proto         -> build/gen/*.pb-c.[ch] (protoc-c), part of libproto.a
#   pd/dashboard.html     -> build/gen/pd_dashboard_html.h, compiled into libpd.a
#   tests/lib/*.c         -> build/libtestlib.a
#   tests/unit/<layer>/test_*.c and tests/cluster/<layer>/test_*.c
#                         -> build/tests/<layer>/test_* (cmocka), run by `make test-<layer>`
#   tests/cluster/<layer>/test_*.sh|*.py  -> run by `make test-<layer>` after the binaries
#   tests/chaos/*.c       -> build/tests/chaos/* (drivers of the chaos suite, `make chaos`)
#   tests/bench/*.c, *.proto -> build/tests/bench/* (load generators of `make bench`)
#   tests/fuzz/fuzz_<t>.c -> build/tests/fuzz/test_replay_<t> (gcc, replays tests/fuzz/corpus/<t>/
#                            in `make test`) and build/fuzz/fuzzers/<t> (clang + libFuzzer, `make fuzz`)

SHELL := /bin/bash
comma := ,
CC ?= gcc
SAN ?= 0

ifeq ($(SAN),1)
BUILD := build/san
BINDIR := bin/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD := build
BINDIR := bin
SANFLAGS :=
endif

GEN := $(BUILD)/gen
CFLAGS ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -I. -I$(GEN) -I/usr/include/fuse3
WARN := -Wall -Wextra -Werror
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) -pthread -MMD -MP
LDLIBS := -lrocksdb -lgrpc -lgpr -lprotobuf-c -lmicrohttpd -ljansson -lcurl -lfuse3 -lpthread -lm
LDFLAGS += $(SANFLAGS) -pthread

# Debian packages the build, the tests and `make run` need.
DEB_PACKAGES := gcc make pkg-config libfuse3-dev fuse3 librocksdb-dev libprotobuf-c-dev \
	protobuf-c-compiler libgrpc-dev libcurl4-openssl-dev libcmocka-dev libmicrohttpd-dev \
	libjansson-dev protobuf-compiler python3 python3-grpcio python3-protobuf curl \
	clang-format iproute2 psmisc chromium iptables rsync git tar sqlite3

MODULES := codec metrics raft proto store mvcc server pd client fs
# Link order: a library comes before the libraries it uses.
LINK_ORDER := fs server client mvcc store pd codec raft proto metrics

PROTOS := $(wildcard proto/*.proto)
PROTO_SRCS := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_HDRS := $(PROTO_SRCS:.c=.h)

define module_srcs
$(filter-out %_main.c,$(wildcard $(1)/*.c))
endef

LIB_OBJS_proto := $(patsubst %.c,$(BUILD)/%.o,$(call module_srcs,proto)) $(PROTO_SRCS:.c=.o)
$(foreach m,$(filter-out proto,$(MODULES)),$(eval LIB_OBJS_$(m) := $(patsubst %.c,$(BUILD)/%.o,$(call module_srcs,$(m)))))
LIBS := $(foreach m,$(LINK_ORDER),$(BUILD)/lib$(m).a)

TESTLIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/lib/*.c))
TESTLIB := $(BUILD)/libtestlib.a

# program name -> main file
PROGRAMS := tinykv-server:server/server_main.c tinyscheduler-server:pd/server_main.c \
	tinykv-fuse:fs/fuse_main.c tinykv-ctl:client/ctl_main.c
PROGRAM_BINS := $(foreach p,$(PROGRAMS),$(BINDIR)/$(word 1,$(subst :, ,$(p))))

LAYERS := metrics raft store mvcc pd fs fuzz
TEST_SRCS := $(wildcard tests/unit/*/test_*.c tests/cluster/*/test_*.c)
TEST_BINS := $(foreach s,$(TEST_SRCS),$(BUILD)/tests/$(word 3,$(subst /, ,$(s)))/$(basename $(notdir $(s))))

# The chaos suite's drivers (tests/chaos/README.md); its short run is part of `make test`.
CHAOS_SRCS := $(wildcard tests/chaos/*.c)
CHAOS_BINS := $(patsubst tests/chaos/%.c,$(BUILD)/tests/chaos/%,$(CHAOS_SRCS))
# The benchmarks' load generators, and the protos of the systems they compare with (etcd's).
BENCH_PROTOS := $(wildcard tests/bench/*.proto)
BENCH_PROTO_SRCS := $(patsubst tests/bench/%.proto,$(GEN)/bench/%.pb-c.c,$(BENCH_PROTOS))
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRCS))
# Only `make bench` needs these (the side-by-side comparison with etcd).
BENCH_DEB_PACKAGES := etcd-server etcd-client
# Only `make chaos` needs these (clock skew, failing fdatasync); `make test` does not.
CHAOS_DEB_PACKAGES := faketime libfaketime fiu-utils libfiu0

# Fuzz targets (tests/fuzz/README.md). Each links with libFuzzer for `make fuzz` and with a replay
# main() over its checked-in corpus for `make test` (layer "fuzz"); neither needs the other.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRCS))
FUZZ_REPLAY_BINS := $(foreach t,$(FUZZ_TARGETS),$(BUILD)/tests/fuzz/test_replay_$(t))
FUZZ_REPLAY_OBJS := $(foreach t,$(FUZZ_TARGETS),$(BUILD)/tests/fuzz/replay_$(t).o)
FUZZ_BINS := $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzzers/$(t))
# tests/fuzz/*.c that are neither a target nor the replay main: fixtures linked into every target.
FUZZ_FIXTURE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out tests/fuzz/fuzz_%.c \
	tests/fuzz/replay_main.c,$(wildcard tests/fuzz/*.c)))
# The seams some targets run their code under: the gRPC glue and libmicrohttpd's daemon, replaced
# at link time by the target's fakes (the handlers themselves are the real ones).
FUZZ_WRAPS_grpc_requests := $(addprefix -Wl$(comma)--wrap=,rpc_call_reply rpc_call_finish \
	rpc_call_send rpc_call_set_user rpc_call_user rpc_call_peer rpc_call_ref rpc_call_unref \
	rpc_server_new rpc_server_set_metrics rpc_server_start rpc_server_port rpc_server_free \
	raftstore_step)
FUZZ_WRAPS_http_api := $(addprefix -Wl$(comma)--wrap=,MHD_start_daemon MHD_get_daemon_info \
	MHD_stop_daemon MHD_lookup_connection_value MHD_create_response_from_buffer MHD_queue_response)
# Only `make fuzz` needs these (clang and its libFuzzer runtime); `make test` does not.
FUZZ_DEB_PACKAGES := clang libclang-rt-dev
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build/fuzz
FUZZ_SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

.PHONY: all deps chaos-deps bench-deps chaos fuzz fuzz-deps fuzz-bins test $(addprefix test-,$(LAYERS)) run stop bench format format-check clean tests soak-raft
.DEFAULT_GOAL := all
.SECONDARY: $(PROTO_SRCS) $(PROTO_HDRS) $(addsuffix .o,$(CHAOS_BINS)) \
	$(patsubst %,$(BUILD)/tests/fuzz/fuzz_%.o,$(FUZZ_TARGETS)) $(FUZZ_REPLAY_OBJS) $(FUZZ_FIXTURE_OBJS) \
	$(BENCH_PROTO_SRCS) $(BENCH_PROTO_SRCS:.c=.o) $(addsuffix .o,$(BENCH_BINS))

all: $(PROGRAM_BINS)

# install_missing,NAME,PACKAGES: apt-get installs those of PACKAGES not installed yet.
define install_missing
@missing=""; for p in $(2); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "$(1): installing$$missing"; \
  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
fi
endef

deps:
	$(call install_missing,deps,$(DEB_PACKAGES))

# Everything compiled waits for deps and the generated protobuf headers.
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto | deps
	@mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	@protoc-c --proto_path=proto --c_out=$(GEN) $<

$(GEN)/%.pb-c.o: $(GEN)/%.pb-c.c $(PROTO_HDRS)
	@echo "  CC      $<"
	@$(CC) -std=c11 $(CFLAGS) $(SANFLAGS) $(CPPFLAGS) -c $< -o $@

$(BUILD)/%.o: %.c | deps $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -c $< -o $@

# The scheduler's dashboard page is a byte array compiled into libpd.
$(GEN)/pd_dashboard_html.h: pd/dashboard.html
	@mkdir -p $(GEN)
	@echo "  GEN     $@"
	@{ echo '/* generated from pd/dashboard.html by the Makefile: do not edit */'; \
	  echo 'static const char pd_dashboard_html_text[] = {'; \
	  od -An -v -tx1 $< | sed -E 's/([0-9a-f]{2})/0x\1,/g'; \
	  echo '0x00};'; } >$@.tmp && mv $@.tmp $@
$(BUILD)/pd/dashboard.o: $(GEN)/pd_dashboard_html.h

$(foreach m,$(MODULES),$(eval $(BUILD)/lib$(m).a: $$(LIB_OBJS_$(m)) ; @mkdir -p $$(dir $$@); rm -f $$@; ar rcs $$@ $$^))

$(TESTLIB): $(TESTLIB_OBJS)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

define program_rule
$(BINDIR)/$(1): $(BUILD)/$(basename $(2)).o $(LIBS)
	@mkdir -p $(BINDIR)
	@echo "  LD      $$@"
	@$(CC) $(LDFLAGS) -o $$@ $$< $(LIBS) $(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p))))))

define test_rule
$(BUILD)/tests/$(word 3,$(subst /, ,$(1)))/$(basename $(notdir $(1))): $(BUILD)/$(basename $(1)).o $(TESTLIB) $(LIBS)
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	@$(CC) $(LDFLAGS) -o $$@ $$< $(TESTLIB) $(LIBS) $(LDLIBS) -lcmocka
endef
$(foreach s,$(TEST_SRCS),$(eval $(call test_rule,$(s))))

$(BUILD)/tests/chaos/%: $(BUILD)/tests/chaos/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(GEN)/bench/%.pb-c.c $(GEN)/bench/%.pb-c.h: tests/bench/%.proto | deps
	@mkdir -p $(GEN)/bench
	@echo "  PROTOC  $<"
	@protoc-c --proto_path=tests --c_out=$(GEN) $<

# Explicit targets: a pattern rule without a recipe would not add these prerequisites.
$(addsuffix .o,$(BENCH_BINS)): $(BENCH_PROTO_SRCS:.c=.h)
$(BUILD)/tests/bench/%: $(BUILD)/tests/bench/%.o $(BENCH_PROTO_SRCS:.c=.o) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(BENCH_PROTO_SRCS:.c=.o) $(LIBS) $(LDLIBS)


# A fuzz target's replay: its corpus's path is compiled in (run_layer.sh runs from the root).
$(FUZZ_REPLAY_OBJS): $(BUILD)/tests/fuzz/replay_%.o: tests/fuzz/replay_main.c | deps $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $< ($*)"
	@$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -DFUZZ_TARGET='"$*"' -c $< -o $@

$(FUZZ_REPLAY_BINS): $(BUILD)/tests/fuzz/test_replay_%: $(BUILD)/tests/fuzz/fuzz_%.o \
		$(BUILD)/tests/fuzz/replay_%.o $(FUZZ_FIXTURE_OBJS) $(TESTLIB) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) $(FUZZ_WRAPS_$*) -o $@ $< $(BUILD)/tests/fuzz/replay_$*.o \
		$(FUZZ_FIXTURE_OBJS) $(TESTLIB) $(LIBS) $(LDLIBS)

# The libFuzzer programs, built by `make fuzz` in its own tree (BUILD=$(FUZZ_BUILD), CC=clang).
$(FUZZ_BINS): $(BUILD)/fuzzers/%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_FIXTURE_OBJS) $(TESTLIB) $(LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer $(FUZZ_WRAPS_$*) -o $@ $< $(FUZZ_FIXTURE_OBJS) $(TESTLIB) \
		$(LIBS) $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)

tests: $(TEST_BINS) $(PROGRAM_BINS) $(CHAOS_BINS) $(BENCH_BINS) $(FUZZ_REPLAY_BINS)

test: format-check tests
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run_layer.sh $(LAYERS)

$(addprefix test-,$(LAYERS)): test-%: tests
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run_layer.sh $*

soak-raft: tests
	@BUILD=$(BUILD) RAFT_SOAK_SEEDS=$${RAFT_SOAK_SEEDS:-20000} tests/run_layer.sh raft

# The full fault matrix (tests/chaos/README.md); CHAOS_ARGS passes options to run.py.
chaos: tests chaos-deps
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/chaos/run.py --matrix $(CHAOS_ARGS)

chaos-deps:
	$(call install_missing,chaos-deps,$(CHAOS_DEB_PACKAGES))

# Runs every fuzz target for FUZZ_SECONDS (nice'd, one at a time) from its checked-in corpus;
# what it finds goes to $(FUZZ_BUILD)/corpus/<t>/, crashes to $(FUZZ_BUILD)/artifacts/.
# FUZZ_TARGETS=name limits the run; FUZZ_ARGS passes more libFuzzer options.
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory CC=clang SAN=0 BUILD=$(FUZZ_BUILD) WARN="-Wall -Wextra" \
		SANFLAGS="$(FUZZ_SANFLAGS)" fuzz-bins
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  echo "=== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  nice $(FUZZ_BUILD)/fuzzers/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $$dict \
	    $(FUZZ_ARGS) $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: findings in$$failed (see $(FUZZ_BUILD)/artifacts/)"; exit 1; fi; \
	echo "fuzz: no findings"

fuzz-deps:
	$(call install_missing,fuzz-deps,$(FUZZ_DEB_PACKAGES))

bench-deps:
	$(call install_missing,bench-deps,$(BENCH_DEB_PACKAGES))

bench: all bench-deps $(BENCH_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/bench.sh

run: all
	@examples/cluster.sh start

stop:
	@examples/cluster.sh stop

format:
	clang-format -i $(FORMAT_SRCS)

format-check: | deps
	@clang-format --dry-run -Werror $(FORMAT_SRCS) && echo "format-check: ok"

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
