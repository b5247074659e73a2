#!/usr/bin/env bash
# Installs what the Go test suite needs besides Go, idempotently: the
# session package's Redis tests start their own redis-server (Debian's
# package), installed here only when it is missing.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
  echo "deps: installing redis-server from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
