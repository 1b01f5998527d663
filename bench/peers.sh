#!/usr/bin/env bash
# dne beside wireguard-go, nebula, OpenVPN and strongSwan (kernel-libipsec):
# one run on the two-host namespace topology; iperf3 TCP (1 and 4 streams),
# 64-byte UDP packets/s, ping p50/p99 and CPU seconds per Gbit of the tunnel
# processes, interleaved repetitions; prints the tables (ratios against each
# peer and against plain veth) and writes JSON + Markdown to bench/results/.
#
#   bench/peers.sh [--seconds 3] [--reps 3] [--json FILE] [--only ID,...]
#                  [--profile] [--pings N]
#
# Builds first (scripts/setup: packages, addon, TypeScript; fast when nothing
# changed), installs the peers' Debian packages that are missing (and
# linux-perf for --profile), then runs dist/bench/peers.js as root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "$(id -u)" -ne 0 ]; then
  echo "peers: needs root (network namespaces, AF_PACKET, TUN)" >&2
  exit 1
fi
bash scripts/setup

# The peers, from Debian. --no-install-recommends: strongswan-charon would
# otherwise pull in the starter's service; the openssl/gcm plugins
# (libstrongswan-standard-plugins) and kernel-libipsec are asked for by name.
PEER_PACKAGES=(wireguard-go wireguard-tools nebula openvpn strongswan-charon strongswan-swanctl
  libcharon-extra-plugins libstrongswan-standard-plugins util-linux)
for a in "$@"; do [ "$a" = "--profile" ] && PEER_PACKAGES+=(linux-perf); done
missing=()
for p in "${PEER_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "peers: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# exec: SIGINT/SIGTERM go straight to node, which removes its namespaces and
# stops the daemons it started.
exec node dist/bench/peers.js "$@"
