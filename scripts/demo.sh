#!/usr/bin/env bash
# The quick-start demo: starts a throwaway local registry (Debian's docker-registry),
# pushes the committed edge-case eStargz image into it with skopeo, then shows
# stargz-get's commands against it: info, ls, sync of one path, and (as root with
# /dev/fuse) a lazy mount. Everything it starts is stopped and removed on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sg() { node "$root/bin/stargz-get" "$@"; }
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else echo "demo needs: ${need[*]} (apt-get install ${need[*]})" >&2; exit 1; fi
fi
[ -f "$root/dist/src/cli/main.js" ] || (cd "$root" && npm run --silent build)

work="$(mktemp -d /tmp/stargz-demo-XXXXXX)"
mnt="$work/mnt"
reg_pid=""
cleanup() {
  [ -d "$mnt" ] && mountpoint -q "$mnt" 2>/dev/null && sg umount "$mnt" >/dev/null 2>&1 || true
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/storage"
cat >"$work/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$root/test/fixtures/layouts/edge:v1" "docker://127.0.0.1:$port/demo/edge:v1"
img="127.0.0.1:$port/demo/edge:v1"
export STARGZ_GET_DEMO=1
run() { printf '\n\033[1m$ stargz-get %s\033[0m\n' "$*"; sg "$@"; }
run info "$img" --cache-dir "$work/cache"
run ls -l "$img/etc" --cache-dir "$work/cache"
run sync "$img/etc" "$work/etc" --cache-dir "$work/cache"
printf '\n$ ls -l %s\n' "$work/etc"; ls -l "$work/etc"
run sync "$img/etc" "$work/etc-again" --cache-dir "$work/cache"
if [ "$(id -u)" = 0 ] && [ -e /dev/fuse ] && command -v fusermount >/dev/null; then
  mkdir -p "$mnt"
  run mount -d "$img" "$mnt" --cache-dir "$work/cache"
  printf '\n$ ls -la %s/bin && sha256sum %s/bin/tool\n' "$mnt" "$mnt"
  ls -la "$mnt/bin"; sha256sum "$mnt/bin/tool"
  run umount "$mnt"
else
  echo; echo "(mount skipped: needs root, /dev/fuse and fusermount)"
fi
echo; echo "demo done."
