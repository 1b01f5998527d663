#!/usr/bin/env node
/**
 * `dnectl ARGS` = `dne ctl ARGS`: the operator's short name for the agent's
 * control client (issue #7). The ctl commands sit on the program itself, so
 * its help and errors read `dnectl ...`, not `dnectl ctl ...`.
 */
import { Command } from 'commander';
import { DneError } from '../common/errors';
import { configureCtl } from './ctl';

export function buildDnectl(out?: (s: string) => void): Command {
  // Positional options as under `dne`: options before a command belong to dnectl, after it to the command.
  const program = new Command().name('dnectl').description("query this host's agent over its local endpoint (= dne ctl)").enablePositionalOptions();
  return configureCtl(program, out);
}

if (require.main === module) {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  buildDnectl()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      const msg = err instanceof DneError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
      process.stderr.write(`dnectl: ${msg}\n`);
      process.exitCode = 2;
    });
}
