# proto.mk: code generation for the Connect API. Included by the top
# Makefile. Tools are pinned and installed with `go install` into $(PROTO_BIN)
# (the module proxy is the only network this build needs); buf runs the
# local plugins from there, never remote ones.

BUF_VERSION                  ?= v1.75.0
PROTOC_GEN_GO_VERSION        ?= v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION ?= v1.21.1

PROTO_DIR := proto
PROTO_BIN := $(CURDIR)/bin
PROTO_GEN := $(PROTO_DIR)/gen
BUF       := $(PROTO_BIN)/buf
PROTO_PATH := $(PROTO_BIN):$(PATH)

$(PROTO_BIN)/buf:
	GOBIN=$(PROTO_BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(PROTO_BIN)/protoc-gen-go:
	GOBIN=$(PROTO_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(PROTO_BIN)/protoc-gen-connect-go:
	GOBIN=$(PROTO_BIN) go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)

PROTO_TOOLS := $(PROTO_BIN)/buf $(PROTO_BIN)/protoc-gen-go $(PROTO_BIN)/protoc-gen-connect-go

.PHONY: generate generate-check buf-lint proto-tools

proto-tools: $(PROTO_TOOLS)

# generate rewrites proto/gen from the .proto files.
generate: $(PROTO_TOOLS)
	rm -rf $(PROTO_GEN)
	cd $(PROTO_DIR) && PATH=$(PROTO_PATH) $(BUF) generate

# generate-check regenerates into a temporary directory and fails when the
# committed code differs (someone edited a .proto without `make generate`,
# or hand-edited generated code).
generate-check: $(PROTO_TOOLS)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd $(PROTO_DIR) && PATH=$(PROTO_PATH) $(BUF) generate -o "$$tmp" && \
	if ! diff -r "$$tmp/gen" gen; then \
		echo "proto/gen is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi

# buf-lint checks the .proto files against buf's STANDARD rules.
buf-lint: $(PROTO_BIN)/buf
	cd $(PROTO_DIR) && $(BUF) lint && $(BUF) format -d --exit-code
