# nodedebug: run `make help` for the targets.

GO        ?= go
BIN       := bin/nodedebug
PREFIX    ?= /opt/nodedebug-test
CONTAINERD_V2 := $(PREFIX)/containerd-v2.4.2/bin/containerd
# kube-apiserver, kubelet, kubectl and etcd for the integration cluster.
K8S_BIN   := $(PREFIX)/k8s-v1.37.2/bin
# The e2e suite runs once per containerd: Debian's packaged 1.6 and 2.4.
CONTAINERDS ?= /usr/bin/containerd $(CONTAINERD_V2)
export PATH := $(PREFIX)/bin:$(PATH)

.PHONY: help build deps demo test test-unit test-e2e test-integration k8s lint generate toolbox image bench clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# Static with cgo: the binary runs inside tool images as their init, and its
# nsenter constructor (C) must run before the Go runtime starts.
STATIC_FLAGS := -tags netgo,osusergo -ldflags '-extldflags "-static"'

build: ## build bin/nodedebug (static, with the cgo nsenter constructor) and bin/nodedebug-gateway
	CGO_ENABLED=1 $(GO) build $(STATIC_FLAGS) -o $(BIN) .
	CGO_ENABLED=0 $(GO) build -o bin/nodedebug-gateway ./cmd/nodedebug-gateway

deps: ## install containerd 1.6 and 2.4, runc, crictl, CNI plugins, busybox (root)
	bash test/install-deps.sh

demo: deps build ## run a distroless pod on a private containerd and attach to it (root)
	$(GO) build -o bin/demo ./test/demo
	bin/demo -nodedebug $(BIN) -containerd $(CONTAINERD_V2) $(DEMO_FLAGS)

test: deps test-unit test-e2e test-integration ## install what is missing, then run every test (root)

test-unit: ## unit tests: no root, no runtime
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /test/e2e -e /test/harness -e /test/cluster -e /test/integration)

test-e2e: ## e2e tests against each containerd in CONTAINERDS (root)
	@set -e; for c in $(CONTAINERDS); do \
		echo "== e2e on $$c"; \
		NODEDEBUG_CONTAINERD=$$c $(GO) test -count=1 -p 1 -timeout 20m ./test/harness/... ./test/e2e/...; \
	done

bench: deps ## benchmark vs crictl exec and ctr run, table + bench-results.json (root; BENCH_FLAGS="-runs 5" for a quick run)
	$(GO) run ./test/bench -containerd $(CONTAINERD_V2) $(BENCH_FLAGS)

k8s: ## build kube-apiserver, kubelet, kubectl and etcd v1.37.2 into K8S_BIN (skips what exists)
	bash test/cluster/build.sh $(K8S_BIN)

test-integration: k8s ## the cluster path through a real API server, gateway and agent (root)
	NODEDEBUG_K8S_BIN=$(K8S_BIN) $(GO) test -count=1 -p 1 -timeout 20m ./test/cluster/... ./test/integration/...

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...

generate: ## regenerate the gRPC code from api/agent.proto
	protoc -I api --go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative api/agent.proto

toolbox: ## build the toolbox image tar the agent imports (bin/toolbox.tar)
	$(GO) run ./test/images/cmd/mkimage toolbox -o bin/toolbox.tar

image: build toolbox ## build the agent image (needs a docker or buildx engine)
	docker build -t nodedebug:dev .

clean: ## remove build output
	rm -rf bin
