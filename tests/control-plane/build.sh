#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from the Go module proxy into a
# versioned cache outside the repository, once. Prints the folder that holds the binaries.
#
# Safe to run concurrently: a file lock makes later callers wait for the first build and
# then reuse it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/kube/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$here/etcd/go.mod")
cache_root=${SYNC_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sync-test-env}
bin="$cache_root/kube-$kube_version-etcd-$etcd_version"

have_all() { [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/etcd" ]; }

if have_all; then echo "$bin"; exit 0; fi

mkdir -p "$cache_root"
exec 9>"$cache_root/build.lock"
flock 9
if have_all; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the control-plane binaries (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }

tmp="$bin.partial"
rm -rf "$tmp"; mkdir -p "$tmp"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)
echo "building etcd $etcd_version (one time, cached in $bin)..." >&2
(cd "$here/etcd" && go build -trimpath -pgo=off -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
echo "building kube-apiserver and kube-controller-manager $kube_version (one time, 10-25 minutes on 2 cores)..." >&2
ver="-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
(cd "$here/kube" && go build -trimpath -pgo=off -tags=selinux,notest,grpcnotrace -ldflags "-s -w $ver" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
rm -rf "$bin"; mv "$tmp" "$bin"
echo "built control-plane binaries in $(( $(date +%s) - start ))s" >&2
echo "$bin"
