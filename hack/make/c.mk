# C commands: cmd/<name>/main.c (the underlink-ipam relay), static and stripped like the Go binaries
# (CGO_ENABLED=0), so they run on any node. The tests build them with the same flags (test/netbed.CFlags).
CC ?= gcc
C_CMDS := $(patsubst cmd/%/main.c,%,$(wildcard cmd/*/main.c))
C_CFLAGS := -O2 -static -s -Wall -Wextra -Werror

# c-build builds every C command into $(1).
define c-build
	@mkdir -p $(1)
	$(foreach c,$(C_CMDS),$(CC) $(C_CFLAGS) -o $(1)/$(c) cmd/$(c)/main.c &&) true
endef
