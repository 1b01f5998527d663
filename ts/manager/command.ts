/**
 * `dne manager`: the policy API (issue #5).
 *   dne manager [--config F] [--pki-dir DIR --name NAME] [--db F] [--host H] [--port P]
 *               [--admin-token-file F]... [--no-auto-publish-inventory] [--auto-publish-min-interval S]
 *               [--trust-reported-tag-scope SCOPE]... [--log-level L]
 *   dne manager hash-token        reads a token on stdin, prints its SHA-256 for adminTokens
 */
import { Command, Option } from 'commander';
import { collect, int } from '../common/cli-options';
import { DneError, ErrorCodes } from '../common/errors';
import { createLogger, LOG_LEVELS, LogLevel } from '../common/logging';
import { closeOnSignals } from '../common/service';
import { hashToken } from './app';
import { loadManagerConfig, ManagerFlags } from './config';
import { startManager } from './server';

export function registerManagerCommand(program: Command, out: (l: string) => void = (l) => process.stdout.write(l + '\n')): void {
  const m = program
    .command('manager')
    .description('the manager: policy API (NSX-style /api/v1/network-encryption), publish, explain, statistics')
    .enablePositionalOptions()
    .option('--config <file>', 'configuration file (.json, .yaml or .yml)')
    .option('--pki-dir <dir>', 'take tls cert/key/ca from a `dne pki` directory (manager-NAME.*, ca.crt)')
    .option('--name <name>', 'instance name (default m1)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8444; 0 picks one)', int('--port'))
    .option('--db <file>', 'SQLite database file (default manager.db)')
    .option('--tls-cert <file>', 'server certificate')
    .option('--tls-key <file>', 'server key (mode 0600)')
    .option('--tls-ca <file>', 'CA bundle that client certificates must chain to')
    .option('--admin-token-file <file>', 'file holding an administrator bearer token (mode 0600; repeatable)', collect)
    .option('--no-auto-publish-inventory', 'do not re-publish when inventory changes (agents, workload tags)')
    .option('--auto-publish-min-interval <seconds>', 'at most one inventory auto-publish per this many seconds; changes in between are coalesced (default 2; 0: each at once)', int('--auto-publish-min-interval'))
    .option(
      '--trust-reported-tag-scope <scope>',
      'let agent-reported tags of this scope count for group membership (repeatable; RISK: any host can then join groups selected by it and get their keys)',
      collect,
    )
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .action(async (flags: ManagerFlags, cmd: Command) => {
      // commander defaults a --no-* option to true; only a flag actually given overrides the file.
      const fromCli = cmd.getOptionValueSource('autoPublishInventory') === 'cli';
      const config = loadManagerConfig({ ...flags, autoPublishInventory: fromCli ? false : undefined });
      const log = createLogger('manager', config.logLevel as LogLevel);
      const app = await startManager(config, log);
      closeOnSignals(app, log);
    });

  m.command('hash-token')
    .description('print the SHA-256 of a token read from stdin, for adminTokens in the config file')
    .action(async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const token = Buffer.concat(chunks).toString('utf8').trim();
      if (!token) throw new DneError(ErrorCodes.config, 'no token on stdin');
      out(hashToken(token));
    });
}
