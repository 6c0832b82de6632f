#!/usr/bin/env bash
# The vault benchmark of BENCHMARKS.md (issue: encrypted file vault), on loopback, bounded:
#   upload of a 1 GiB vault payload through tus (one streaming PATCH with curl) into `circle serve`,
#   download of it again, and the serving process's memory during the upload, against raw disk
#   write (dd conv=fsync) and read (dd iflag=direct) speed in the same folder, in the same run.
# Usage: [BIN=folder] scripts/bench-vault.sh [size in MiB, default 1024] [folder, default $TMPDIR or /tmp]
#   PERF=1 also records a CPU profile of the server during the upload (perf report -i /tmp/circle-vault-upload.perf).
set -euo pipefail
# The benchmarks measure capacity, not the named rate limits (docs/API.md): their many members
# register from one address and send as fast as the server takes it.
export LIMITS_RATES="register=1000000/1h,prelogin=1000000/1m,directory-name=1000000/1m,directory-id=1000000/1m,message-send=1000000/1m,envelope-post=1000000/1m,upload-create=1000000/1h,link-create=1000000/1h,call-start=1000000/1m"
cd "$(dirname "$0")/.."
MIB=${1:-1024}
BASE=${2:-${TMPDIR:-/tmp}}

# The payload's length: 17 + padme(size) + 16 per 64 KiB chunk (PROTOCOL.md 9.1).
LENGTH=$(python3 -c "
n = $MIB * 1048576
e = n.bit_length() - 1; s = e.bit_length(); mask = (1 << (e - s)) - 1
p = (n + mask) & ~mask
print(17 + p + 16 * max(1, -(-p // 65536)))")
NEED=$(( LENGTH * 3 / 1048576 + 512 ))   # payload, stored file, dd file, and room
FREE=$(df -Pm "$BASE" | awk 'NR==2 {print $4}')
if [ "$FREE" -lt "$NEED" ]; then
  echo "Not enough free disk in $BASE for this benchmark: $FREE MiB free, $NEED MiB needed. Give a smaller size or another folder." >&2
  exit 2
fi

scripts/ensure-deps.sh run
# BIN=folder runs binaries built elsewhere (to compare two builds in one sitting); by default
# this tree's release build.
if [ -z "${BIN:-}" ]; then
  swift build -c release --product circle >/dev/null
  BIN=$PWD/.build/release
fi
DIR=$(mktemp -d "$BASE/circle-vault-bench.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
(cd "$DIR" && AUTH_REGISTRATION=open LOG_LEVEL=warning VAULT_MAX_FILE_SIZE=$((LENGTH * 2)) VAULT_QUOTA=$((LENGTH * 4)) \
  exec "$BIN/circle" serve --http-port "$PORT" >"$DIR/serve.log" 2>&1) &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 200); do curl -sf "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), disk: $(df -P "$BASE" | awk 'NR==2 {print $1}') ($BASE); date: $(date -u +%Y-%m-%dT%H:%MZ)"

echo "Benchmark password" | "$BIN/circle" register --server "$URL" --username bench --password-stdin --state "$DIR/bench.json" >/dev/null
TOKEN=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$DIR/bench.json")

echo "== payload: $MIB MiB of content = $LENGTH bytes stored"
head -c "$LENGTH" /dev/urandom > "$DIR/payload"
SUM=$(sha256sum "$DIR/payload" | cut -d' ' -f1)

echo "== limit: raw disk, same folder"
sync
dd if=/dev/zero of="$DIR/dd.raw" bs=1M count="$MIB" conv=fsync 2>&1 | tail -1 | sed 's/^/write (dd conv=fsync): /'
dd if="$DIR/dd.raw" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1 | sed 's/^/read (dd iflag=direct): /'
# Buffered, as the vault reads (through the page cache and its readahead), when the cache can be dropped.
if sync && echo 1 > /proc/sys/vm/drop_caches 2>/dev/null; then
  dd if="$DIR/dd.raw" of=/dev/null bs=1M 2>&1 | tail -1 | sed 's/^/read (dd, buffered, cold page cache): /'
fi
rm -f "$DIR/dd.raw"

b64() { printf '%s' "$1" | base64 -w0; }
rand64u() { head -c "$1" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
META="fileId $(b64 "$(rand64u 16)"),meta $(b64 "$(rand64u 284)"),wrap $(b64 "$(rand64u 60)")"
LOCATION=$(curl -sS -D - -o /dev/null -X POST "$URL/api/v1/vault/uploads" -H "Authorization: Bearer $TOKEN" \
  -H "Tus-Resumable: 1.0.0" -H "Upload-Length: $LENGTH" -H "Upload-Metadata: $META" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
[ -n "$LOCATION" ] || { echo "upload creation failed" >&2; exit 1; }

rss() { awk '/VmRSS/ {print $2}' /proc/$SERVE/status; }
BEFORE=$(rss)
PEAK=$BEFORE
( while kill -0 $SERVE 2>/dev/null; do rss; sleep 0.1; done ) > "$DIR/rss.log" &
SAMPLER=$!
# PERF=1: a CPU profile of the vault process during the upload (perf), for the evidence.
if [ "${PERF:-}" = 1 ]; then perf record -F 499 -g -p $SERVE -o "${PERF_OUT:-/tmp/circle-vault-upload.perf}" >/dev/null 2>&1 & PERFPID=$!; sleep 0.5; fi
START=$(date +%s.%N)
STATUS=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH -T "$DIR/payload" "$URL$LOCATION" -H "Authorization: Bearer $TOKEN" \
  -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" -H "Content-Type: application/offset+octet-stream" -H "Expect:")
END=$(date +%s.%N)
kill $SAMPLER 2>/dev/null || true
if [ "${PERF:-}" = 1 ]; then kill -INT $PERFPID; wait $PERFPID 2>/dev/null || true; fi
PEAK=$(sort -n "$DIR/rss.log" | tail -1)
[ "$STATUS" = 204 ] || { echo "upload failed: $STATUS" >&2; exit 1; }
python3 -c "import sys; l,s,e=map(float,sys.argv[1:4]); print(f'upload through the vault (tus PATCH, fsynced, hashed): {l/(e-s)/1048576:.0f} MiB/s ({e-s:.2f} s)')" "$LENGTH" "$START" "$END"
echo "vault process memory: RSS $((BEFORE / 1024)) MiB before, peak $((PEAK / 1024)) MiB during the upload: growth $(((PEAK - BEFORE) / 1024)) MiB"

FILE_ID=$(curl -sS "$URL/api/v1/vault/files" -H "Authorization: Bearer $TOKEN" | python3 -c "import json,sys; print(json.load(sys.stdin)['files'][0]['id'])")
# From disk, not the page cache, when this user may drop it (root); otherwise said so.
if sync && echo 1 > /proc/sys/vm/drop_caches 2>/dev/null; then CACHE="cold page cache"; else CACHE="page cache NOT dropped (not root): optimistic"; fi
START=$(date +%s.%N)
curl -sS -o /dev/null "$URL/api/v1/vault/files/$FILE_ID/content" -H "Authorization: Bearer $TOKEN"
END=$(date +%s.%N)
python3 -c "import sys; l,s,e=map(float,sys.argv[1:4]); print(f'download through the vault (curl to /dev/null, {sys.argv[4]}): {l/(e-s)/1048576:.0f} MiB/s ({e-s:.2f} s)')" "$LENGTH" "$START" "$END" "$CACHE"
# Again from the page cache: the vault's own cost without the disk.
START=$(date +%s.%N)
curl -sS -o /dev/null "$URL/api/v1/vault/files/$FILE_ID/content" -H "Authorization: Bearer $TOKEN"
END=$(date +%s.%N)
python3 -c "import sys; l,s,e=map(float,sys.argv[1:4]); print(f'download through the vault (curl to /dev/null, warm page cache): {l/(e-s)/1048576:.0f} MiB/s ({e-s:.2f} s)')" "$LENGTH" "$START" "$END"
# Then once more into sha256sum, to check the bytes (sha256sum's own speed bounds this one).
[ "$(curl -sS "$URL/api/v1/vault/files/$FILE_ID/content" -H "Authorization: Bearer $TOKEN" | sha256sum | cut -d' ' -f1)" = "$SUM" ] \
  && echo "downloaded bytes match the upload (sha256)" || { echo "download differs" >&2; exit 1; }
