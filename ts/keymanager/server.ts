/**
 * Runs the key manager as a process: reads the configuration, the TLS files,
 * the trusted grant keys and the master key, opens the store, listens, and
 * closes gracefully on SIGTERM/SIGINT (in-flight requests finish, the store
 * is closed, the master key is wiped).
 */
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { trustedGrantKey } from '../common/grant';
import { createLogger, LogLevel } from '../common/logging';
import { privateFileProblem } from '../common/secure-files';
import { buildKeyManagerApp, KeyManagerApp } from './app';
import { KeyManagerConfig } from './config';
import { loadMasterKey } from './master-key';
import { KeyManagerSettings } from './service';
import { SqliteKeyStore } from './sqlite-store';

function readFile(what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new DneError(ErrorCodes.config, `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function settingsFromConfig(c: KeyManagerConfig): KeyManagerSettings {
  return {
    instanceId: c.instanceId,
    senderIdBits: c.senderIds.bits,
    senderRange: { start: c.senderIds.start, end: c.senderIds.end },
    grantKeys: c.grants.trustedKeys.map((f) => {
      try {
        return trustedGrantKey(readFile('trusted grant key', f));
      } catch (err) {
        if (err instanceof DneError) throw err;
        throw new DneError(ErrorCodes.config, `trusted grant key ${f}: ${(err as Error).message}`);
      }
    }),
    grantMaxLifetimeSeconds: c.grants.maxLifetimeSeconds,
    grantClockSkewSeconds: c.grants.clockSkewSeconds,
  };
}

export async function startKeyManager(c: KeyManagerConfig, logger?: Logger): Promise<KeyManagerApp> {
  const log = logger ?? createLogger('keymanager', c.logLevel as LogLevel);
  const keyProblem = privateFileProblem(c.tls.key);
  if (keyProblem) throw new DneError(ErrorCodes.config, `refusing the TLS key: ${keyProblem}`);
  const tls = { cert: readFile('TLS certificate', c.tls.cert), key: readFile('TLS key', c.tls.key), ca: readFile('CA bundle', c.tls.ca) };
  const settings = settingsFromConfig(c);
  const masterKey = loadMasterKey({ file: c.masterKeyFile });
  let store: SqliteKeyStore;
  try {
    store = new SqliteKeyStore(c.store.path);
  } catch (err) {
    masterKey.destroy();
    throw err;
  }
  const app = await buildKeyManagerApp({
    tls,
    store,
    masterKey,
    settings,
    logger: log,
    bodyLimit: c.bodyLimitBytes,
    expirySweepMs: c.expirySweepSeconds * 1000,
  });
  try {
    await app.listen({ host: c.listen.host, port: c.listen.port });
  } catch (err) {
    await app.close();
    throw err;
  }
  const addr = app.server.address();
  log.info(
    {
      instance: c.instanceId,
      port: typeof addr === 'object' && addr ? addr.port : c.listen.port,
      host: c.listen.host,
      db: c.store.path,
      senderIds: c.senderIds,
      trustedGrantKeys: settings.grantKeys.map((k) => k.id),
    },
    'key manager listening',
  );
  return app;
}

/** Closes on the first SIGTERM/SIGINT; a second one exits at once. */
export function closeOnSignals(app: KeyManagerApp, log: Logger): void {
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
