#!/usr/bin/python3
"""Puts raw Ethernet frames on an interface with scapy, for tests that inject
forged, tampered, replayed or truncated ESP on the wire.

Usage (inside the namespace that owns the interface):
    ip netns exec NS /usr/bin/python3 test/interop/inject.py < request.json
Request: {"iface": "ul", "frames": ["<hex of a whole Ethernet frame>", ...]}
Reply:   {"sent": N}
"""
import json
import sys

from scapy.all import Ether, conf, sendp  # noqa: E402

conf.verb = 0


def main():
    try:
        req = json.load(sys.stdin)
        iface = req["iface"]
        frames = [bytes.fromhex(h) for h in req["frames"]]
    except (ValueError, KeyError, TypeError) as e:
        print("bad request: %s" % e, file=sys.stderr)
        return 2
    # Ether(raw) keeps the bytes exactly as given (scapy rebuilds nothing
    # for a dissected packet that is sent unmodified).
    sendp([Ether(f) for f in frames], iface=iface, verbose=False)
    json.dump({"sent": len(frames)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
