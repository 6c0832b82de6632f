#!/usr/bin/env bash
# Starts compose.yaml for real under podman and drives it (issue 20's compose test):
#   1. builds the images compose.yaml names from Debian's packages (mmdebstrap, podman import;
#      deploy/local-images) and the Circle image from the binaries built here;
#   2. runs Tests/Compose: `up` with two replicas of every service (deploy/compose.local.yaml),
#      every /readyz, the browser flow through nginx (register, message, upload, share link),
#      messaging scaled to 3 and back while a member sends, then `down -v`.
# Usage: scripts/compose-test.sh            (CIRCLE_BUILD_DIR: the binaries, .build/debug)
# Bounded: each step has a time limit and the test stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${CIRCLE_BUILD_DIR:-$ROOT/.build/debug}
WORK=$ROOT/.build/compose-test
mkdir -p "$WORK"

scripts/ensure-deps.sh compose

# podman as this machine runs it: runc under cgroupfs, the host's limits kept (no default ulimits
# to raise), events to a file (no journald here), netavark with aardvark-dns (service names resolve).
export CONTAINERS_CONF=$WORK/containers.conf
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF

for exe in circle circle-gateway circle-messaging circle-vault circle-presence circle-signaling circle-cleanup; do
  [ -x "$BUILD_DIR/$exe" ] || { echo "compose-test: $BUILD_DIR/$exe is missing: run swift build first" >&2; exit 1; }
done

# The base root filesystem, rebuilt only when its package list changes.
PACKAGES=postgresql-15,redis-server,nginx-light,coturn,libhiredis0.14,libstdc++6,zlib1g,ca-certificates,tzdata,procps
BASE_TAG=$(printf '%s bookworm' "$PACKAGES" | sha256sum | cut -c1-12)
if ! podman image exists "localhost/circle-test/base:$BASE_TAG"; then
  echo "compose-test: building the base image from Debian's packages ($PACKAGES)"
  rm -f "$WORK/base.tar"
  timeout 600 mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$WORK/base.tar"
  podman import --quiet "$WORK/base.tar" "localhost/circle-test/base:$BASE_TAG" >/dev/null
  rm -f "$WORK/base.tar"
fi
podman tag "localhost/circle-test/base:$BASE_TAG" localhost/circle-test/base:latest

# The Circle image's context: the executables (without their debug symbols) and the Swift runtime
# their RUNPATH names.
CONTEXT=$WORK/circle-image
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT/bin" "$CONTEXT/swift"
for exe in circle circle-gateway circle-messaging circle-vault circle-presence circle-signaling circle-cleanup; do
  strip --strip-debug -o "$CONTEXT/bin/$exe" "$BUILD_DIR/$exe"
done
SWIFT_LIB=$(readelf -d "$BUILD_DIR/circle" | sed -n 's/.*RUNPATH.*\[\([^:]*\).*/\1/p')
cp -L "$SWIFT_LIB"/*.so "$CONTEXT/swift/"

build() { # build NAME CONTAINERFILE CONTEXT
  timeout 300 podman build --quiet --pull=never -t "localhost/circle-test/$1" -f "deploy/local-images/$2" "$3" >/dev/null
}
echo "compose-test: building the images"
build postgres:15 postgres.Containerfile deploy/local-images
build redis:7 redis.Containerfile deploy/local-images
build nginx:1.27 nginx.Containerfile deploy/local-images
build coturn:latest coturn.Containerfile deploy/local-images
build circle:latest circle.Containerfile "$CONTEXT"
rm -rf "$CONTEXT"

echo "compose-test: starting the stack and driving it"
timeout -k 30 1200 python3 -m pytest -q -p no:cacheprovider Tests/Compose "$@"
