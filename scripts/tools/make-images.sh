#!/usr/bin/env bash
# Builds eStargz images with the reference estargz library and pushes them to a registry.
#   make-images.sh REGISTRY WORKDIR [SET...]     e.g. make-images.sh 127.0.0.1:5000 /tmp/imgs edge mixed zstd
# Sets: edge   3-layer image with every entry type, multi-chunk files, whiteouts (64 KiB chunks)
#       mixed  a plain tar+gzip base layer under an eStargz layer
#       zstd   the edge image with zstd-compressed eStargz layers
#       legacy the edge image with the 47-byte legacy stargz footer on every layer
#       debian ~1 GB of this machine's /usr/lib, /usr/bin, /usr/share/doc and /etc in 3 layers (4 MiB chunks)
#       many   this machine's /usr/share/gocode: tens of thousands of small files, 1 layer
#       entries  one layer whose TOC has 3 M entries (ENTRIES=N for another count): fifos, symlinks, dirs
#       bigchunks  4 files of one 1 GiB chunk each in a ~4 MB layer
# Needs esgz-ref (built by scripts/tools/esgz-ref/build.sh when missing) and skopeo. Pass REGISTRY_CREDS=user:pass for an auth registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
reg="$1"; work="$2"; shift 2
command -v esgz-ref >/dev/null || "$here/esgz-ref/build.sh"
command -v skopeo >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null; }
mkdir -p "$work"
creds=(); [ -n "${REGISTRY_CREDS:-}" ] && creds=(--dest-creds "$REGISTRY_CREDS")
push() { # layout name:tag
  skopeo copy -q --preserve-digests --dest-tls-verify=false "${creds[@]}" "oci:$1:$2" "docker://$reg/$3"
  echo "pushed $reg/$3"
}
for set in "$@"; do
  case "$set" in
  edge|zstd)
    python3 "$here/../../test/fixtures/edge_tars.py" "$work/edge-tars"
    extra=(); [ "$set" = zstd ] && extra=(-zstd)
    rm -rf "$work/$set"
    esgz-ref layout -out "$work/$set" -tag v1 -chunk 65536 "${extra[@]}" "$work"/edge-tars/layer{0,1,2}.tar >/dev/null
    push "$work/$set" v1 "fixtures/$set:v1" ;;
  legacy)
    python3 "$here/../../test/fixtures/edge_tars.py" "$work/edge-tars"
    rm -rf "$work/legacy"
    esgz-ref layout -out "$work/legacy" -tag v1 -chunk 65536 -legacy "$work"/edge-tars/layer{0,1,2}.tar >/dev/null
    push "$work/legacy" v1 "fixtures/legacy:v1" ;;
  mixed)
    python3 "$here/../../test/fixtures/edge_tars.py" "$work/edge-tars"
    rm -rf "$work/mixed"
    esgz-ref layout -out "$work/mixed" -tag v1 -chunk 65536 -plain 0 "$work"/edge-tars/layer{0,1,2}.tar >/dev/null
    push "$work/mixed" v1 "fixtures/mixed:v1" ;;
  debian)
    mkdir -p "$work/debian-tars"
    tar -C / -cf "$work/debian-tars/l0.tar" usr/lib/x86_64-linux-gnu 2>/dev/null || true
    tar -C / -cf "$work/debian-tars/l1.tar" usr/bin 2>/dev/null || true
    tar -C / -cf "$work/debian-tars/l2.tar" usr/share/doc etc 2>/dev/null || true
    rm -rf "$work/debian"
    esgz-ref layout -out "$work/debian" -tag v1 -chunk 4194304 "$work"/debian-tars/l{0,1,2}.tar >/dev/null
    push "$work/debian" v1 "bench/debian:v1" ;;
  many)
    mkdir -p "$work/many-tars"
    tar -C / -cf "$work/many-tars/l0.tar" usr/share/gocode 2>/dev/null || true
    rm -rf "$work/many"
    esgz-ref layout -out "$work/many" -tag v1 "$work/many-tars/l0.tar" >/dev/null
    push "$work/many" v1 "bench/many:v1" ;;
  entries) # one layer whose TOC has ${ENTRIES:-3000000} entries (the memory rows); written by entries_layout.py, see there
    rm -rf "$work/entries"
    python3 "$here/entries_layout.py" "$work/entries" "${ENTRIES:-3000000}"
    push "$work/entries" v1 "bench/entries:v1" ;;
  bigchunks) # 4 files of one 1 GiB (BIGCHUNK=bytes) chunk each in a ~4 MB layer (the memory rows)
    mkdir -p "$work/bigchunks-tars"
    python3 "$here/bigchunk_tar.py" "$work/bigchunks-tars/l0.tar" 4 "${BIGCHUNK:-1073741824}"
    rm -rf "$work/bigchunks"
    esgz-ref layout -out "$work/bigchunks" -tag v1 -chunk "${BIGCHUNK:-1073741824}" "$work/bigchunks-tars/l0.tar" >/dev/null
    rm -rf "$work/bigchunks-tars"
    push "$work/bigchunks" v1 "bench/bigchunks:v1" ;;
  *) echo "unknown set $set" >&2; exit 2 ;;
  esac
done
