#!/usr/bin/env bash
# The gateway benchmark of BENCHMARKS.md, on loopback, bounded in time:
#   (a) N idle authenticated sockets on one gateway: its resident memory per connection;
#   (b) events published through Redis to M connected users: delivered/s and latency;
#   and, in the same run, redis-benchmark's raw PUBLISH rate as the limit.
# Usage: scripts/bench-gateway.sh [connections] [users] [rate] [seconds]
# BIN=folder runs binaries built elsewhere (default: a release build here).
set -euo pipefail
# The benchmarks measure capacity, not the named rate limits (docs/API.md): their many members
# register from one address and send as fast as the server takes it.
export LIMITS_RATES="register=1000000/1h,prelogin=1000000/1m,directory-name=1000000/1m,directory-id=1000000/1m,message-send=1000000/1m,envelope-post=1000000/1m,upload-create=1000000/1h,link-create=1000000/1h,call-start=1000000/1m"
cd "$(dirname "$0")/.."
CONNECTIONS=${1:-10000}
USERS=${2:-100}
RATE=${3:-5000}
SECONDS_=${4:-10}

scripts/ensure-deps.sh test
if [ -z "${BIN:-}" ]; then
  for product in circle circle-gateway circle-bench; do swift build -c release --product $product >/dev/null; done
  BIN=.build/release
fi

scripts/with-test-servers.sh bash -c '
set -euo pipefail
BIN='"$BIN"'
ulimit -n 65536 || true
export POSTGRES_URL=$CIRCLE_TEST_POSTGRES_URL REDIS_URL=$CIRCLE_TEST_REDIS_URL REDIS_PREFIX=bench:
export AUTH_PEPPER=$(head -c 32 /dev/urandom | base64) ACTIVITY_KEYS=b1:$(head -c 32 /dev/urandom | base64) AUTH_REGISTRATION=open LOG_LEVEL=warning
# The idle sockets share a few sessions of one member: the per-session and per-member caps are lifted.
export SOCKET_MAX_PER_SESSION=100000 SOCKET_MAX_PER_USER=100000
$BIN/circle migrate >/dev/null
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])")
$BIN/circle-gateway --http-port $PORT &
GW=$!
trap "kill $GW 2>/dev/null; wait $GW 2>/dev/null || true" EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk "/Mem:/{print \$2}") GiB, $(uname -sr); date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== (a) idle connections"
timeout 600 $BIN/circle-bench connections --url http://127.0.0.1:$PORT --pid $GW --count '"$CONNECTIONS"'
echo "== (b) events through Redis"
timeout 300 $BIN/circle-bench events --url http://127.0.0.1:$PORT --redis-url $REDIS_URL --redis-prefix bench: --users '"$USERS"' --rate '"$RATE"' --duration '"$SECONDS_"'
echo "== limit: raw Redis PUBLISH (redis-benchmark, 50 clients, no pipelining)"
redis-benchmark -p ${REDIS_URL##*:} -n 200000 -c 50 -q PUBLISH bench:raw hello | tail -n 1
'
