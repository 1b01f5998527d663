#!/usr/bin/env node
/**
 * `dnectl ARGS` = `dne ctl ARGS`: the operator's short name for the agent's
 * control client (issue #7).
 */
import { Command } from 'commander';
import { DneError } from '../common/errors';
import { registerCtlCommand } from './ctl';

if (require.main === module) {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = new Command().name('dnectl').enablePositionalOptions();
  registerCtlCommand(program);
  program
    .parseAsync([process.argv[0]!, 'dnectl', 'ctl', ...process.argv.slice(2)])
    .catch((err: unknown) => {
      const msg = err instanceof DneError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
      process.stderr.write(`dnectl: ${msg}\n`);
      process.exitCode = 2;
    });
}
