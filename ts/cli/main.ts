#!/usr/bin/env node
/**
 * The one `dne` command. Components hang their subcommands here as they land
 * (server, manager, controller, keymanager, agent, ctl, pki, demo).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { DneError } from '../common/errors';
import { registerPkiCommand } from '../common/pki-command';
import { registerAgentCommand } from '../agent/command';
import { registerKeyManagerCommand } from '../keymanager/command';
import { registerManagerCommand } from '../manager/command';
import { registerControllerCommand } from '../controller/command';
import { packageRoot } from '../native/loader';
import { registerServerCommand } from '../server/command';
import { registerDemoCommand } from '../demo/command';
import { printSelftest, runSelftest } from './selftest';

export function buildCli(): Command {
  const program = new Command();
  program
    .name('dne')
    .description('Distributed network encryption for Linux hosts')
    .version(JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version as string);

  program
    .command('selftest')
    .description('seal and open real IPv4/IPv6 packets with the native ESP engine and check the results')
    .allowExcessArguments(false)
    .option('--json', 'print the report as JSON')
    .action((opts: { json?: boolean }) => {
      const report = runSelftest();
      if (opts.json) {
        process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      } else {
        printSelftest(report, (l) => process.stdout.write(l + '\n'));
      }
      process.exitCode = report.ok ? 0 : 1;
    });

  // Subcommands reuse option names (keymanager --db / keymanager rewrap --db): options belong to the command they follow.
  program.enablePositionalOptions();
  // In the order an operator meets them: the main job, the deployment, its services, the host side, tools.
  registerDemoCommand(program);
  registerServerCommand(program);
  registerManagerCommand(program);
  registerControllerCommand(program);
  registerKeyManagerCommand(program);
  registerAgentCommand(program);
  registerPkiCommand(program);
  return program;
}

if (require.main === module) {
  // A closed pipe (`dne ... | head`) or a full disk ends output quietly
  // instead of with a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      if (err.code === 'ENOSPC') process.exit(1);
      throw err;
    });
  }
  buildCli()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      const msg = err instanceof DneError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
      process.stderr.write(`dne: ${msg}\n`);
      process.exitCode = 2;
    });
}
