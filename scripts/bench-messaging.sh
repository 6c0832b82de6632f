#!/usr/bin/env bash
# The messaging benchmark of BENCHMARKS.md (issue: end-to-end messaging), on loopback, bounded:
#   end-to-end messages (CircleKit: sealed, sent over HTTP, stored, delivered over the socket,
#   verified and decrypted) in the embedded mode (circle serve, SQLite) and in the scaled mode
#   (circle-gateway + circle-messaging behind nginx, PostgreSQL + Redis), with, in the same run,
#   the limits: pgbench's raw single-row INSERT transactions and redis-benchmark's raw PUBLISH.
# Usage: [BIN=folder] scripts/bench-messaging.sh [embedded|scaled|both] [extra circle-bench messages options]
set -euo pipefail
# The benchmarks measure capacity, not the named rate limits (docs/API.md): their many members
# register from one address and send as fast as the server takes it.
export LIMITS_RATES="register=1000000/1h,prelogin=1000000/1m,directory-name=1000000/1m,directory-id=1000000/1m,message-send=1000000/1m,envelope-post=1000000/1m,upload-create=1000000/1h,link-create=1000000/1h,call-start=1000000/1m"
cd "$(dirname "$0")/.."
MODE=${1:-both}
shift || true
EXTRA="$*"

scripts/ensure-deps.sh test
# BIN=folder runs binaries built elsewhere (to compare two builds in one sitting); by default
# this tree's release build.
if [ -z "${BIN:-}" ]; then
  for product in circle circle-gateway circle-messaging circle-bench; do swift build -c release --product $product >/dev/null; done
  BIN=$PWD/.build/release
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do curl -sf "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr); date: $(date -u +%Y-%m-%dT%H:%MZ)"

if [ "$MODE" = embedded ] || [ "$MODE" = both ]; then
  DIR=$(mktemp -d)
  PORT=$(free_port)
  (cd "$DIR" && AUTH_REGISTRATION=open LOG_LEVEL=warning exec "$BIN/circle" serve --http-port "$PORT") &
  SERVE=$!
  trap 'kill $SERVE 2>/dev/null || true; rm -rf "$DIR"' EXIT
  wait_ready "http://127.0.0.1:$PORT"
  echo "== embedded: circle serve (SQLite, in-process bus)"
  timeout 900 "$BIN/circle-bench" messages --url "http://127.0.0.1:$PORT" --cpu "circle=$SERVE" $EXTRA
  echo "== limit: raw SQLite, one-row INSERT transactions (WAL, synchronous=FULL, like circle serve)"
  python3 - "$DIR/raw.sqlite" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
payload = b"x" * 300
n, start = 0, time.time()
while time.time() - start < 5:
    db.execute("BEGIN IMMEDIATE"); db.execute("INSERT INTO t (body) VALUES (?)", (payload,)); db.execute("COMMIT"); n += 1
print(f"{n / (time.time() - start):.0f} transactions/s")
PY
  kill $SERVE; wait $SERVE 2>/dev/null || true
  trap - EXIT
  rm -rf "$DIR"
fi

if [ "$MODE" = scaled ] || [ "$MODE" = both ]; then
  CPU_SAMPLE_AT="${CPU_SAMPLE_AT:-}" CIRCLE_TEST_PG_DURABLE=1 BIN="$BIN" EXTRA="$EXTRA" scripts/with-test-servers.sh bash -c '
  set -euo pipefail
  free_port() { python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])"; }
  wait_ready() { for _ in $(seq 1 200); do curl -sf "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
  export POSTGRES_URL=$CIRCLE_TEST_POSTGRES_URL REDIS_URL=$CIRCLE_TEST_REDIS_URL REDIS_PREFIX=bench:
  export AUTH_PEPPER=$(head -c 32 /dev/urandom | base64) ACTIVITY_KEYS=b1:$(head -c 32 /dev/urandom | base64) AUTH_REGISTRATION=open LOG_LEVEL=warning
  $BIN/circle migrate >/dev/null
  GW=$(free_port); MS=$(free_port); NX=$(free_port); NDIR=$(mktemp -d)
  LOGS=${TMPDIR:-/tmp}/circle-bench-logs; mkdir -p $LOGS
  $BIN/circle-gateway --http-port $GW >$LOGS/gateway.log 2>&1 & GWP=$!
  $BIN/circle-messaging --http-port $MS >$LOGS/messaging.log 2>&1 & MSP=$!
  mkdir -p $NDIR/tmp
  cat > $NDIR/nginx.conf <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $NDIR/nginx.pid;
error_log $NDIR/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $NDIR/tmp/body; proxy_temp_path $NDIR/tmp/proxy; fastcgi_temp_path $NDIR/tmp/f; uwsgi_temp_path $NDIR/tmp/u; scgi_temp_path $NDIR/tmp/s;
  map \$http_upgrade \$connection_upgrade { default upgrade; "" close; }
  upstream gateway { server 127.0.0.1:$GW; keepalive 64; }
  # The socket gets fresh connections: the gateway upgrades only the first request of a connection.
  upstream gateway_ws { server 127.0.0.1:$GW; }
  upstream messaging { server 127.0.0.1:$MS; keepalive 64; }
  server {
    listen 127.0.0.1:$NX;
    proxy_http_version 1.1;
    location = /api/v1/events { proxy_pass http://gateway_ws; proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade; proxy_read_timeout 300s; }
    location /api/v1/conversations { proxy_pass http://messaging; proxy_set_header Connection ""; }
    location / { proxy_pass http://gateway; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c $NDIR/nginx.conf -p $NDIR -g "daemon off;" & NXP=$!
  trap "kill $GWP $MSP $NXP 2>/dev/null; wait 2>/dev/null; cp $NDIR/error.log $LOGS/nginx-error.log 2>/dev/null; rm -rf $NDIR" EXIT
  wait_ready http://127.0.0.1:$GW; wait_ready http://127.0.0.1:$MS
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$NX/api/v1/server >/dev/null && break; sleep 0.1; done
  echo "== scaled: circle-gateway + circle-messaging behind nginx, PostgreSQL + Redis (logs in $LOGS)"
  if [ -n "${CPU_SAMPLE_AT:-}" ]; then (sleep $CPU_SAMPLE_AT; echo "-- CPU by process, ${CPU_SAMPLE_AT}s in:"; top -b -n 1 -w 200 | sed -n "7,16p") & fi
  timeout 900 $BIN/circle-bench messages --url http://127.0.0.1:$NX --cpu "messaging=$MSP,gateway=$GWP,nginx=$NXP,postgres=$CIRCLE_TEST_POSTGRES_PID,redis=$CIRCLE_TEST_REDIS_PID" $EXTRA
  echo "== limit: raw PostgreSQL, one-row INSERT transactions (pgbench, 5 s each; fsync on, synchronous_commit on)"
  PGPORT=$(echo $CIRCLE_TEST_POSTGRES_URL | sed -E "s#.*:([0-9]+)/.*#\1#")
  PGUSER=$(echo $CIRCLE_TEST_POSTGRES_URL | sed -E "s#postgres://([^@:]+).*#\1#")
  PGDB=$(echo $CIRCLE_TEST_POSTGRES_URL | sed -E "s#.*/([^/?]+).*#\1#")
  psql -h 127.0.0.1 -p $PGPORT -U $PGUSER -d $PGDB -qc "CREATE TABLE IF NOT EXISTS raw_bench (id BIGSERIAL PRIMARY KEY, body BYTEA)" >/dev/null
  echo "INSERT INTO raw_bench (body) VALUES (convert_to(repeat(chr(120), 300), chr(85)||chr(84)||chr(70)||chr(56)));" > $NDIR/insert.sql
  for clients in 1 8 32; do
    echo "$clients clients: $(/usr/lib/postgresql/15/bin/pgbench -h 127.0.0.1 -p $PGPORT -U $PGUSER -n -c $clients -j 2 -T 5 -f $NDIR/insert.sql $PGDB 2>&1 | grep -E "^tps")"
  done
  echo "== limit: raw Redis PUBLISH (redis-benchmark, 50 clients, no pipelining)"
  redis-benchmark -p ${REDIS_URL##*:} -n 200000 -c 50 -q PUBLISH bench:raw hello | tr "\r" "\n" | tail -n 1
  '
fi
