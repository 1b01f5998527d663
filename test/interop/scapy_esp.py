#!/usr/bin/python3
"""Reference ESP transport-mode encrypt/decrypt built on scapy, for interop tests.

Usage (run with the Debian interpreter, which has python3-scapy installed):

    /usr/bin/python3 test/interop/scapy_esp.py < request.json > reply.json

One JSON object is read from stdin and one is written to stdout.

Request:
    {
      "op":       "encrypt" | "decrypt",
      "mode":     "gcm" | "gmac",
      "spi":      <int, 0 .. 2**32-1>,
      "key_hex":  "<AES key, 16, 24 or 32 bytes>",
      "salt_hex": "<4-byte salt>",
      "packets":  ["<hex of a complete IPv4 or IPv6 packet>", ...],
      "seqs":     [<int, 0 .. 2**32-1>, ...],   # encrypt only, one per packet
      "ivs":      ["<8-byte explicit IV hex>", ...]  # encrypt only, one per packet
    }

Reply to "encrypt":  {"packets": ["<hex of the IP packet carrying ESP>", ...]}
Reply to "decrypt":  {"results": [{"ok": true,  "packet": "<hex of plain IP packet>"}
                                  | {"ok": false, "error": "<message>"}, ...]}

Exit status is 0 whenever the request was well formed, even if some packets
fail to decrypt (that is reported per packet); 2 for bad input or usage.

Modes:
  gcm   AES-GCM with a 16-byte ICV, RFC 4106 (scapy crypt_algo 'AES-GCM',
        auth_algo 'NULL': GCM is a combined-mode algorithm, RFC 4303 s. 3.2.3).
  gmac  ENCR_NULL_AUTH_AES_GMAC, RFC 4543 s. 3: no confidentiality, the whole
        ESP payload is authenticated as AAD. Debian's scapy 2.5.0 has no GMAC
        algorithm, so a minimal one is registered at runtime below under the
        name upstream scapy's own tests use ('AES-NULL-GMAC' as crypt_algo,
        auth_algo 'NULL'; see test/fixtures/vectors/SOURCES.md); if the
        installed scapy already provides it, that one is used instead. Only
        the transform is ours; SA handling, padding and header placement
        remain scapy's.

In both modes the keying material handed to scapy is key || salt, matching the
KEYMAT layout of RFC 4106 s. 8.1 and the RFC 4543 s. 5 IKE conventions; the
12-byte nonce is salt || explicit IV (RFC 4106 s. 4, RFC 4543 s. 3.2).

Placement (RFC 4303 s. 3.1.1, transport mode): for IPv4 ESP follows the IP
header (options kept). For IPv6 scapy's split_for_transport() puts ESP after
Hop-by-Hop, Routing, and any Destination Options header that precedes a
Routing header (Linux behaviour). Note that scapy 2.5.0 does NOT skip a
Fragment header: it ends up inside the encrypted payload. Transport-mode ESP is
normally applied before fragmentation (RFC 4303 s. 3.3.4), so test traffic
should not contain one.

Decrypt is stricter than plain scapy: besides the ICV it rejects a Pad Length
that overruns the payload and a payload+trailer that is not a multiple of 4
bytes (RFC 4303 s. 2.4). Padding *contents* (1, 2, 3, ...) are not checked.
Because scapy re-dissects the restored upper-layer header, a packet whose
decrypted inner header is malformed (e.g. a UDP header cut short) is reported
as ok=false with scapy's exception text even though the ICV was good.

Not supported: extended sequence numbers, tunnel mode, UDP encapsulation.
"""

import json
import struct
import sys

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import (CRYPT_ALGOS, ESP, CryptAlgo,
                                IPSecIntegrityError, SecurityAssociation,
                                _ESPPlain)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GMAC_NAME = 'AES-NULL-GMAC'
IV_LEN = 8      # RFC 4106 s. 3.1 / RFC 4543 s. 3.1
ICV_LEN = 16    # full 128-bit tag; RFC 4543 s. 3.4 allows no other length
SALT_LEN = 4


class UsageError(Exception):
    pass


class _NullAuthAesGmac(CryptAlgo):
    """ENCR_NULL_AUTH_AES_GMAC (RFC 4543 s. 3) as a scapy CryptAlgo.

    It has to be a CryptAlgo rather than an AuthAlgo because the MAC needs the
    per-packet IV and the salt, which scapy only hands to encryption algos.
    GMAC is AES-GCM with an empty plaintext, so AESGCM with b"" as data yields
    exactly the 16-byte ICV.
    """

    def __init__(self):
        # block_size=1: no cipher block, so RFC 4303 s. 2.4 padding only has
        # to 4-byte-align the trailer.
        super().__init__(GMAC_NAME, cipher=None, mode=None, block_size=1,
                         iv_size=IV_LEN, key_size=(16, 24, 32),
                         icv_size=ICV_LEN, salt_size=SALT_LEN)

    @staticmethod
    def _aad(spi, seq, esn_en, esn, iv, payload):
        # RFC 4543 s. 3.3: AAD = SPI || (ESN high ||) seq || IV || payload,
        # where payload includes padding, pad length and next header.
        if esn_en:
            hdr = struct.pack('!LLL', spi, esn, seq)
        else:
            hdr = struct.pack('!LL', spi, seq)
        return hdr + iv + payload

    def encrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        payload = esp.data_for_encryption()
        aad = self._aad(esp.spi, esp.seq, esn_en, esn, esp.iv, payload)
        icv = AESGCM(key).encrypt(sa.crypt_salt + esp.iv, b'', aad)
        return ESP(spi=esp.spi, seq=esp.seq, data=esp.iv + payload + icv)

    def decrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        icv_size = icv_size or self.icv_size
        data = bytes(esp.data)
        if len(data) < self.iv_size + 2 + icv_size:
            raise ValueError('ESP payload too short (%d bytes)' % len(data))
        iv = data[:self.iv_size]
        payload = data[self.iv_size:len(data) - icv_size]
        icv = data[len(data) - icv_size:]
        aad = self._aad(esp.spi, esp.seq, esn_en, esn, iv, payload)
        try:
            AESGCM(key).decrypt(sa.crypt_salt + iv, icv, aad)
        except InvalidTag as err:
            raise IPSecIntegrityError('GMAC ICV mismatch') from err
        padlen, nh = payload[-2], payload[-1]
        end = len(payload) - 2 - padlen
        return _ESPPlain(spi=esp.spi, seq=esp.seq, iv=iv,
                         data=payload[:max(end, 0)],
                         padding=payload[max(end, 0):-2],
                         padlen=padlen, nh=nh, icv=icv)


if GMAC_NAME not in CRYPT_ALGOS:
    CRYPT_ALGOS[GMAC_NAME] = _NullAuthAesGmac()


class _StrictTrailer:
    """Wraps a scapy CryptAlgo to reject trailers that violate RFC 4303 s. 2.4.

    scapy accepts a Pad Length that overruns the payload (it silently slices
    garbage) and a payload that does not end on a 4-byte boundary; an interop
    reference must report both instead, or a non-compliant sender would pass.
    Everything except decrypt() is delegated unchanged.
    """

    def __init__(self, algo):
        self._algo = algo

    def __getattr__(self, name):
        return getattr(self._algo, name)

    def decrypt(self, sa, esp, key, icv_size=None, esn_en=False, esn=0):
        plain = self._algo.decrypt(sa, esp, key, icv_size, esn_en, esn)
        body_len = len(esp.data) - self._algo.iv_size - (icv_size or 0)
        if body_len % 4:
            raise ValueError('payload+padding+trailer is %d bytes, not a '
                             'multiple of 4 (RFC 4303 s. 2.4)' % body_len)
        if plain.padlen + 2 > body_len:
            raise ValueError('pad length %d exceeds ESP payload of %d bytes'
                             % (plain.padlen, body_len))
        return plain


def _hex(value, what, length=None):
    if not isinstance(value, str):
        raise UsageError('%s must be a hex string' % what)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise UsageError('%s is not valid hex' % what)
    if length is not None and len(raw) not in (
            length if isinstance(length, tuple) else (length,)):
        raise UsageError('%s must be %s bytes, got %d' % (what, length, len(raw)))
    return raw


def _u32(value, what):
    if not isinstance(value, int) or isinstance(value, bool) \
            or not 0 <= value <= 0xFFFFFFFF:
        raise UsageError('%s must be an integer in 0..2^32-1' % what)
    return value


def _parse_ip(raw):
    version = raw[0] >> 4 if raw else None
    if version == 4:
        return IP(raw)
    if version == 6:
        return IPv6(raw)
    raise ValueError('not an IPv4/IPv6 packet (version nibble %r)' % version)


def make_sa(mode, spi, key, salt):
    if mode == 'gcm':
        crypt = 'AES-GCM'
    elif mode == 'gmac':
        crypt = GMAC_NAME
    else:
        raise UsageError('mode must be "gcm" or "gmac"')
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo=crypt,
                             crypt_key=key + salt, auth_algo='NULL')
    # Pin the ICV length so decrypt never falls back to a guessed size.
    sa.crypt_icv_size = ICV_LEN
    sa.crypt_algo = _StrictTrailer(sa.crypt_algo)
    return sa


def do_encrypt(sa, packets, seqs, ivs):
    if not (isinstance(seqs, list) and isinstance(ivs, list)
            and len(seqs) == len(packets) == len(ivs)):
        raise UsageError('encrypt needs "seqs" and "ivs" lists, one per packet')
    out = []
    for i, (pkt_hex, seq, iv_hex) in enumerate(zip(packets, seqs, ivs)):
        raw = _hex(pkt_hex, 'packets[%d]' % i)
        seq = _u32(seq, 'seqs[%d]' % i)
        iv = _hex(iv_hex, 'ivs[%d]' % i, IV_LEN)
        try:
            pkt = _parse_ip(raw)
        except (ValueError, IndexError) as err:
            raise UsageError('packets[%d]: %s' % (i, err))
        # scapy treats seq_num=0 as "use the SA counter", so set the counter
        # too; that way a test can deliberately emit sequence number 0.
        sa.seq_num = seq
        out.append(bytes(sa.encrypt(pkt, seq_num=seq, iv=iv)).hex())
    return {'packets': out}


def do_decrypt(sa, packets):
    results = []
    for i, pkt_hex in enumerate(packets):
        raw = _hex(pkt_hex, 'packets[%d]' % i)
        try:
            pkt = _parse_ip(raw)
            if not pkt.haslayer(ESP):
                raise ValueError('no ESP header found')
            plain = sa.decrypt(pkt)
            results.append({'ok': True, 'packet': bytes(plain).hex()})
        except IPSecIntegrityError as err:
            # scapy's AES-GCM path raises it with an empty message.
            results.append({'ok': False, 'error': 'IPSecIntegrityError: %s'
                            % (str(err) or 'ICV mismatch')})
        except Exception as err:  # per-packet failure is a result, not a crash
            results.append({'ok': False,
                            'error': '%s: %s' % (type(err).__name__, err)})
    return {'results': results}


def main():
    try:
        try:
            req = json.load(sys.stdin)
        except ValueError as err:
            raise UsageError('stdin is not valid JSON: %s' % err)
        if not isinstance(req, dict):
            raise UsageError('request must be a JSON object')
        op = req.get('op')
        packets = req.get('packets')
        if not isinstance(packets, list):
            raise UsageError('"packets" must be a list')
        sa = make_sa(req.get('mode'), _u32(req.get('spi'), 'spi'),
                     _hex(req.get('key_hex'), 'key_hex', (16, 24, 32)),
                     _hex(req.get('salt_hex'), 'salt_hex', SALT_LEN))
        if op == 'encrypt':
            reply = do_encrypt(sa, packets, req.get('seqs'), req.get('ivs'))
        elif op == 'decrypt':
            reply = do_decrypt(sa, packets)
        else:
            raise UsageError('op must be "encrypt" or "decrypt"')
    except UsageError as err:
        print('scapy_esp.py: %s' % err, file=sys.stderr)
        return 2
    json.dump(reply, sys.stdout)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
