/**
 * Keys at rest are sealed under a master key (envelope encryption):
 * AES-256-GCM, a fresh random 12-byte nonce per seal (NIST SP 800-38D §8.2.2;
 * far below the 2^32 random-nonce limit for any realistic number of keys), and
 * AAD = "dne-km/v1|keyId|policyId|algorithm", so a row copied or swapped into
 * another key's place fails to open instead of yielding the wrong key.
 *
 * Sealed form: 0x01 | nonce(12) | ciphertext | tag(16).
 *
 * The master key comes from a file (32 raw bytes or 64 hex digits, mode 0600,
 * owned by the running user) or from DNE_KM_MASTER_KEY (64 hex digits). It is
 * identified by a non-secret id, HMAC-SHA256(master, label) truncated, which
 * is stored with every row so a wrong master key is reported as such.
 */
import * as fs from 'node:fs';
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { DneError, ErrorCodes } from '../common/errors';
import { privateFileProblem, writeFileAtomic } from '../common/secure-files';

export const MASTER_KEY_BYTES = 32;
export const MASTER_KEY_ENV = 'DNE_KM_MASTER_KEY';
const SEAL_VERSION = 0x01;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

function mkError(message: string): DneError {
  return new DneError(ErrorCodes.masterKey, message);
}

export function keyAad(keyId: string, policyId: string, algorithm: string): Buffer {
  return Buffer.from(`dne-km/v1|${keyId}|${policyId}|${algorithm}`, 'utf8');
}

export class MasterKey {
  readonly id: string;
  readonly #key: Buffer;

  constructor(bytes: Buffer) {
    if (bytes.length !== MASTER_KEY_BYTES) throw mkError(`a master key is ${MASTER_KEY_BYTES} bytes, got ${bytes.length}`);
    this.#key = Buffer.from(bytes);
    this.id = createHmac('sha256', this.#key).update('dne keymanager master key id v1').digest('hex').slice(0, 16);
  }

  seal(plain: Buffer, aad: Buffer): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([Buffer.from([SEAL_VERSION]), nonce, ct, c.getAuthTag()]);
  }

  /** Throws when the blob was sealed under another key or AAD, or was altered. */
  open(sealed: Buffer, aad: Buffer): Buffer {
    if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== SEAL_VERSION) throw new Error('sealed key has an unknown format');
    const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const d = createDecipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES)), d.final()]);
  }

  /** Zero-fills the key; the object is unusable afterwards. */
  destroy(): void {
    this.#key.fill(0);
  }
}

function parseMasterKey(raw: Buffer, source: string): MasterKey {
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new MasterKey(Buffer.from(text, 'hex'));
  if (raw.length === MASTER_KEY_BYTES) return new MasterKey(raw);
  throw mkError(`${source} must hold ${MASTER_KEY_BYTES} raw bytes or ${MASTER_KEY_BYTES * 2} hex digits (it holds ${raw.length} bytes)`);
}

export function masterKeyFromFile(file: string): MasterKey {
  const problem = privateFileProblem(file);
  if (problem) throw mkError(`refusing the master key file: ${problem}`);
  const raw = fs.readFileSync(file);
  try {
    return parseMasterKey(raw, `the master key file ${file}`);
  } finally {
    raw.fill(0);
  }
}

export function masterKeyFromEnv(value: string): MasterKey {
  if (!/^[0-9a-fA-F]{64}$/.test(value.trim())) throw mkError(`${MASTER_KEY_ENV} must be ${MASTER_KEY_BYTES * 2} hex digits`);
  return new MasterKey(Buffer.from(value.trim(), 'hex'));
}

/** The configured file wins; else the environment; else a precise refusal. */
export function loadMasterKey(opts: { file?: string; env?: NodeJS.ProcessEnv }): MasterKey {
  if (opts.file) return masterKeyFromFile(opts.file);
  const v = (opts.env ?? process.env)[MASTER_KEY_ENV];
  if (v) return masterKeyFromEnv(v);
  throw mkError(`no master key: set masterKeyFile in the config (or --master-key-file), or ${MASTER_KEY_ENV}`);
}

/** Writes a new random master key as hex, mode 0600. Refuses to overwrite one (that would orphan every stored key). */
export function generateMasterKeyFile(file: string, force = false): void {
  if (fs.existsSync(file) && !force) throw mkError(`${file} exists; refusing to replace a master key (use rewrap to change keys)`);
  const k = randomBytes(MASTER_KEY_BYTES);
  writeFileAtomic(file, k.toString('hex') + '\n', 0o600);
  k.fill(0);
}
