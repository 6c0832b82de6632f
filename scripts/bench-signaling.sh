#!/usr/bin/env bash
# The calls benchmark of BENCHMARKS.md, on loopback, bounded in time: N calls between new
# members through two signaling replicas (scaled mode: PostgreSQL, Redis), each call started on
# one replica, answered on the other, and relaying sealed signals one at a time, alternating
# replicas; signal latency from the POST to its arrival on the caller's socket, the floor of an
# HTTP round trip in the same run, and each process's CPU per signal. Then the time from
# "accept" to the first decoded video frame on both sides, over N calls between two Chromium
# pages with fake devices (scripts/bench-call-media.py).
# Usage: scripts/bench-signaling.sh [calls] [signals-per-call] [calls-at-once]
# BIN=folder runs binaries built elsewhere (default: a release build here).
set -euo pipefail
# The benchmarks measure capacity, not the named rate limits (docs/API.md): their many members
# register from one address and send as fast as the server takes it.
export LIMITS_RATES="register=1000000/1h,prelogin=1000000/1m,directory-name=1000000/1m,directory-id=1000000/1m,message-send=1000000/1m,envelope-post=1000000/1m,upload-create=1000000/1h,link-create=1000000/1h,call-start=1000000/1m"
cd "$(dirname "$0")/.."
CALLS=${1:-50}
SIGNALS=${2:-20}
PARALLEL=${3:-5}

scripts/ensure-deps.sh test
if [ -z "${BIN:-}" ]; then
  for product in circle circle-gateway circle-messaging circle-signaling circle-bench; do swift build -c release --product $product >/dev/null; done
  BIN=.build/release
fi
BIN=$(cd "$BIN" && pwd)

scripts/with-test-servers.sh bash -c '
set -euo pipefail
BIN='"$BIN"'
export POSTGRES_URL=$CIRCLE_TEST_POSTGRES_URL REDIS_URL=$CIRCLE_TEST_REDIS_URL REDIS_PREFIX=bench:
export AUTH_PEPPER=$(head -c 32 /dev/urandom | base64) ACTIVITY_KEYS=b1:$(head -c 32 /dev/urandom | base64)
export AUTH_REGISTRATION=open LOG_LEVEL=warning
$BIN/circle migrate >/dev/null
port() { python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])"; }
GWP=$(port); MSP=$(port); SAP=$(port); SBP=$(port)
$BIN/circle-gateway --http-port $GWP & GW=$!
$BIN/circle-messaging --http-port $MSP & MS=$!
$BIN/circle-signaling --http-port $SAP & SA=$!
$BIN/circle-signaling --http-port $SBP & SB=$!
trap "kill $GW $MS $SA $SB 2>/dev/null; wait $GW $MS $SA $SB 2>/dev/null || true" EXIT
for p in $GWP $MSP $SAP $SBP; do for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$p/readyz >/dev/null && break; sleep 0.1; done; done
echo "machine: $(nproc) cores, $(free -g | awk "/Mem:/{print \$2}") GiB, $(uname -sr); date: $(date -u +%Y-%m-%dT%H:%MZ)"
timeout 900 $BIN/circle-bench signaling --url http://127.0.0.1:$GWP --messaging-url http://127.0.0.1:$MSP \
  --signaling-urls http://127.0.0.1:$SAP,http://127.0.0.1:$SBP --calls '"$CALLS"' --signals '"$SIGNALS"' --parallel '"$PARALLEL"' \
  --cpu gateway=$GW,signaling-a=$SA,signaling-b=$SB,postgres=$CIRCLE_TEST_POSTGRES_PID,redis=$CIRCLE_TEST_REDIS_PID
'
[ -n "${SKIP_MEDIA:-}" ] && exit 0
echo "== accept to first decoded frame (circle serve, two Chromium pages, fake devices)"
CIRCLE_BUILD_DIR=$BIN timeout 1200 python3 scripts/bench-call-media.py --calls "$CALLS"
