#!/usr/bin/env bash
# Filter end-to-end benchmark: iperf3 TCP (1 and 4 streams) and 64-byte UDP
# through plain veth (offloads on and off) and the filter (allow, encrypt,
# integrity) on the integration tests' namespace topology; prints a table
# with ratios against plain veth with offloads off.
#
#   bench/filter-e2e.sh [--seconds 3] [--reps 3] [--json FILE]
#
# Builds first (scripts/setup: packages, addon, TypeScript; fast when
# nothing changed), then runs dist/bench/filter-e2e.js as root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "$(id -u)" -ne 0 ]; then
  echo "filter-e2e: needs root (network namespaces, AF_PACKET)" >&2
  exit 1
fi
bash scripts/setup
# exec: SIGINT/SIGTERM go straight to node, which removes its namespaces.
exec node dist/bench/filter-e2e.js "$@"
