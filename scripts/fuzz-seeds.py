#!/usr/bin/env python3
"""Writes libFuzzer seeds for native/fuzz/fuzz_open.cc from the test vectors.

Usage: fuzz-seeds.py VECTORS_DIR OUT_DIR [--frames]
Each seed is one mode byte (see fuzz_open.cc) followed by a packet: bare ESP
from the draft-mcgrew and Linux xfrm vectors (mode 1), the same wrapped in an
IPv4 header (mode 0), and plaintext IPv4/IPv6 packets for the round trip
(mode 2). With --frames, seeds for fuzz_frame.cc instead: a side byte, a
virtio header and an Ethernet frame (TCP to the encrypted port range, UDP,
IPv6, ARP, a GSO TCP frame, and ESP from the vectors).
"""
import json
import os
import struct
import sys


def ipv4(payload, proto):
    total = 20 + len(payload)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64,
                                proto, 0, bytes([10, 1, 0, 1]), bytes([10, 2, 0, 2])))
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", hdr, 10, ~s & 0xFFFF)
    return bytes(hdr) + payload


def ipv6(payload, nh):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64,
                       b"\xfd" + b"\0" * 14 + b"\1", b"\xfd" + b"\0" * 14 + b"\2") + payload


def eth(ip, ethertype=0x0800):
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + struct.pack("!H", ethertype) + ip


def frame_seeds(vec):
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0) + b"x" * 3000
    syn = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x60, 0x02, 65535, 0, 0) + bytes([2, 4, 5, 180])
    udp = struct.pack("!HHHH", 1000, 2000, 8 + 11, 0) + b"dne-fuzzing"
    none = bytes(10)
    gso = struct.pack("<BBHHHH", 1, 1, 54, 1400, 34, 16)
    seeds = [b"\x00" + none + eth(ipv4(syn, 6)), b"\x00" + gso + eth(ipv4(tcp, 6)),
             b"\x00" + none + eth(ipv4(udp, 17)), b"\x00" + none + eth(ipv6(udp, 17), 0x86dd),
             b"\x00" + none + eth(bytes(28), 0x0806), b"\x01" + none + eth(ipv4(udp, 17))]
    draft = json.load(open(os.path.join(vec, "draft-mcgrew-gcm-test-01_esp_vectors.json")))
    for c in draft["cases"][:4]:
        seeds.append(b"\x01" + none + eth(ipv4(bytes.fromhex(c["packet"]), 50)))
    return seeds


def main():
    vec, out = sys.argv[1], sys.argv[2]
    if "--frames" in sys.argv[3:]:
        os.makedirs(out, exist_ok=True)
        seeds = frame_seeds(vec)
        for i, s in enumerate(seeds):
            with open(os.path.join(out, "frame-%03d" % i), "wb") as f:
                f.write(s)
        print("%d seeds in %s" % (len(seeds), out))
        return
    os.makedirs(out, exist_ok=True)
    seeds = []
    draft = json.load(open(os.path.join(vec, "draft-mcgrew-gcm-test-01_esp_vectors.json")))
    for c in draft["cases"]:
        esp = bytes.fromhex(c["packet"])
        seeds += [b"\x01" + esp, b"\x00" + ipv4(esp, 50)]
    linux = json.load(open(os.path.join(vec, "linux_xfrm_esp_gcm_gmac_refpackets.json")))
    for c in linux.get("packets") or linux.get("cases"):
        esp = bytes.fromhex(c["esp_packet_hex"])
        seeds += [b"\x01" + esp, b"\x00" + ipv4(esp, 50), b"\x00" + ipv6(esp, 50)]
    udp = struct.pack("!HHHH", 1000, 2000, 8 + 11, 0) + b"dne-fuzzing"
    seeds += [b"\x02" + ipv4(udp, 17), b"\x02" + ipv6(udp, 17),
              b"\x02" + ipv6(bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp, 0)]
    for i, s in enumerate(seeds):
        with open(os.path.join(out, "seed-%03d" % i), "wb") as f:
            f.write(s)
    print("%d seeds in %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
