#!/usr/bin/env bash
# The presence benchmark of BENCHMARKS.md, on loopback, bounded in time: N members, each in K
# conversations of G members, all connected to one gateway; presence changes and typing frames
# measured from the change to its arrival at every online contact (or member), the presence
# service's memory per online member, and each process's CPU per presence delivery. Then the
# machine's limits, with Circle stopped: the same typing fan-out done by Redis pub/sub alone
# (circle-bench fanout-limit), and raw Redis PUBLISH.
# Usage: scripts/bench-presence.sh [users] [per-user] [group-size] [typing-rate] [typing-seconds]
# BIN=folder runs binaries built elsewhere (default: a release build here).
set -euo pipefail
# The benchmarks measure capacity, not the named rate limits (docs/API.md): their many members
# register from one address and send as fast as the server takes it.
export LIMITS_RATES="register=1000000/1h,prelogin=1000000/1m,directory-name=1000000/1m,directory-id=1000000/1m,message-send=1000000/1m,envelope-post=1000000/1m,upload-create=1000000/1h,link-create=1000000/1h,call-start=1000000/1m"
cd "$(dirname "$0")/.."
USERS=${1:-10000}
PER_USER=${2:-20}
GROUP=${3:-50}
TYPING=${4:-1000}
TYPING_SECONDS=${5:-10}

scripts/ensure-deps.sh test
if [ -z "${BIN:-}" ]; then
  for product in circle circle-gateway circle-messaging circle-presence circle-bench; do swift build -c release --product $product >/dev/null; done
  BIN=.build/release
fi

scripts/with-test-servers.sh bash -c '
set -euo pipefail
BIN='"$BIN"'
ulimit -n 65536 || true
export POSTGRES_URL=$CIRCLE_TEST_POSTGRES_URL REDIS_URL=$CIRCLE_TEST_REDIS_URL REDIS_PREFIX=bench:
export AUTH_PEPPER=$(head -c 32 /dev/urandom | base64) ACTIVITY_KEYS=b1:$(head -c 32 /dev/urandom | base64)
export AUTH_REGISTRATION=open LOG_LEVEL=warning POSTGRES_POOL_SIZE=20
$BIN/circle migrate >/dev/null
port() { python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])"; }
GWP=$(port); MSP=$(port); PRP=$(port)
$BIN/circle-gateway --http-port $GWP & GW=$!
$BIN/circle-messaging --http-port $MSP & MS=$!
$BIN/circle-presence --http-port $PRP & PR=$!
trap "kill $GW $MS $PR 2>/dev/null || true; wait $GW $MS $PR 2>/dev/null || true" EXIT
for p in $GWP $MSP $PRP; do for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$p/readyz >/dev/null && break; sleep 0.1; done; done
echo "machine: $(nproc) cores, $(free -g | awk "/Mem:/{print \$2}") GiB, $(uname -sr); date: $(date -u +%Y-%m-%dT%H:%MZ)"
timeout 1800 $BIN/circle-bench presence --url http://127.0.0.1:$GWP --messaging-url http://127.0.0.1:$MSP --presence-url http://127.0.0.1:$PRP \
  --users '"$USERS"' --per-user '"$PER_USER"' --group-size '"$GROUP"' --typing-rate '"$TYPING"' --typing-seconds '"$TYPING_SECONDS"' --presence-pid $PR \
  --cpu gateway=$GW,presence=$PR,messaging=$MS,postgres=$CIRCLE_TEST_POSTGRES_PID,redis=$CIRCLE_TEST_REDIS_PID
kill $GW $MS $PR 2>/dev/null || true; wait $GW $MS $PR 2>/dev/null || true
echo "== limit: the typing fan-out by Redis pub/sub alone, Circle stopped"
timeout 900 $BIN/circle-bench fanout-limit --redis $REDIS_URL --users '"$USERS"' --per-user '"$PER_USER"' --group-size '"$GROUP"' \
  --rate '"$TYPING"' --seconds '"$TYPING_SECONDS"' --cpu redis=$CIRCLE_TEST_REDIS_PID
echo "== limit: raw Redis PUBLISH (redis-benchmark, 50 clients, no pipelining)"
redis-benchmark -p ${REDIS_URL##*:} -n 200000 -c 50 -q PUBLISH bench:raw hello | tr "\r" "\n" | tail -n 1
'
