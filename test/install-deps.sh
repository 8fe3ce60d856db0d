#!/usr/bin/env bash
# Installs what the nodedebug e2e tests and benchmarks need on a Debian or
# Ubuntu host. Run as root. Safe to run again: Go tools are only built when
# their binary is missing.
set -euo pipefail

PREFIX=${NODEDEBUG_TEST_PREFIX:-/opt/nodedebug-test}
CONTAINERD_VERSION=v2.4.2
CRICTL_VERSION=v1.37.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0

CONTAINERD_BIN="$PREFIX/containerd-$CONTAINERD_VERSION/bin"
TOOLS_BIN="$PREFIX/bin"

log() { printf 'install-deps: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	log "must run as root" >&2
	exit 1
fi

APT_PACKAGES=(containerd runc crun containernetworking-plugins busybox-static
	iproute2 iptables protobuf-compiler tmux)

install_apt() {
	if dpkg -s "${APT_PACKAGES[@]}" >/dev/null 2>&1; then
		log "have apt packages: ${APT_PACKAGES[*]}"
		return
	fi
	log "apt-get update"
	apt-get update -q
	log "apt-get install containerd runc crun and friends"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${APT_PACKAGES[@]}"
}

# go_install DIR BINARY PACKAGE@VERSION builds one Go tool into DIR unless
# DIR/BINARY already exists.
go_install() {
	local dir=$1 binary=$2 pkg=$3
	if [[ -x "$dir/$binary" ]]; then
		log "have $dir/$binary"
		return
	fi
	log "go install $pkg into $dir"
	mkdir -p "$dir"
	GOBIN="$dir" go install "$pkg"
}

install_go_tools() {
	if ! command -v go >/dev/null; then
		log "go not found on PATH; cannot build containerd $CONTAINERD_VERSION or crictl" >&2
		exit 1
	fi

	local mod=github.com/containerd/containerd/v2/cmd
	go_install "$CONTAINERD_BIN" containerd "$mod/containerd@$CONTAINERD_VERSION"
	go_install "$CONTAINERD_BIN" containerd-shim-runc-v2 "$mod/containerd-shim-runc-v2@$CONTAINERD_VERSION"
	go_install "$CONTAINERD_BIN" ctr "$mod/ctr@$CONTAINERD_VERSION"

	go_install "$TOOLS_BIN" crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
	go_install "$TOOLS_BIN" protoc-gen-go \
		"google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
	go_install "$TOOLS_BIN" protoc-gen-go-grpc \
		"google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
}

install_apt
install_go_tools

log "done"
log "containerd 1.6 (apt):   $(command -v containerd)"
log "containerd $CONTAINERD_VERSION:    $CONTAINERD_BIN/containerd"
log "crictl, protoc plugins: $TOOLS_BIN"
log "run e2e with: NODEDEBUG_CONTAINERD=$CONTAINERD_BIN/containerd PATH=$TOOLS_BIN:\$PATH"
