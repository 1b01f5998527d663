/** `dne server`: manager + controller + key manager on one machine (ts/server/server.ts). */
import { Command, Option } from 'commander';
import { DneError, ErrorCodes } from '../common/errors';
import { LOG_LEVELS } from '../common/logging';
import { Component, prepareServerDir, Server, ServerOptions } from './server';

function port(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new DneError(ErrorCodes.config, `${flag} must be a port number 1-65535, got ${JSON.stringify(v)}`);
    return n;
  };
}

export function registerServerCommand(program: Command, out: (l: string) => void = (l) => process.stdout.write(l + '\n')): void {
  program
    .command('server')
    .description('run manager, controller and key manager on this machine (embedded SQLite, development PKI in --dir)')
    .option('--dir <dir>', 'data directory: PKI, stores, logs, admin token (created if missing, kept on restart)', 'dne-server')
    .option('--host <host>', 'listen address of all three', '127.0.0.1')
    .option('--keymanager-port <port>', 'key manager port (default 8443)', port('--keymanager-port'))
    .option('--manager-port <port>', 'manager port (default 8444)', port('--manager-port'))
    .option('--controller-port <port>', 'controller port (default 8445)', port('--controller-port'))
    .option('--ack-timeout <seconds>', 'controller: how long a rollover waits for hosts that do not acknowledge a new key')
    .option('--no-restart', 'do not restart a component that exits on its own')
    .addOption(new Option('--log-level <level>', 'log level of the components').choices(LOG_LEVELS))
    .action(async (o: { dir: string; host: string; keymanagerPort?: number; managerPort?: number; controllerPort?: number; ackTimeout?: string; restart: boolean; logLevel?: string }) => {
      const ports: Partial<Record<Component, number>> = {};
      if (o.keymanagerPort) ports.keymanager = o.keymanagerPort;
      if (o.managerPort) ports.manager = o.managerPort;
      if (o.controllerPort) ports.controller = o.controllerPort;
      const opts: ServerOptions = { dir: o.dir, host: o.host, ports, restart: o.restart };
      if (o.logLevel) opts.logLevel = o.logLevel;
      if (o.ackTimeout !== undefined) {
        const n = Number(o.ackTimeout);
        if (!/^\d+$/.test(o.ackTimeout) || n < 1) throw new DneError(ErrorCodes.config, `--ack-timeout must be a whole number of seconds >= 1, got ${JSON.stringify(o.ackTimeout)}`);
        opts.ackTimeoutSeconds = n;
      }
      const L = await prepareServerDir(opts, out);
      const server = new Server(L, opts, out);
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) {
          out(`${sig} again: exiting now`);
          process.exit(1);
        }
        stopping = true;
        server.expectStop();
        out(`${sig}: stopping the components`);
        void server.stop().then(() => process.exit(0));
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      try {
        await server.start();
      } catch (err) {
        await server.stop();
        throw err;
      }
      out(`ready. REST API: ${L.urls.manager}/api/v1/network-encryption  (Authorization: Bearer $(cat ${L.adminTokenFile}))`);
      out(`host certificates: dne pki issue --dir ${L.pkiDir} --role host --name HOST`);
    });
}
