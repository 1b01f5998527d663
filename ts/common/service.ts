/**
 * What the TLS services (key manager, manager, controller) share when they
 * run as a process: reading the files their configuration names, refusing a
 * secret file others can read, and closing gracefully on SIGTERM/SIGINT.
 */
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from './errors';
import { privateFileProblem } from './secure-files';

/** Reads a file the configuration names; a failure is a configuration error naming WHAT and the file. */
export function readConfiguredFile(what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new DneError(ErrorCodes.config, `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Refuses a secret file (TLS key, signing key) that group or others can read, or that someone else owns. */
export function refuseUnprivateFile(what: string, file: string): void {
  const problem = privateFileProblem(file);
  if (problem) throw new DneError(ErrorCodes.config, `refusing the ${what}: ${problem}`);
}

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** Reads the certificate, key and CA bundle (the key's mode is checked by the caller first). */
export function readTlsFiles(t: TlsFiles): { cert: Buffer; key: Buffer; ca: Buffer } {
  return { cert: readConfiguredFile('TLS certificate', t.cert), key: readConfiguredFile('TLS key', t.key), ca: readConfiguredFile('CA bundle', t.ca) };
}

/** Closes on the first SIGTERM/SIGINT; a second one exits at once. */
export function closeOnSignals(app: { close(): Promise<unknown> }, log: Logger): void {
  let closing = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (closing) {
      log.warn({ signal: sig }, 'second signal, exiting now');
      process.exit(1);
    }
    closing = true;
    log.info({ signal: sig }, 'closing');
    app
      .close()
      .then(() => {
        log.info('closed');
        process.exitCode = 0;
      })
      .catch((err: unknown) => {
        log.error({ err }, 'close failed');
        process.exitCode = 1;
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
