#!/usr/bin/env bash
# ESP micro-benchmark: EspEngine seal/open throughput on one core beside
# `openssl speed -evp aes-128-gcm`, measured interleaved in the same run.
#
#   bench/esp-micro.sh [--reps 3] [--seconds 1] [--cpu 0] [--no-build]
#                      [--out bench/results/esp-micro.json]
#
# Sizes are whole plaintext IPv4/UDP packets (64, 512, 1400, 9000 bytes incl.
# the 20-byte IPv4 and 8-byte UDP headers). openssl speed's "-bytes N" is the
# length of one EVP_EncryptUpdate call, so it is run with N = the bytes that
# actually go through AES-GCM per ESP packet:
#     aead_bytes = (S - 20) + pad + 2      (UDP header + data, RFC 4303
#                                            padding to 4 bytes, trailer)
#     S = 64 -> 48, 512 -> 496, 1400 -> 1384, 9000 -> 8984
# and ratio = our packets/s / openssl operations/s at that N (equivalently
# Gbit/s of AEAD bytes on both sides).
#
# Reference columns:
#   openssl    `openssl speed -elapsed -evp <cipher> -bytes N` (encrypt), the
#              issue's target (>= 0.9 at 1400 bytes for seal AND open) and
#              the denominator of both seal/openssl and open/openssl. What
#              one openssl "operation" is depends on the OpenSSL release:
#                - up to 3.0.15 / 3.1.7 / 3.2.3 / 3.3.2 / 3.4.0: one
#                  EVP_EncryptUpdate on a never-ending GCM stream (no per-op
#                  IV, tag or key set-up; an upper bound for any per-packet
#                  AEAD);
#                - since 3.0.16 / 3.1.8 / 3.2.4 / 3.3.3 / 3.4.1 (openssl PR
#                  #25823, see openssl issue #28063): per op SET_IVLEN ctrl +
#                  EVP_CipherInit_ex(key, iv) + Update + Final, i.e. a full
#                  re-key (AES key schedule and GHASH key) for every message.
#              The header names which one ran; the engine never re-keys per
#              packet (keys are set up once per SA), so on newer releases
#              the reference is easier to beat than the crypto floor.
#   AesGcm     the bench's own crypto-only reference (dne_esp_bench
#              --aead-ref): the very dne::AesGcm calls esp_encap/esp_decap
#              make (IV set, 8-byte AAD, N bytes, tag), key reused, without
#              ESP framing, IP parsing, SA lookup, copy or replay window.
#              seal/AesGcm and open/AesGcm isolate the engine's own cost,
#              independent of what openssl speed's loop does.
# All openssl runs use -elapsed (wall clock), as the bench uses
# std::chrono::steady_clock; by default openssl speed counts user CPU time.
# Each (size, rep) runs openssl and the bench back to back on the same CPU
# (taskset); reps go round all sizes, and the reported value is the median
# over reps (ratios: median of the per-rep ratios).
set -euo pipefail

REPS=3
SECONDS_PER_RUN=1
CPU=0
BUILD=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/bench/results/esp-micro.json"
SIZES=(64 512 1400 9000)

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --cpu) CPU="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "esp-micro: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
# openssl speed -seconds takes whole seconds.
if ! [[ "$SECONDS_PER_RUN" =~ ^[1-9][0-9]*$ ]]; then
  echo "esp-micro: --seconds must be a positive integer (openssl speed)" >&2
  exit 2
fi
if ! [[ "$REPS" =~ ^[1-9][0-9]*$ ]]; then
  echo "esp-micro: --reps must be a positive integer" >&2
  exit 2
fi

log() { printf '[esp-micro %s] %s\n' "$(date +%T)" "$*" >&2; }

for tool in openssl cmake python3; do
  command -v "$tool" >/dev/null || { echo "esp-micro: $tool not found" >&2; exit 1; }
done

BUILD_DIR="$ROOT/build-native/bench"
BIN="$BUILD_DIR/dne_esp_bench"
if [[ "$BUILD" == 1 ]]; then
  log "building dne_esp_bench (Release, -O2) in $BUILD_DIR"
  cmake -S "$ROOT/native" -B "$BUILD_DIR" -DDNE_BENCH=ON -DDNE_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
    >/dev/null
  cmake --build "$BUILD_DIR" --target dne_esp_bench -j "$(nproc)" >/dev/null
fi
[[ -x "$BIN" ]] || { echo "esp-micro: $BIN missing (drop --no-build)" >&2; exit 1; }
# Run a private copy, so a rebuild during a long run cannot pull the binary
# out from under it.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp "$BIN" "$WORK/dne_esp_bench"
BIN="$WORK/dne_esp_bench"

PIN=()
if command -v taskset >/dev/null; then
  PIN=(taskset -c "$CPU")
else
  log "taskset not found: openssl speed runs unpinned (the bench pins itself)"
fi

MODEL="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)"
NPROC="$(nproc)"
OSSL="$(openssl version)"
KERNEL="$(uname -r)"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain -- native 2>/dev/null || true)" ]]; then
  COMMIT="$COMMIT+dirty"
fi
CPUFLAGS="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' \
  | grep -xE 'aes|pclmulqdq|avx|avx2|vaes|vpclmulqdq|avx512f' | tr '\n' ' ' || true)"

aead_bytes() {  # S -> bytes through AES-GCM per ESP packet
  local payload=$(($1 - 20))
  local pad=$(( (4 - ((payload + 2) & 3)) & 3 ))
  echo $((payload + pad + 2))
}

RAW="$WORK/raw.jsonl"

# openssl speed, machine-readable: "+R:<count>:<name>:<seconds>".
run_openssl() {  # rep cipher bytes
  local rep="$1" cipher="$2" n="$3" line count secs
  line="$("${PIN[@]}" openssl speed -mr -elapsed -evp "$cipher" -bytes "$n" \
           -seconds "$SECONDS_PER_RUN" 2>&1 | grep -m1 '^+R:' || true)"
  if [[ -z "$line" ]]; then
    echo "esp-micro: no +R line from openssl speed -evp $cipher -bytes $n" >&2
    exit 1
  fi
  count="$(cut -d: -f2 <<<"$line")"
  secs="$(cut -d: -f4 <<<"$line")"
  printf '{"source":"openssl","rep":%d,"cipher":"%s","bytes":%d,"count":%s,"seconds":%s}\n' \
    "$rep" "$cipher" "$n" "$count" "$secs" >>"$RAW"
}

run_bench() {  # rep size suites [extra flags]
  local rep="$1" size="$2" suites="$3"
  shift 3
  "${PIN[@]}" "$BIN" --cpu "$CPU" --seconds "$SECONDS_PER_RUN" --sizes "$size" \
      --suites "$suites" "$@" \
    | grep '"suite"' | sed "s/^{/{\"source\":\"dne\",\"rep\":$rep,/" >>"$RAW"
}

log "machine: $MODEL, nproc=$NPROC, $OSSL, kernel $KERNEL, cpu flags: $CPUFLAGS"
log "pinned to CPU $CPU; $REPS reps x ${SECONDS_PER_RUN}s per measurement"
START=$(date +%s)
for ((rep = 1; rep <= REPS; rep++)); do
  for s in "${SIZES[@]}"; do
    n="$(aead_bytes "$s")"
    log "rep $rep/$REPS size $s (AEAD bytes $n): openssl speed aes-128-gcm"
    run_openssl "$rep" aes-128-gcm "$n"
    log "rep $rep/$REPS size $s: dne aes-128-gcm seal/open + AesGcm reference"
    run_bench "$rep" "$s" aes-128-gcm --aead-ref
    suites=aes-128-gmac
    if [[ "$s" == 1400 ]]; then
      log "rep $rep/$REPS size $s: openssl speed aes-256-gcm"
      run_openssl "$rep" aes-256-gcm "$n"
      suites="$suites,aes-256-gcm"
    fi
    log "rep $rep/$REPS size $s: dne $suites seal/open"
    run_bench "$rep" "$s" "$suites"
  done
done
ELAPSED=$(( $(date +%s) - START ))
log "measurements done in ${ELAPSED}s"

mkdir -p "$(dirname "$OUT")"
MODEL="$MODEL" NPROC="$NPROC" OSSL="$OSSL" KERNEL="$KERNEL" COMMIT="$COMMIT" \
CPUFLAGS="$CPUFLAGS" CPU="$CPU" REPS="$REPS" SECS="$SECONDS_PER_RUN" \
PINNED="${#PIN[@]}" ELAPSED="$ELAPSED" \
python3 - "$RAW" "$OUT" <<'PY'
import json, os, re, statistics, sys

raw_path, out_path = sys.argv[1], sys.argv[2]
raw = [json.loads(l) for l in open(raw_path) if l.strip()]
reps = range(1, int(os.environ["REPS"]) + 1)
med = statistics.median

def openssl_loop(version):
    """What one `openssl speed -evp aes-*-gcm` operation is in this release."""
    m = re.search(r"OpenSSL (\d+)\.(\d+)\.(\d+)", version)
    if not m:
        return "unknown"
    v = tuple(int(x) for x in m.groups())
    first_fixed = {(3, 0): 16, (3, 1): 8, (3, 2): 4, (3, 3): 3, (3, 4): 1}
    if v[:2] in first_fixed:
        rekey = v[2] >= first_fixed[v[:2]]
    else:
        rekey = v[:2] >= (3, 5)
    return ("per-op: SET_IVLEN + CipherInit_ex(key, iv) + Update + Final "
            "(re-keys every op)" if rekey else
            "stream: one EVP_EncryptUpdate per op, no per-op IV/tag/key")

def ossl(rep, cipher, n):
    for r in raw:
        if (r["source"] == "openssl" and r["rep"] == rep
                and r["cipher"] == cipher and r["bytes"] == n):
            return r["count"] / r["seconds"]  # operations/s
    raise SystemExit(f"esp-micro: missing openssl result {cipher} {n} rep {rep}")

def dne(rep, suite, op, size):
    for r in raw:
        if (r["source"] == "dne" and r["rep"] == rep and r["suite"] == suite
                and r["op"] == op and r["size"] == size):
            return r["packets"] / r["seconds"]  # packets/s
    raise SystemExit(f"esp-micro: missing bench result {suite} {op} {size} rep {rep}")

def gbps(rate, n):
    return rate * n * 8 / 1e9

def aead_bytes(size):
    payload = size - 20
    return payload + (4 - ((payload + 2) & 3)) % 4 + 2

# (suite, openssl cipher of its reference, sizes, has AesGcm reference)
plan = [("aes-128-gcm", "aes-128-gcm", [64, 512, 1400, 9000], True),
        ("aes-128-gmac", "aes-128-gcm", [64, 512, 1400, 9000], False),
        ("aes-256-gcm", "aes-256-gcm", [1400], False)]
rows = []
for suite, cipher, sizes, has_ref in plan:
    for size in sizes:
        n = aead_bytes(size)
        row = {"suite": suite, "size": size, "aead_bytes": n,
               "openssl_cipher": cipher}
        ref = [ossl(r, cipher, n) for r in reps]
        row["openssl_gbps"] = gbps(med(ref), n)
        row["openssl_mops"] = med(ref) / 1e6
        row["openssl_ns"] = 1e9 / med(ref)
        for op in ("seal", "open"):
            pps = [dne(r, suite, op, size) for r in reps]
            row[f"{op}_gbps"] = gbps(med(pps), n)
            row[f"{op}_ip_gbps"] = med(pps) * size * 8 / 1e9
            row[f"{op}_mpps"] = med(pps) / 1e6
            row[f"{op}_ns"] = 1e9 / med(pps)
            ratios = [p / o for p, o in zip(pps, ref)]
            row[f"{op}_ratio"] = med(ratios)
            row[f"{op}_ratio_reps"] = ratios
            if has_ref:
                aref = [dne(r, suite, "aead-" + op, size) for r in reps]
                row[f"aesgcm_{op}_gbps"] = gbps(med(aref), n)
                row[f"aesgcm_{op}_ns"] = 1e9 / med(aref)
                row[f"{op}_ratio_vs_aesgcm"] = med(
                    [p / a for p, a in zip(pps, aref)])
                row[f"{op}_engine_ns"] = med(
                    [1e9 / p - 1e9 / a for p, a in zip(pps, aref)])
        rows.append(row)

machine = {"model": os.environ["MODEL"], "nproc": int(os.environ["NPROC"]),
           "openssl": os.environ["OSSL"], "kernel": os.environ["KERNEL"],
           "cpu_flags": os.environ["CPUFLAGS"].split()}
config = {"reps": len(reps), "seconds": int(os.environ["SECS"]),
          "cpu": int(os.environ["CPU"]), "taskset": os.environ["PINNED"] != "0",
          "commit": os.environ["COMMIT"], "elapsed_s": int(os.environ["ELAPSED"]),
          "openssl_speed_loop": openssl_loop(os.environ["OSSL"]),
          "size_meaning": "whole plaintext IPv4/UDP packet incl. 20-byte IPv4 header",
          "aead_bytes_meaning": "(S-20)+pad+2: ESP body through AES-GCM per packet; "
                                "= openssl speed -bytes",
          "gbps_basis": "aead_bytes*8*rate, as openssl speed; *_ip_gbps use S",
          "ratio": "median over reps of (our packets/s / openssl ops/s) of the same rep"}
target = {}
for r in rows:
    if r["suite"] == "aes-128-gcm" and r["size"] == 1400:
        target = {"suite": "aes-128-gcm", "size": 1400, "min_ratio": 0.9,
                  "seal_ratio": r["seal_ratio"], "open_ratio": r["open_ratio"],
                  "pass": r["seal_ratio"] >= 0.9 and r["open_ratio"] >= 0.9}
with open(out_path, "w") as f:
    json.dump({"machine": machine, "config": config, "target": target,
               "rows": rows, "raw": raw}, f, indent=2)
    f.write("\n")

print(f"# ESP micro-benchmark: {machine['model']}, nproc {machine['nproc']}, "
      f"kernel {machine['kernel']}, cpu flags: {' '.join(machine['cpu_flags'])}")
print(f"# {machine['openssl']}; openssl speed loop: {config['openssl_speed_loop']}")
print(f"# commit {config['commit']}; one core (CPU {config['cpu']}, taskset "
      f"{'yes' if config['taskset'] else 'no'}); median of {len(reps)} interleaved "
      f"reps x {config['seconds']}s")
print("# size = whole IPv4/UDP packet; AEAD B = bytes through AES-GCM per packet "
      "= (size-20)+pad+2 = openssl speed -bytes; Gbit/s = AEAD B x 8 x rate")
hdr = ("suite", "size", "AEAD B", "openssl Gbit/s", "seal Gbit/s", "seal Mpps",
       "seal/openssl", "open Gbit/s", "open Mpps", "open/openssl")
fmt = "{:<13} {:>5} {:>6} {:>14} {:>11} {:>9} {:>12} {:>11} {:>9} {:>12}"
print(fmt.format(*hdr))
for r in rows:
    print(fmt.format(r["suite"], r["size"], r["aead_bytes"],
                     f"{r['openssl_gbps']:.2f}", f"{r['seal_gbps']:.2f}",
                     f"{r['seal_mpps']:.3f}", f"{r['seal_ratio']:.2f}",
                     f"{r['open_gbps']:.2f}", f"{r['open_mpps']:.3f}",
                     f"{r['open_ratio']:.2f}"))
print("# aes-128-gmac rows: ratio against openssl aes-128-gcm encryption "
      "(no GMAC in openssl speed), informative")
print()
print("# engine cost: aes-128-gcm against dne::AesGcm alone on the same bytes "
      "(same EVP calls, key reused, no ESP/IP work)")
fmt2 = "{:>5} {:>6} {:>13} {:>11} {:>14} {:>13} {:>11} {:>14}"
print(fmt2.format("size", "AEAD B", "AesGcm seal", "seal/AesGcm",
                  "engine ns/pkt", "AesGcm open", "open/AesGcm", "engine ns/pkt"))
for r in rows:
    if "aesgcm_seal_gbps" not in r:
        continue
    print(fmt2.format(r["size"], r["aead_bytes"],
                      f"{r['aesgcm_seal_gbps']:.2f} Gb/s",
                      f"{r['seal_ratio_vs_aesgcm']:.2f}",
                      f"{r['seal_engine_ns']:+.0f}",
                      f"{r['aesgcm_open_gbps']:.2f} Gb/s",
                      f"{r['open_ratio_vs_aesgcm']:.2f}",
                      f"{r['open_engine_ns']:+.0f}"))
print()
if target:
    print(f"target (aes-128-gcm, 1400 B, >= 0.90 of openssl speed): "
          f"seal {target['seal_ratio']:.2f}, open {target['open_ratio']:.2f} -> "
          f"{'PASS' if target['pass'] else 'FAIL'}")
print(f"JSON: {out_path}")
PY
