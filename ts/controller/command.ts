/**
 * `dne controller [--config F] [flags]`: the controller service. Flags alone
 * are enough; `dne server` starts it as a child process that way.
 */
import { Command, Option } from 'commander';
import { collect, int } from '../common/cli-options';
import { createLogger, LOG_LEVELS, LogLevel } from '../common/logging';
import { closeOnSignals } from '../common/service';
import { ControllerFlags, loadControllerConfig } from './config';
import { startController } from './server';

export function registerControllerCommand(program: Command): void {
  program
    .command('controller')
    .description('the controller service: per-host configs to agents, key-access grants, key rollover (mutual TLS only)')
    .option('--config <file>', 'configuration file (.json, .yaml or .yml)')
    .option('--pki-dir <dir>', 'take controller-NAME.crt/.key/.grant.key and ca.crt from a `dne pki` directory')
    .option('--name <name>', 'instance id (default c1)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8445; 0 picks one)', int('--port'))
    .option('--db <file>', 'SQLite database file (default controller.db)')
    .option('--tls-cert <file>', 'server/client certificate')
    .option('--tls-key <file>', 'its key (mode 0600)')
    .option('--tls-ca <file>', 'CA bundle peers must chain to')
    .option('--grant-key <file>', 'Ed25519 grant signing key (controller-NAME.grant.key, mode 0600)')
    .option('--manager-url <url>', 'manager base URL (default https://localhost:8444)')
    .option('--keymanager-url <url>', 'key manager base URL (repeatable; default https://localhost:8443)', collect)
    .option('--ack-timeout <seconds>', 'longest wait for agents to acknowledge a new key before activating it (default 60)', int('--ack-timeout'))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .action(async (flags: ControllerFlags) => {
      const config = loadControllerConfig(flags);
      const log = createLogger('controller', config.logLevel as LogLevel);
      const app = await startController(config, log);
      closeOnSignals(app, log);
    });
}
