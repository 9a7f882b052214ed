# TinyKV-C top-level build: libraries per module, four programs in bin/, tests per layer.
#
# Conventions (new files need no Makefile edits):
#   <module>/*.c          -> build/lib<module>.a   (files ending in _main.c excluded)
#   <module>/*_main.c     -> a program, mapped to its name in PROGRAMS below
#   proto/*.proto         -> build/gen/*.pb-c.[ch] (protoc-c), part of libproto.a
#   tests/lib/*.c         -> build/libtestlib.a
#   tests/unit/<layer>/test_*.c and tests/cluster/<layer>/test_*.c
#                         -> build/tests/<layer>/test_* (cmocka), run by `make test-<layer>`
#   tests/cluster/<layer>/test_*.sh|*.py  -> run by `make test-<layer>` after the binaries

SHELL := /bin/bash
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
	clang-format iproute2 psmisc rsync git tar sqlite3

MODULES := raft proto store mvcc pd client fs
# Link order: a library comes before the libraries it uses.
LINK_ORDER := fs client store mvcc pd raft proto

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
PROGRAMS := tinykv-server:store/server_main.c tinyscheduler-server:pd/server_main.c \
	tinykv-fuse:fs/fuse_main.c tinykv-ctl:client/ctl_main.c
PROGRAM_BINS := $(foreach p,$(PROGRAMS),$(BINDIR)/$(word 1,$(subst :, ,$(p))))

LAYERS := raft store mvcc pd fs
TEST_SRCS := $(wildcard tests/unit/*/test_*.c tests/cluster/*/test_*.c)
TEST_BINS := $(foreach s,$(TEST_SRCS),$(BUILD)/tests/$(word 3,$(subst /, ,$(s)))/$(basename $(notdir $(s))))

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

.PHONY: all deps test $(addprefix test-,$(LAYERS)) run stop bench format format-check clean tests soak-raft
.DEFAULT_GOAL := all
.SECONDARY: $(PROTO_SRCS) $(PROTO_HDRS)

all: $(PROGRAM_BINS)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi

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

tests: $(TEST_BINS) $(PROGRAM_BINS)

test: format-check tests
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run_layer.sh $(LAYERS)

$(addprefix test-,$(LAYERS)): test-%: tests
	@BUILD=$(BUILD) BINDIR=$(BINDIR) tests/run_layer.sh $*

soak-raft: tests
	@BUILD=$(BUILD) RAFT_SOAK_SEEDS=$${RAFT_SOAK_SEEDS:-20000} tests/run_layer.sh raft

bench: all
	@BINDIR=$(BINDIR) tests/bench.sh

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
