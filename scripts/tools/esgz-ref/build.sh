#!/usr/bin/env bash
# Builds esgz-ref from Debian's packaged estargz library (offline, GOPATH mode).
# Usage: scripts/tools/esgz-ref/build.sh [OUT_BINARY]   (default: /usr/local/bin/esgz-ref)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-/usr/local/bin/esgz-ref}"
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/containerd/stargz-snapshotter/estargz ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-go golang-github-containerd-stargz-snapshotter-dev >/dev/null
fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/esgz-ref" && cp "$here"/*.go "$work/src/esgz-ref/"
cd "$work/src/esgz-ref"
GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" GOFLAGS= go build -o "$out" .
echo "built $out"
