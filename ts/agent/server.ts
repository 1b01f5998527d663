/**
 * Runs the agent as a process: the filter, the clients of the controller,
 * manager and key managers (mutual TLS with this host's certificate), the
 * syslog writer, the local endpoint; SIGTERM/SIGINT stop the long-poll,
 * send a last stats report, close the endpoint and the filter (which wipes
 * every key in native memory). Nothing is written to disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { DneError, ErrorCodes } from '../common/errors';
import { createLogger, LogLevel } from '../common/logging';
import { MtlsClient } from '../common/mtls-client';
import { loadAddon } from '../native/loader';
import { Agent, KeySource } from './agent';
import type { AgentConfig } from './config';
import { createFilterDataplane, Dataplane } from './dataplane';
import { KeyFetcher } from './keys';
import { AgentApi, buildAgentApi } from './local-api';
import { createAgentMetrics } from './metrics';
import { SecurityLog } from './syslog';
import { loadHostTls } from './tls-check';

export interface RunningAgent {
  agent: Agent;
  api: AgentApi;
  /** Where the endpoint listens: http://127.0.0.1:PORT or unix:PATH. */
  endpoint: string;
  close(): Promise<void>;
}

export interface StartAgentOptions {
  /** A dataplane to use instead of the native filter (tests). */
  dataplane?: Dataplane;
  /** A key source to use instead of the key managers (tests). */
  keys?: KeySource;
  logger?: Logger;
}

/**
 * The socket's directory (/run/dne in the example config: /run is a tmpfs,
 * so it is gone after every boot) is created when missing, 0750: group
 * members may reach the socket (0660), others may not even look.
 */
function socketDirectory(sock: string): void {
  const dir = path.dirname(sock);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DneError(ErrorCodes.config, `config/endpoint/socket: cannot use the directory ${dir}: ${(err as NodeJS.ErrnoException).code}`);
  }
  if (st && !st.isDirectory()) throw new DneError(ErrorCodes.config, `config/endpoint/socket: ${dir} is not a directory`);
  if (st) return;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    fs.chmodSync(dir, 0o750); // whatever the umask
  } catch (err) {
    throw new DneError(ErrorCodes.config, `config/endpoint/socket: the directory ${dir} does not exist and cannot be created: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function startAgent(c: AgentConfig, o: StartAgentOptions = {}): Promise<RunningAgent> {
  const log = o.logger ?? createLogger('agent', c.logLevel as LogLevel);
  // Mistakes in the identity files end the start with one line, instead of handshakes retried forever.
  const tls = loadHostTls(c.hostId, c.tls);
  const controller = new MtlsClient(c.controller, tls);
  const manager = new MtlsClient(c.manager, tls);
  const dataplane = o.dataplane ?? createFilterDataplane({ workers: c.filter.workers, defaultAction: c.filter.defaultAction });
  let agent: Agent | null = null;
  const keys: KeySource = o.keys ?? new KeyFetcher({
    hostId: c.hostId,
    tls,
    controller,
    keyManagers: c.keyManagers,
    workers: dataplane.workers,
    onReachable: (ok) => agent?.setReachable('keymanager', ok),
  });
  const syslog = new SecurityLog(c.syslog, (msg) => log.warn({ err: msg }, 'syslog delivery failed'));
  agent = new Agent(c, { dataplane, keys, controller, manager, syslog, log });
  const portCounterNames = (loadAddon() as unknown as { portCounterNames: string[] }).portCounterNames;
  const registry = createAgentMetrics(agent, portCounterNames);
  const api = await buildAgentApi(agent, registry, { logger: log });
  let endpoint: string;
  try {
    if (c.endpoint.socket) {
      const sock = c.endpoint.socket;
      socketDirectory(sock);
      // A socket left by a killed agent would make listen fail; anything else at that path is not ours to remove.
      if (fs.existsSync(sock)) {
        if (!fs.lstatSync(sock).isSocket()) throw new DneError(ErrorCodes.config, `${sock} exists and is not a socket`);
        fs.unlinkSync(sock);
      }
      try {
        await api.listen({ path: sock });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        throw new DneError(ErrorCodes.config, `config/endpoint/socket: cannot listen on ${sock}: ${code} (the agent must be able to create files in ${path.dirname(sock)})`);
      }
      fs.chmodSync(sock, 0o660);
      endpoint = `unix:${sock}`;
    } else {
      await api.listen({ host: c.endpoint.host, port: c.endpoint.port });
      const a = api.server.address();
      const port = typeof a === 'object' && a ? a.port : c.endpoint.port;
      endpoint = `http://${c.endpoint.host.includes(':') ? `[${c.endpoint.host}]` : c.endpoint.host}:${port}`;
    }
  } catch (err) {
    await api.close().catch(() => undefined);
    dataplane.close();
    keys.close();
    controller.close();
    manager.close();
    throw err;
  }
  agent.start();
  log.info({ hostId: c.hostId, endpoint, workers: dataplane.workers, bootId: agent.bootId }, 'agent started');
  let closing: Promise<void> | null = null;
  const a = agent;
  return {
    agent: a,
    api,
    endpoint,
    close() {
      closing ??= (async () => {
        await a.stop();
        await api.close();
      })();
      return closing;
    },
  };
}

export function closeOnSignals(r: RunningAgent, log: Logger): void {
  const stop = (sig: string) => {
    log.info({ signal: sig }, 'stopping');
    r.close()
      .then(() => process.exit(0))
      .catch((err: Error) => {
        log.error({ err: err.message }, 'stop failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
