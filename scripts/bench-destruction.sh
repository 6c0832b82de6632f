#!/usr/bin/env bash
# The destruction benchmark of BENCHMARKS.md, on loopback, bounded in time: `circle serve` on a
# fresh data folder (SQLite, the embedded default; or, with ENGINE=postgres, on a fresh database
# of the PostgreSQL and Redis that scripts/with-test-servers.sh starts, the scaled mode in one
# process); an account with M messages and B bytes of files written into its storage; its
# destruction timed to unreadable and to gone while two other members exchange messages one at a
# time (their latency compared with idle), and the CPU it costs.
# Usage: scripts/bench-destruction.sh [messages] [vault-bytes]
#        ENGINE=postgres scripts/with-test-servers.sh scripts/bench-destruction.sh [messages] [vault-bytes]
# BIN=folder runs binaries built elsewhere (default: a release build here).
set -euo pipefail
# The benchmarks measure capacity, not the named rate limits (docs/API.md): their many members
# register from one address and send as fast as the server takes it.
export LIMITS_RATES="register=1000000/1h,prelogin=1000000/1m,directory-name=1000000/1m,directory-id=1000000/1m,message-send=1000000/1m,envelope-post=1000000/1m,upload-create=1000000/1h,link-create=1000000/1h,call-start=1000000/1m"
cd "$(dirname "$0")/.."
MESSAGES=${1:-100000}
BYTES=${2:-1073741824}

if [ -z "${BIN:-}" ]; then
  for product in circle circle-bench; do swift build -c release --product $product >/dev/null; done
  BIN=.build/release
fi
DATA=$(mktemp -d /tmp/circle-destruction.XXXXXX)
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
if [ "${ENGINE:-sqlite}" = postgres ]; then
  : "${CIRCLE_TEST_POSTGRES_URL:?run under scripts/with-test-servers.sh}" "${CIRCLE_TEST_REDIS_URL:?run under scripts/with-test-servers.sh}"
  NAME="bench_destruction_$(date +%s)"
  psql "$CIRCLE_TEST_POSTGRES_URL" -q -c "CREATE DATABASE $NAME"
  STORAGE=(--postgres-url "${CIRCLE_TEST_POSTGRES_URL%/*}/$NAME")
  SERVE=("${STORAGE[@]}" --redis-url "$CIRCLE_TEST_REDIS_URL" --redis-prefix "bench:$NAME:")
  # The scaled mode takes its secrets from the environment, never from generated files.
  AUTH_PEPPER=$(head -c 32 /dev/urandom | base64)
  ACTIVITY_KEYS="bench:$(head -c 32 /dev/urandom | base64)"
  export AUTH_PEPPER ACTIVITY_KEYS
else
  STORAGE=(--sqlite-path "$DATA/circle.sqlite")
  SERVE=("${STORAGE[@]}")
fi
echo "engine: ${ENGINE:-sqlite}"
$BIN/circle serve --http-port "$PORT" --auth-registration open --log-level warning "${SERVE[@]}" \
  --auth-pepper-file "$DATA/pepper.key" --activity-key-file "$DATA/activity.key" --vault-path "$DATA/vault" >"$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr); date: $(date -u +%Y-%m-%dT%H:%MZ)"
timeout 1800 $BIN/circle-bench destruction --url "http://127.0.0.1:$PORT" "${STORAGE[@]}" --vault-path "$DATA/vault" \
  --messages "$MESSAGES" --vault-bytes "$BYTES" --cpu "server=$SERVER"
echo "== limit, same disk: writing and removing the same bytes as plain files"
mkdir -p "$DATA/raw"
python3 - "$DATA/raw" "$BYTES" <<'PY'
import os, sys, time
folder, total = sys.argv[1], int(sys.argv[2])
size = 4 << 20
block = os.urandom(size)
names = []
for i in range(max(1, total // size)):
    path = os.path.join(folder, f"{i:06d}")
    with open(path, "wb") as f:
        f.write(block)
    names.append(path)
os.sync()
start = time.monotonic()
for path in names:
    os.remove(path)
fd = os.open(folder, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
elapsed = time.monotonic() - start
print(f"removed {len(names)} files of {size} bytes in {elapsed * 1000:.0f} ms ({len(names) * size / elapsed / 1e6:.0f} MB/s)")
PY
