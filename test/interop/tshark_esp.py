#!/usr/bin/python3
"""Decrypt/inspect ESP packets with tshark (Wireshark's ESP dissector), for interop tests.

Usage:

    /usr/bin/python3 test/interop/tshark_esp.py < request.json > reply.json

One JSON object is read from stdin and one is written to stdout.

Request:
    {
      "sas": [{"family": 4 | 6,
               "src": "<address or *>", "dst": "<address or *>",
               "spi": <int>,
               "mode": "gcm" | "gmac",
               "key_hex": "<AES key, 16/24/32 bytes>",
               "salt_hex": "<4-byte salt>"}, ...],
      "packets": ["<hex of a complete IPv4/IPv6 packet>", ...]
    }

Reply (one entry per input packet, same order):
    {"packets": [{
        "esp_spi": <int> | null,         # null: tshark found no ESP header
        "esp_seq": <int> | null,
        "decrypted": <bool>,             # tshark produced a plaintext whose
                                         # trailer is well formed
        "inner_protocol": <int> | null,  # Next Header from the ESP trailer
        "inner_hex": "<hex>" | null,     # upper-layer header + payload
        "payload_hex": "<hex>" | null,   # upper-layer payload (UDP payload,
                                         # ICMP data, TCP data, else inner_hex)
        "icv_ok": true | false | null,   # null: ICV not checked by tshark
        "raw": {<tshark -T json -e field>: [<values>], ...}
    }, ...]}

Exit status: 0 when tshark ran (per-packet failures are reported, not fatal),
2 for bad input/usage, 1 if tshark itself failed.

How it works: the packets are written to a temporary classic pcap with link
type 101 (LINKTYPE_RAW, each record starts with the IP header) and dissected
with `tshark -r`. The SAs are passed as `-o uat:esp_sa:...` records and
WIRESHARK_CONFIG_DIR points at an empty temporary directory, so the user's own
Wireshark preferences and esp_sa table are neither read nor modified.

Mode mapping for Wireshark 4.0.x (Debian 12), whose esp_sa UAT record is
    "<IPv4|IPv6>","<src>","<dst>","<0xSPI>","<encryption algo>","<0x key>",
    "<authentication algo>","<0x auth key>"
  gcm   "AES-GCM with 16 octet ICV [RFC4106]" keyed with 0x<key||salt>
        (RFC 4106 s. 8.1 KEYMAT layout), authentication "NULL". tshark both
        decrypts and verifies the ICV (esp.icv_good / esp.icv_bad). A packet
        with a bad ICV is still decrypted (CTR mode), so check icv_ok.
  gmac  Wireshark 4.0 has no ENCR_NULL_AUTH_AES_GMAC (RFC 4543). The closest
        it offers is encryption "NULL" with authentication
        "ANY 128 bit authentication [no checking]", which strips the 16-byte
        ICV and parses the RFC 4303 s. 2.4-2.6 trailer, but (NULL having no IV)
        leaves the 8-byte explicit IV (RFC 4543 s. 3.1) at the start of the
        payload; this script removes it. The ICV is NOT verified, so icv_ok is
        always null and a tampered packet still looks fine. tshark's own
        dissection of the inner protocol is also shifted by the IV, which is
        why inner_hex / payload_hex are computed here from
        esp.decrypted_data rather than taken from udp.payload / data.data.
"""

import ipaddress
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

IV_LEN = 8      # RFC 4106 s. 3.1 / RFC 4543 s. 3.1
SALT_LEN = 4

ENCR_GCM16 = 'AES-GCM with 16 octet ICV [RFC4106]'
ENCR_NULL = 'NULL'
AUTH_NULL = 'NULL'
AUTH_ANY128 = 'ANY 128 bit authentication [no checking]'

FIELDS = [
    'frame.number', 'frame.protocols',
    'esp.spi', 'esp.sequence', 'esp.iv', 'esp.icv', 'esp.icv_good',
    'esp.icv_bad', 'esp.encrypted_data', 'esp.decrypted_data',
    'esp.contained_data', 'esp.pad', 'esp.pad_len', 'esp.protocol',
    'udp.payload', 'tcp.payload', 'data.data', '_ws.expert.message',
]

PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6, PROTO_UDPLITE = 1, 6, 17, 58, 136

# Anything else would have to be escaped inside the quoted UAT record.
_ADDR_RE = re.compile(r'^[0-9A-Fa-f:.*/]+$')


class UsageError(Exception):
    pass


def _hex(value, what, lengths=None):
    if not isinstance(value, str):
        raise UsageError('%s must be a hex string' % what)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise UsageError('%s is not valid hex' % what)
    if lengths is not None and len(raw) not in lengths:
        raise UsageError('%s must be %s bytes, got %d' % (what, lengths, len(raw)))
    return raw


def uat_record(i, sa):
    """One esp_sa UAT record (a '-o uat:esp_sa:...' value) for an SA dict."""
    if not isinstance(sa, dict):
        raise UsageError('sas[%d] must be an object' % i)
    family = {4: 'IPv4', 6: 'IPv6'}.get(sa.get('family'))
    if family is None:
        raise UsageError('sas[%d].family must be 4 or 6' % i)
    addrs = []
    for k in ('src', 'dst'):
        a = sa.get(k, '*')
        if not isinstance(a, str) or not _ADDR_RE.match(a):
            raise UsageError('sas[%d].%s must be an address or "*"' % (i, k))
        if '*' not in a and '/' not in a:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise UsageError('sas[%d].%s is not an IP address' % (i, k))
        addrs.append(a)
    spi = sa.get('spi')
    if not isinstance(spi, int) or isinstance(spi, bool) \
            or not 0 <= spi <= 0xFFFFFFFF:
        raise UsageError('sas[%d].spi must be an integer in 0..2^32-1' % i)
    key = _hex(sa.get('key_hex'), 'sas[%d].key_hex' % i, (16, 24, 32))
    salt = _hex(sa.get('salt_hex'), 'sas[%d].salt_hex' % i, (SALT_LEN,))
    mode = sa.get('mode')
    if mode == 'gcm':
        fields = [ENCR_GCM16, '0x' + (key + salt).hex(), AUTH_NULL, '']
    elif mode == 'gmac':
        # No GMAC in Wireshark 4.0: the key cannot be used, see module doc.
        fields = [ENCR_NULL, '', AUTH_ANY128, '']
    else:
        raise UsageError('sas[%d].mode must be "gcm" or "gmac"' % i)
    rec = [family, addrs[0], addrs[1], '0x%08x' % spi] + fields
    return 'uat:esp_sa:' + ','.join('"%s"' % f for f in rec), mode


def write_pcap(path, packets):
    with open(path, 'wb') as f:
        # Classic pcap header: magic, v2.4, GMT offset, sigfigs, snaplen,
        # LINKTYPE_RAW (101) so no link-layer header is needed.
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101))
        for n, pkt in enumerate(packets):
            f.write(struct.pack('<IIII', n, 0, len(pkt), len(pkt)))
            f.write(pkt)


def run_tshark(packets, uat_opts):
    with tempfile.TemporaryDirectory(prefix='tshark_esp.') as tmp:
        pcap = os.path.join(tmp, 'esp.pcap')
        confdir = os.path.join(tmp, 'config')
        os.mkdir(confdir)
        write_pcap(pcap, packets)
        cmd = ['tshark', '-n', '-r', pcap,
               '-o', 'esp.enable_encryption_decode:TRUE',
               '-o', 'esp.enable_authentication_check:TRUE',
               # Sequence analysis only adds expert noise for test captures.
               '-o', 'esp.do_esp_sequence_analysis:FALSE']
        for opt in uat_opts:
            cmd += ['-o', opt]
        cmd += ['-T', 'json']
        for field in FIELDS:
            cmd += ['-e', field]
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=confdir)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError('tshark exited %d: %s'
                           % (proc.returncode, proc.stderr.strip()))
    frames = json.loads(proc.stdout or '[]')
    return [f['_source']['layers'] for f in frames]


def _first(layers, field):
    values = layers.get(field)
    return values[0] if values else None


def upper_layer_payload(proto, inner):
    """Strip the upper-layer header so tests can compare application bytes."""
    if proto in (PROTO_UDP, PROTO_UDPLITE, PROTO_ICMP, PROTO_ICMPV6):
        # 8-byte UDP header; ICMP/ICMPv6 type, code, checksum + 4 bytes
        # (id/seq for echo), after which tshark shows "data".
        return inner[8:]
    if proto == PROTO_TCP and len(inner) >= 13:
        return inner[(inner[12] >> 4) * 4:]
    return inner


def summarise(layers, mode_by_spi):
    spi_s = _first(layers, 'esp.spi')
    if spi_s is None:
        return {'esp_spi': None, 'esp_seq': None, 'decrypted': False,
                'inner_protocol': None, 'inner_hex': None,
                'payload_hex': None, 'icv_ok': None, 'raw': layers}
    spi = int(spi_s, 0)
    seq_s = _first(layers, 'esp.sequence')

    # The trailer is parsed here from esp.decrypted_data (plaintext + padding
    # + Pad Length + Next Header, ICV already removed) rather than read from
    # esp.pad_len / esp.protocol: Wireshark 4.0 adds those items only after
    # the inner dissector returns, so a malformed-packet exception in the
    # inner protocol (routine in gmac mode, where the IV is dissected as the
    # upper-layer header) makes them disappear.
    decrypted, proto, inner = False, None, None
    plain_s = _first(layers, 'esp.decrypted_data')
    if plain_s is not None:
        plain = bytes.fromhex(plain_s)
        if mode_by_spi.get(spi) == 'gmac':
            # NULL "encryption" made tshark treat the explicit IV as payload.
            plain = plain[IV_LEN:] if len(plain) >= IV_LEN else b''
        if len(plain) >= 2 and plain[-2] + 2 <= len(plain):
            decrypted = True
            proto = plain[-1]
            inner = plain[:len(plain) - 2 - plain[-2]]

    good = _first(layers, 'esp.icv_good')
    bad = _first(layers, 'esp.icv_bad')
    if good == '1':
        icv_ok = True
    elif bad == '1':
        icv_ok = False
    else:
        icv_ok = None   # "unchecked": no SA, or ANY-bit (GMAC) authentication

    return {
        'esp_spi': spi,
        'esp_seq': int(seq_s) if seq_s is not None else None,
        'decrypted': decrypted,
        'inner_protocol': proto,
        'inner_hex': inner.hex() if decrypted else None,
        'payload_hex': upper_layer_payload(proto, inner).hex() if decrypted else None,
        'icv_ok': icv_ok,
        'raw': layers,
    }


def main():
    try:
        try:
            req = json.load(sys.stdin)
        except ValueError as err:
            raise UsageError('stdin is not valid JSON: %s' % err)
        if not isinstance(req, dict):
            raise UsageError('request must be a JSON object')
        sas = req.get('sas')
        packets = req.get('packets')
        if not isinstance(sas, list) or not isinstance(packets, list):
            raise UsageError('"sas" and "packets" must be lists')
        uat_opts = []
        mode_by_spi = {}
        for i, sa in enumerate(sas):
            opt, mode = uat_record(i, sa)
            uat_opts.append(opt)
            # The IV fix-up is keyed by SPI, so one SPI must mean one mode.
            if mode_by_spi.setdefault(sa['spi'], mode) != mode:
                raise UsageError('SPI %#x is used with both gcm and gmac'
                                 % sa['spi'])
        raw_packets = [_hex(p, 'packets[%d]' % i) for i, p in enumerate(packets)]
        if any(not p for p in raw_packets):
            raise UsageError('empty packet')
    except UsageError as err:
        print('tshark_esp.py: %s' % err, file=sys.stderr)
        return 2

    try:
        frames = run_tshark(raw_packets, uat_opts) if raw_packets else []
    except (OSError, RuntimeError, ValueError) as err:
        print('tshark_esp.py: %s' % err, file=sys.stderr)
        return 1
    if len(frames) != len(raw_packets):
        print('tshark_esp.py: tshark returned %d frames for %d packets'
              % (len(frames), len(raw_packets)), file=sys.stderr)
        return 1

    json.dump({'packets': [summarise(f, mode_by_spi) for f in frames]},
              sys.stdout)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
