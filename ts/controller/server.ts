/**
 * Runs the controller as a process: reads the configuration, the TLS files
 * and the grant signing key, opens its database, connects to the manager's
 * feed and the key manager, listens, and closes gracefully on SIGTERM/SIGINT.
 */
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { loadGrantSigningKey } from '../common/grant';
import { createLogger, LogLevel } from '../common/logging';
import { readConfiguredFile, readTlsFiles, refuseUnprivateFile } from '../common/service';
import { buildControllerApp, ControllerApp } from './app';
import { ControllerConfig } from './config';
import { ControllerService, DEFAULT_SETTINGS } from './service';
import { ControllerStore } from './store';
import { HttpsFeedSource, HttpsKeyAuthority } from './upstream';

export async function startController(c: ControllerConfig, logger?: Logger): Promise<ControllerApp> {
  const log = (logger ?? createLogger('controller', c.logLevel as LogLevel)).child({ instance: c.instanceId });
  refuseUnprivateFile('TLS key', c.tls.key);
  refuseUnprivateFile('grant signing key', c.grantKey);
  const tls = readTlsFiles(c.tls);
  let grantKey;
  try {
    grantKey = loadGrantSigningKey(readConfiguredFile('grant signing key', c.grantKey));
  } catch (err) {
    if (err instanceof DneError) throw err;
    throw new DneError(ErrorCodes.config, `grant signing key ${c.grantKey}: ${(err as Error).message}`);
  }
  const store = new ControllerStore(c.store.path);
  const service = new ControllerService({
    store,
    keys: new HttpsKeyAuthority(c.keyManagerUrls, tls),
    feed: new HttpsFeedSource(c.managerUrl, tls),
    grantKey,
    settings: {
      ...DEFAULT_SETTINGS,
      instanceId: c.instanceId,
      ackTimeoutSeconds: c.ackTimeoutSeconds,
      livenessSeconds: c.livenessSeconds,
      grantTtlSeconds: c.grantTtlSeconds,
    },
    logger: log,
  });
  let app: ControllerApp;
  try {
    await service.start();
    app = await buildControllerApp({ tls, service, logger: log, bodyLimit: c.bodyLimitBytes, ownService: false });
    // The service first (it commits pending acks), then its database.
    app.addHook('onClose', async () => {
      await service.close();
      store.close();
    });
    await app.listen({ host: c.listen.host, port: c.listen.port });
  } catch (err) {
    await service.close();
    store.close();
    throw err;
  }
  const addr = app.server.address();
  log.info(
    { host: c.listen.host, port: typeof addr === 'object' && addr ? addr.port : c.listen.port, db: c.store.path, manager: c.managerUrl, keyManagers: c.keyManagerUrls },
    'controller listening',
  );
  return app;
}
