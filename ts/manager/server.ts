/**
 * Runs the manager as a process: reads the configuration and the TLS files,
 * opens the store, listens, and closes gracefully on SIGTERM/SIGINT
 * (in-flight requests finish, long-polls answer, the store is closed).
 */
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { createLogger, LogLevel } from '../common/logging';
import { readTlsFiles, refuseUnprivateFile } from '../common/service';
import { buildManagerApp, ManagerApp } from './app';
import { adminTokensOf, ManagerConfig } from './config';
import { SqliteManagerStore } from './sqlite-store';

export async function startManager(c: ManagerConfig, logger?: Logger): Promise<ManagerApp> {
  const log = logger ?? createLogger('manager', c.logLevel as LogLevel);
  refuseUnprivateFile('TLS key', c.tls.key);
  const tls = readTlsFiles(c.tls);
  const adminTokens = adminTokensOf(c);
  const store = new SqliteManagerStore(c.store.path);
  const app = await buildManagerApp({ tls, store, settings: { autoPublishInventory: c.autoPublishInventory, autoPublishMinIntervalSeconds: c.autoPublishMinIntervalSeconds, trustedReportedTagScopes: c.trustedReportedTagScopes }, adminTokens, logger: log, bodyLimit: c.bodyLimitBytes });
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
      autoPublishMinIntervalSeconds: c.autoPublishMinIntervalSeconds,
      trustedReportedTagScopes: c.trustedReportedTagScopes,
    },
    'manager listening',
  );
  return app;
}
