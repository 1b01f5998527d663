/**
 * Runs the manager as a process: reads the configuration and the TLS files,
 * opens the store, listens, and closes gracefully on SIGTERM/SIGINT
 * (in-flight requests finish, long-polls answer, the store is closed).
 */
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { createLogger, LogLevel } from '../common/logging';
import { privateFileProblem } from '../common/secure-files';
import { buildManagerApp, ManagerApp } from './app';
import { adminTokensOf, ManagerConfig } from './config';
import { SqliteManagerStore } from './sqlite-store';

function readFile(what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new DneError(ErrorCodes.config, `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function startManager(c: ManagerConfig, logger?: Logger): Promise<ManagerApp> {
  const log = logger ?? createLogger('manager', c.logLevel as LogLevel);
  const keyProblem = privateFileProblem(c.tls.key);
  if (keyProblem) throw new DneError(ErrorCodes.config, `refusing the TLS key: ${keyProblem}`);
  const tls = { cert: readFile('TLS certificate', c.tls.cert), key: readFile('TLS key', c.tls.key), ca: readFile('CA bundle', c.tls.ca) };
  const adminTokens = adminTokensOf(c);
  const store = new SqliteManagerStore(c.store.path);
  const app = await buildManagerApp({ tls, store, settings: { autoPublishInventory: c.autoPublishInventory }, adminTokens, logger: log, bodyLimit: c.bodyLimitBytes });
  try {
    await app.listen({ host: c.listen.host, port: c.listen.port });
  } catch (err) {
    await app.close();
    throw new DneError(ErrorCodes.config, `cannot listen on ${c.listen.host}:${c.listen.port}: ${(err as Error).message}`);
  }
  const addr = app.server.address();
  log.info(
    {
      port: typeof addr === 'object' && addr ? addr.port : c.listen.port,
      host: c.listen.host,
      db: c.store.path,
      adminTokens: adminTokens.map((t) => t.name),
      autoPublishInventory: c.autoPublishInventory,
    },
    'manager listening',
  );
  return app;
}

/** Closes on the first SIGTERM/SIGINT; a second one exits at once. */
export function closeOnSignals(app: ManagerApp, log: Logger): void {
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
