/**
 * `dne agent --config agent.yaml`: runs the agent on this host (root, or
 * CAP_NET_RAW + CAP_NET_ADMIN for the filter's AF_PACKET sockets).
 * `dne ctl ...` is registered next to it (ctl.ts).
 */
import { Command, Option } from 'commander';
import { createLogger, LOG_LEVELS, LogLevel } from '../common/logging';
import { AgentFlags, loadAgentConfig } from './config';
import { registerCtlCommand } from './ctl';
import { closeOnSignals, startAgent } from './server';

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description("the host agent: owns this host's filter, follows the controller, fetches keys, serves the local endpoint")
    .requiredOption('--config <file>', 'agent configuration (YAML or JSON; see docs/agent.md)')
    .option('--endpoint <host:port>', 'local endpoint address (default 127.0.0.1:9477)')
    .option('--socket <path>', 'serve the local endpoint on a unix socket instead')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .action(async (flags: AgentFlags) => {
      const config = loadAgentConfig(flags);
      const log = createLogger('agent', config.logLevel as LogLevel);
      const running = await startAgent(config, { logger: log });
      closeOnSignals(running, log);
      // SIGHUP re-reads the file for the host's workloads (docs/agent.md "Reload").
      process.on('SIGHUP', () => {
        let next;
        try {
          next = loadAgentConfig(flags);
        } catch (err) {
          log.error({ err: (err as Error).message }, 'reload refused: the config file is invalid; the running config is kept');
          return;
        }
        running.agent
          .reloadWorkloads(next)
          .then(() => log.info({ workloads: next.workloads.length }, 'workloads reloaded'))
          .catch((err: Error) => log.error({ err: err.message }, 'reload refused'));
      });
    });
  registerCtlCommand(program);
}
