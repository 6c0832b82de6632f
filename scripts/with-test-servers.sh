#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL, Redis and S3-compatible store (moto's server mode)
# on free loopback ports, exported as CIRCLE_TEST_POSTGRES_URL, CIRCLE_TEST_REDIS_URL and
# CIRCLE_TEST_S3_URL; stops both by pid afterwards, whatever
# the command's outcome, and exits with the command's status. Also lifts two named rate limits
# (LIMITS_RATES, below) for the servers the suites start.
set -euo pipefail

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
work=$(mktemp -d /tmp/circle-test-servers.XXXXXX)
chmod 755 "$work"
pg_pid=""
redis_pid=""
s3_pid=""

cleanup() {
  status=$?
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null && wait "$s3_pid" 2>/dev/null || true
  if [ -n "$pg_pid" ]; then
    # The postmaster's own pid (under runuser, $pg_pid is runuser's), from its pid file.
    real=$(head -n 1 "$work/pg/data/postmaster.pid" 2>/dev/null || true)
    for pid in $real $pg_pid; do kill -INT "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
      alive=0
      for pid in $real $pg_pid; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    for pid in $real $pg_pid; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT INT TERM

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  as_pg=(runuser -u postgres --)
fi
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
pg_port=$(free_port)
# Tests trade durability for speed; benchmarks (CIRCLE_TEST_PG_DURABLE=1) keep PostgreSQL's defaults.
pg_speed=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
[ "${CIRCLE_TEST_PG_DURABLE:-0}" = 1 ] && pg_speed=(-c fsync=on)
# Extra server settings for profiling, e.g. CIRCLE_TEST_PG_OPTS="-c shared_preload_libraries=pg_stat_statements".
read -r -a pg_extra <<<"${CIRCLE_TEST_PG_OPTS:-}"
"${as_pg[@]}" "$pgbin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
  -c listen_addresses=127.0.0.1 "${pg_speed[@]}" \
  -c max_connections=400 "${pg_extra[@]}" >"$work/postgres.log" 2>&1 &
pg_pid=$!

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!

for _ in $(seq 1 100); do
  "$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q && break
  kill -0 "$pg_pid" 2>/dev/null || { cat "$work/postgres.log" >&2; exit 1; }
  sleep 0.1
done
"$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port" -q || { echo "PostgreSQL did not start" >&2; cat "$work/postgres.log" >&2; exit 1; }
for _ in $(seq 1 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { echo "Redis did not start" >&2; cat "$work/redis.log" >&2; exit 1; }

# moto keeps objects in memory; it checks S3's rules the vault relies on (5 MiB parts but the last)
# and, after the three calls that make the test's access key, every request's SigV4 signature.
s3_port=$(free_port)
s3_up() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5)' "$s3_port" 2>/dev/null; }
INITIAL_NO_AUTH_ACTION_COUNT=3 python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >"$work/s3.log" 2>&1 &
s3_pid=$!
for _ in $(seq 1 100); do
  s3_up && break
  kill -0 "$s3_pid" 2>/dev/null || { cat "$work/s3.log" >&2; exit 1; }
  sleep 0.1
done
s3_up || { echo "moto (S3) did not start" >&2; cat "$work/s3.log" >&2; exit 1; }

export CIRCLE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export CIRCLE_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
export CIRCLE_TEST_S3_URL="http://127.0.0.1:$s3_port"
read -r CIRCLE_TEST_S3_ACCESS_KEY CIRCLE_TEST_S3_SECRET_KEY < <(python3 "$(dirname "$0")/s3-test-keys.py" "$CIRCLE_TEST_S3_URL")
export CIRCLE_TEST_S3_ACCESS_KEY CIRCLE_TEST_S3_SECRET_KEY
# For benchmarks that account CPU time per process.
export CIRCLE_TEST_POSTGRES_PID=$pg_pid CIRCLE_TEST_REDIS_PID=$redis_pid
# Servers the suites start register hundreds of members and sign in over and over from one
# address: those two named limits are lifted (as TestServers.lenientRateLimits); the others keep
# their defaults, and a test of a limit sets its own.
export LIMITS_RATES="${LIMITS_RATES:-register=1000000/1h,prelogin=1000000/1m}"
echo "Test servers: PostgreSQL on 127.0.0.1:$pg_port (pid $pg_pid), Redis on 127.0.0.1:$redis_port (pid $redis_pid), S3 (moto) on 127.0.0.1:$s3_port (pid $s3_pid)"
set +e
"$@"
status=$?
set -e
exit $status
