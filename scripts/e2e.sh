#!/usr/bin/env bash
# End-to-end suite with real third-party clients: enigma.js on Node and
# Debian's headless Chromium driven by playwright-core. Installs what it
# needs, idempotently: Node.js and Chromium (Debian's packages, only when
# missing) and the npm packages pinned in e2e/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "e2e: installing ${need_apt[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# npm ci runs when node_modules was not installed from this very lockfile.
if ! cmp -s e2e/package-lock.json e2e/node_modules/.installed-lock.json 2>/dev/null; then
  (cd e2e && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock.json)
fi

# The suite runs the demo, which serves sensegate through the same
# packages as `sensegate serve` (server, gateway).
mkdir -p bin
go build -o bin/sensegate-demo-e2e ./cmd/sensegate-demo
cd e2e
# Screenshots land in e2e/artifacts/.
SENSEGATE_DEMO_BIN="$PWD/../bin/sensegate-demo-e2e" node --test --test-reporter=spec
