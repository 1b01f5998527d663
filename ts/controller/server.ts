/**
 * Runs the controller as a process: reads the configuration, the TLS files
 * and the grant signing key, opens its database, connects to the manager's
 * feed and the key manager, listens, and closes gracefully on SIGTERM/SIGINT.
 */
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { loadGrantSigningKey } from '../common/grant';
import { createLogger, LogLevel } from '../common/logging';
import { privateFileProblem } from '../common/secure-files';
import { buildControllerApp, ControllerApp } from './app';
import { ControllerConfig } from './config';
import { ControllerService, DEFAULT_SETTINGS } from './service';
import { ControllerStore } from './store';
import { HttpsFeedSource, HttpsKeyAuthority } from './upstream';

function readFile(what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new DneError(ErrorCodes.config, `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function startController(c: ControllerConfig, logger?: Logger): Promise<ControllerApp> {
  const log = (logger ?? createLogger('controller', c.logLevel as LogLevel)).child({ instance: c.instanceId });
  for (const [what, f] of [
    ['TLS key', c.tls.key],
    ['grant signing key', c.grantKey],
  ] as const) {
    const p = privateFileProblem(f);
    if (p) throw new DneError(ErrorCodes.config, `refusing the ${what}: ${p}`);
  }
  const tls = { cert: readFile('TLS certificate', c.tls.cert), key: readFile('TLS key', c.tls.key), ca: readFile('CA bundle', c.tls.ca) };
  let grantKey;
  try {
    grantKey = loadGrantSigningKey(readFile('grant signing key', c.grantKey));
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

/** Closes on the first SIGTERM/SIGINT; a second one exits at once. */
export function closeOnSignals(app: ControllerApp, log: Logger): void {
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
