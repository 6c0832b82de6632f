#!/usr/bin/env bash
# A chaos run on the process topology (Tests/Deploy/chaos.py): two replicas of every service behind
# nginx on their own PostgreSQL and Redis, CircleKit clients as the load, a replica SIGKILLed every
# 20 s, Redis and PostgreSQL restarted twice each; fails if anything acknowledged was lost or
# repeated, or a fault's catch-up took over 5 s.
#   scripts/chaos.sh [minutes]    (default 10; uses the binaries in CIRCLE_BUILD_DIR or .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
export CIRCLE_BUILD_DIR="${CIRCLE_BUILD_DIR:-$PWD/.build/debug}"
for binary in circle circle-bench circle-gateway circle-messaging circle-vault circle-presence circle-signaling circle-cleanup; do
  [ -x "$CIRCLE_BUILD_DIR/$binary" ] || { echo "$CIRCLE_BUILD_DIR/$binary is missing: run \`swift build\` (or make build) first" >&2; exit 1; }
done
exec python3 Tests/Deploy/chaos.py --seconds "$((minutes * 60))" "${@:2}"
