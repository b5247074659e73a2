#!/usr/bin/env bash
# The load harness (make bench): installs wrk and nginx from Debian when
# missing, builds sensegate, the simulator, the load generator and the
# bare ReverseProxy into bin/bench, and runs bench/cmd/bench, which starts
# everything on loopback, runs every workload against every target and
# writes docs/performance.md. Arguments go to bench/cmd/bench (e.g. -quick, -out '').
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bench: installing ${need_apt[*]} from Debian"
  # nginx's package starts the system service unless policy-rc.d forbids
  # it; the harness runs its own nginx, so forbid it for this install.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  trap 'if [ -n "$made_policy" ]; then rm -f "$policy"; fi' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  trap - EXIT
fi
export PATH="$PATH:/usr/sbin"

mkdir -p bin/bench
GO="$GO" ./scripts/build.sh bin/bench/sensegate
GO="$GO" ./scripts/build.sh bin/bench/qliksim ./cmd/qliksim
"$GO" build -o bin/bench/ ./bench/cmd/loadgen ./bench/cmd/bareproxy ./bench/cmd/bench
exec bin/bench/bench -bin bin/bench "$@"
