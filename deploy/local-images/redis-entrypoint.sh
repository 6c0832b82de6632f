#!/bin/sh
# Runs redis-server as the public image does: protected mode off (it is compiled off there), as
# the redis user. Anything else runs as given (healthchecks: redis-cli ping).
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec runuser -u redis -- redis-server --protected-mode no "$@"
fi
exec "$@"
