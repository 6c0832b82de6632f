#!/usr/bin/env bash
# Makes sure what Circle needs from the system is installed.
#   ensure-deps.sh run    what `make run` needs: the hiredis headers to build
#   ensure-deps.sh test   what `make test` needs: also PostgreSQL, Redis, nginx, coturn, Chromium
#                         and the Python test packages (pytest, Playwright, axe, schemathesis)
#   ensure-deps.sh compose what `make compose-test` needs: also podman (with runc, netavark,
#                         aardvark-dns and iptables), mmdebstrap and podman-compose 1.0.6 from PyPI (Debian's
#                         1.0.3 cannot start coturn's `network_mode: host`)
# As root, missing packages are installed with apt-get/pip; otherwise the exact command is printed.
set -euo pipefail
mode=${1:-run}

missing_apt=()
command -v pkg-config >/dev/null 2>&1 || missing_apt+=(pkg-config)
[ -f /usr/include/hiredis/hiredis.h ] || missing_apt+=(libhiredis-dev)
compose=false
if [ "$mode" = compose ]; then
  compose=true
  command -v podman >/dev/null 2>&1 || missing_apt+=(podman)
  command -v runc >/dev/null 2>&1 || missing_apt+=(runc)
  [ -x /usr/lib/podman/netavark ] || command -v netavark >/dev/null 2>&1 || missing_apt+=(netavark)
  [ -x /usr/lib/podman/aardvark-dns ] || command -v aardvark-dns >/dev/null 2>&1 || missing_apt+=(aardvark-dns)
  # netavark sets up the bridge networks' NAT with iptables (podman only recommends it).
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing_apt+=(iptables)
  command -v mmdebstrap >/dev/null 2>&1 || missing_apt+=(mmdebstrap)
  command -v strip >/dev/null 2>&1 || missing_apt+=(binutils)
  mode=test
fi
if [ "$mode" = test ]; then
  command -v redis-server >/dev/null 2>&1 || missing_apt+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing_apt+=(postgresql)
  command -v nginx >/dev/null 2>&1 || missing_apt+=(nginx)
  command -v openssl >/dev/null 2>&1 || missing_apt+=(openssl)
  command -v turnserver >/dev/null 2>&1 || missing_apt+=(coturn)
  command -v python3 >/dev/null 2>&1 || missing_apt+=(python3 python3-pip)
  [ -x /usr/bin/chromium ] || missing_apt+=(chromium)
fi

if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing system packages: ${missing_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing_apt[@]}" >/dev/null
  else
    echo "Circle needs these system packages. Install them with:" >&2
    echo "  sudo apt-get install -y ${missing_apt[*]}" >&2
    exit 1
  fi
fi

if [ "$mode" = test ]; then
  missing_pip=()
  python3 -c 'import pytest' 2>/dev/null || missing_pip+=(pytest)
  python3 -c 'import yaml' 2>/dev/null || missing_pip+=(PyYAML)
  python3 -c 'import jsonschema' 2>/dev/null || missing_pip+=(jsonschema)
  python3 -c 'import playwright' 2>/dev/null || missing_pip+=(playwright)
  python3 -c 'import axe_playwright_python' 2>/dev/null || missing_pip+=(axe-playwright-python)
  python3 -c 'import cryptography' 2>/dev/null || missing_pip+=(cryptography)
  python3 -c 'import tusclient' 2>/dev/null || missing_pip+=(tuspy)
  python3 -c 'import schemathesis' 2>/dev/null || missing_pip+=(schemathesis)
  # moto's server mode: the S3-compatible store the vault's S3 tests run against.
  python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null || missing_pip+=('moto[server]')
  if [ "$compose" = true ]; then
    python3 -c 'import podman_compose as p; assert p.__version__ == "1.0.6"' 2>/dev/null || missing_pip+=(podman-compose==1.0.6)
  fi
  if [ ${#missing_pip[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "Installing Python packages: ${missing_pip[*]}"
      python3 -m pip install -q "${missing_pip[@]}"
    else
      echo "Circle's tests need these Python packages. Install them with:" >&2
      echo "  python3 -m pip install ${missing_pip[*]}" >&2
      exit 1
    fi
  fi
fi
