/**
 * One OpenSSL in the process, and its AES-NI/PCLMULQDQ AES-GCM path in use.
 *
 * The addon does not link libcrypto: its EVP calls bind to the OpenSSL that
 * the node binary carries and exports. gdb then watches a real seal and open
 * through the addon stop in OpenSSL's stitched AES-NI + carry-less-multiply
 * GCM routines (aesni_gcm_encrypt / aesni_gcm_decrypt). As a control, the
 * same run with AES-NI and PCLMULQDQ masked out through OPENSSL_ia32cap
 * never reaches them, so the check can fail.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { loadAddon, packageRoot } from '../../ts/native/loader';

const script = path.join(packageRoot(), 'test', 'fixtures', 'seal-loop.js');
// CPUID.1:ECX bit 25 (AES-NI) and bit 1 (PCLMULQDQ) as OPENSSL_ia32cap bits
// 57 and 33 of its first word (OpenSSL's OPENSSL_ia32cap(3)).
const MASK_AESNI_PCLMUL = '~0x200000200000000';

function underGdb(fn: string, arg: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(
    'gdb',
    ['-batch', '-nx', '-ex', 'set breakpoint pending on', '-ex', `break ${fn}`, '-ex', 'run', '-ex', 'bt 8',
      '--args', process.execPath, script, arg],
    { encoding: 'utf8', env, timeout: 120000 },
  );
  return `${r.stdout}\n${r.stderr}`;
}

describe('OpenSSL', () => {
  test('the addon uses the OpenSSL inside the node binary', () => {
    const info = loadAddon().cryptoInfo();
    expect(info.evpFromMainExecutable).toBe(true);
    expect(info.evpObject).toBe(process.execPath);
    expect(info.opensslVersion).toContain(process.versions.openssl);
  });

  test('the CPU has AES-NI and PCLMULQDQ (what the fast path needs)', () => {
    const info = loadAddon().cryptoInfo();
    expect(info.cpuAesni).toBe(true);
    expect(info.cpuPclmulqdq).toBe(true);
  });

  test('sealing runs through aesni_gcm_encrypt, called from the ESP code', () => {
    const out = underGdb('aesni_gcm_encrypt', 'seal');
    expect(out).toMatch(/hit Breakpoint 1, .*aesni_gcm_encrypt/);
    expect(out).toMatch(/dne::AesGcm::seal/);
    expect(out).toMatch(/dne::esp_encap/);
  });

  test('opening runs through aesni_gcm_decrypt', () => {
    const out = underGdb('aesni_gcm_decrypt', 'open');
    expect(out).toMatch(/hit Breakpoint 1, .*aesni_gcm_decrypt/);
    expect(out).toMatch(/dne::AesGcm::open/);
  });

  test('control: with AES-NI and PCLMULQDQ masked the accelerated routine is never reached', () => {
    const out = underGdb('aesni_gcm_encrypt', 'open', { ...process.env, OPENSSL_ia32cap: MASK_AESNI_PCLMUL });
    expect(out).not.toMatch(/hit Breakpoint/);
    expect(out).toMatch(/sealed and opened/);
    expect(out).toMatch(/exited normally/);
  });
});
