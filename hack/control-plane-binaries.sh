#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy and caches them outside the
# clone, keyed by Kubernetes version, so envtest (make test) and make run can use a real
# control plane without setup-envtest's internet download.
#
# Usage: hack/control-plane-binaries.sh        prints the binary directory on stdout
# Env:   K8S_VERSION (default: go.mod's k8s.io/api version, v0.X.Y → v1.X.Y),
#        USERCREDITS_CACHE_DIR (default ~/.cache/usercredits-operator)
set -euo pipefail

if [ -z "${K8S_VERSION:-}" ]; then
  api=$(cd "$(dirname "$0")/.." && go list -m -f '{{.Version}}' k8s.io/api)
  K8S_VERSION="v1.${api#v0.}"
fi
# Staging modules (k8s.io/api, ...) are versioned v0.X.Y for Kubernetes v1.X.Y.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
CACHE_ROOT=${USERCREDITS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/usercredits-operator}
DEST="$CACHE_ROOT/control-plane/$K8S_VERSION"

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { printf '[control-plane] ERROR: %s\n' "$*" >&2; exit 1; }

usable() {
  [ -x "$DEST/kube-apiserver" ] && [ -x "$DEST/etcd" ] &&
    "$DEST/kube-apiserver" --version 2>/dev/null | grep -q "$K8S_VERSION" &&
    "$DEST/etcd" --version >/dev/null 2>&1
}

if usable; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 first"
mkdir -p "$CACHE_ROOT"

# Only one build at a time per cache (make test and make run may start together).
exec 9>"$CACHE_ROOT/.control-plane.lock"
if command -v flock >/dev/null; then
  log "waiting for the build lock $CACHE_ROOT/.control-plane.lock"
  flock 9
  if usable; then echo "$DEST"; exit 0; fi
fi

WORK="$CACHE_ROOT/build/$K8S_VERSION"
mkdir -p "$WORK"
cd "$WORK"

log "resolving k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
K8S_DIR=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$K8S_DIR" ] && [ -f "$K8S_DIR/go.mod" ] ||
  die "could not download k8s.io/kubernetes@$K8S_VERSION (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"

# k8s.io/kubernetes replaces its staging modules with local paths; a wrapper module must
# pin each of them to the published version instead. Reading the list keeps it exact.
STAGING=$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\+\)\?k8s.io/\([a-z0-9-]*\) => ./staging/src/k8s.io/.*#\2#p' "$K8S_DIR/go.mod" | sort -u)
[ -n "$STAGING" ] || die "found no staging replaces in $K8S_DIR/go.mod"

{
  echo "module local/kubebins"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  for m in $STAGING; do echo "replace k8s.io/$m => k8s.io/$m $STAGING_VERSION"; done
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
GO

log "resolving dependencies (go mod tidy)"
GOFLAGS=-mod=mod go mod tidy -e >&2 || die "go mod tidy failed in $WORK"

TMP=$(mktemp -d "$CACHE_ROOT/.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

start=$(date +%s)
log "building kube-apiserver $K8S_VERSION (about 9 minutes cold on 2 cores, seconds when cached)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION" \
  -o "$TMP/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver || die "building kube-apiserver failed"
log "kube-apiserver built in $(( $(date +%s) - start ))s"

start=$(date +%s)
log "building etcd"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3 || die "building etcd failed"
log "etcd built in $(( $(date +%s) - start ))s"

mkdir -p "$DEST"
mv -f "$TMP/kube-apiserver" "$TMP/etcd" "$DEST/"
# envtest also looks for kubectl beside the binaries.
if [ ! -e "$DEST/kubectl" ] && command -v kubectl >/dev/null; then
  ln -s "$(command -v kubectl)" "$DEST/kubectl"
fi
usable || die "built binaries in $DEST do not run"
log "ready: $DEST"
echo "$DEST"
