#!/usr/bin/env bash
# Build the Kubernetes binaries the test cluster runs (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kubectl) from the Go module
# proxy, once per version, into a cache outside the repository:
#   $(go env GOPATH)/wisp-kube/<version>/bin
# A cold build takes about 15 minutes on 2 cores; a warm call returns at once.
#
# k8s.io/kubernetes cannot be "go install"ed (its go.mod replaces its staging
# modules with local paths), so this makes a scratch module that requires it
# and pins each staging module to its published v0.x twin.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CACHE="${WISP_KUBE_CACHE:-$(go env GOPATH)/wisp-kube/$KUBE_VERSION}"
BIN="$CACHE/bin"
CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

have_all() {
  for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || return 1; done
}
if have_all; then
  echo "kube binaries $KUBE_VERSION: cached in $BIN"
  exit 0
fi

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
staging="v0.${KUBE_VERSION#v1.}"
work="$CACHE/src"
mkdir -p "$work" "$BIN"
cd "$work"
echo "building kube binaries $KUBE_VERSION into $BIN (cold: about 15 minutes on 2 cores)"

if [[ ! -f go.mod ]]; then
  go mod init wisp-kube-build >/dev/null 2>&1
fi
cat > tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
GOFLAGS=-mod=mod go mod download -x k8s.io/kubernetes >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod download k8s.io/kubernetes
kmod="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/go.mod"
# Each "k8s.io/x => ./staging/src/k8s.io/x" line becomes "k8s.io/x => k8s.io/x v0.N.P".
grep -E '^\s*k8s.io/[^ ]+ => \./staging/' "$kmod" | awk '{print $1}' | sort -u | while read -r m; do
  go mod edit -replace="$m=$m@$staging"
done
GOFLAGS=-mod=mod go mod tidy

pkg="k8s.io/component-base/version"
ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
# One go build for all of them shares the compile work (about a quarter faster).
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kubectl
have_all
"$BIN/kube-apiserver" --version
echo "kube binaries $KUBE_VERSION: built in $BIN"
