#!/usr/bin/env bash
# The one place sensegate's release build flags live: `make build` and the
# Dockerfile both run this. Usage: scripts/build.sh [OUTPUT] [PACKAGE]
# (bin/sensegate, ./cmd/sensegate; the Dockerfile's qliksim image builds
# ./cmd/qliksim with the same flags).
# VERSION and COMMIT stamp `sensegate version`; by default they come from
# git (the Docker build passes them as build arguments: no .git there).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/sensegate}
pkg=${2:-./cmd/sensegate}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export CGO_ENABLED=0
exec "${GO:-go}" build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o "$out" "$pkg"
