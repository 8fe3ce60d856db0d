#!/usr/bin/env bash
# Builds the binaries of the integration cluster into a cache folder:
# kube-apiserver, kubelet, kubectl (k8s.io/kubernetes v1.37.2) and etcd.
# Idempotent: a binary already in the folder is not built again.
#
#   test/cluster/build.sh [OUT]   (default $NODEDEBUG_K8S_BIN or
#                                  /opt/nodedebug-test/k8s-v1.37.2/bin)
set -euo pipefail
cd "$(dirname "$0")/k8sbuild"

out=${1:-${NODEDEBUG_K8S_BIN:-/opt/nodedebug-test/k8s-v1.37.2/bin}}
mkdir -p "$out"

# Stamp the version kubectl and the node report; the default is v0.0.0.
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v1.37.2 -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
ldflags="$ldflags -X $pkg.gitTreeState=clean"

missing=()
for b in kube-apiserver kubelet kubectl; do
	[[ -x $out/$b ]] || missing+=("k8s.io/kubernetes/cmd/$b")
done
if ((${#missing[@]})); then
	echo "building ${missing[*]} into $out"
	# Into a temporary folder first, so an interrupted build leaves no
	# half-written binary that the next run would take as done.
	tmp=$(mktemp -d "$out/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${missing[@]}"
	mv "$tmp"/* "$out/"
fi

if [[ ! -x $out/etcd ]]; then
	echo "building etcd into $out"
	(cd etcd && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" . &&
		mv "$out/etcd.tmp" "$out/etcd")
fi
ls -l "$out"
