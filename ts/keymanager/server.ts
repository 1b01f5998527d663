/**
 * Runs the key manager as a process: reads the configuration, the TLS files,
 * the trusted grant keys and the master key, opens the store, listens, and
 * closes gracefully on SIGTERM/SIGINT (in-flight requests finish, the store
 * is closed, the master key is wiped).
 */
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { trustedGrantKey } from '../common/grant';
import { createLogger, LogLevel } from '../common/logging';
import { readConfiguredFile, readTlsFiles, refuseUnprivateFile } from '../common/service';
import { buildKeyManagerApp, KeyManagerApp } from './app';
import { KeyManagerConfig } from './config';
import { loadMasterKey } from './master-key';
import { KeyManagerSettings } from './service';
import { SqliteKeyStore } from './sqlite-store';

export function settingsFromConfig(c: KeyManagerConfig): KeyManagerSettings {
  return {
    instanceId: c.instanceId,
    senderIdBits: c.senderIds.bits,
    senderRange: { start: c.senderIds.start, end: c.senderIds.end },
    grantKeys: c.grants.trustedKeys.map((f) => {
      try {
        return trustedGrantKey(readConfiguredFile('trusted grant key', f));
      } catch (err) {
        if (err instanceof DneError) throw err;
        throw new DneError(ErrorCodes.config, `trusted grant key ${f}: ${(err as Error).message}`);
      }
    }),
    grantMaxLifetimeSeconds: c.grants.maxLifetimeSeconds,
    grantClockSkewSeconds: c.grants.clockSkewSeconds,
  };
}

export async function startKeyManager(c: KeyManagerConfig, logger?: Logger, o: { acceptRestoredStore?: boolean } = {}): Promise<KeyManagerApp> {
  const log = logger ?? createLogger('keymanager', c.logLevel as LogLevel);
  refuseUnprivateFile('TLS key', c.tls.key);
  const tls = readTlsFiles(c.tls);
  const settings: KeyManagerSettings = { ...settingsFromConfig(c), acceptRestoredStore: !!o.acceptRestoredStore };
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
