/**
 * `dne pki init|issue`: the command-line face of pki.ts. Prints every file it
 * wrote (with its mode) and every file it kept.
 */
import { Command, Option } from 'commander';
import { DneError, ErrorCodes } from './errors';
import { ROLES, Role } from './identity';
import { initCa, issueCertificate, PkiResult } from './pki';

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function intArg(name: string) {
  return (v: string): number => {
    if (!/^[0-9]+$/.test(v)) throw new DneError(ErrorCodes.pki, `${name} must be a positive integer`);
    return Number(v);
  };
}

function report(r: PkiResult, out: (l: string) => void): void {
  for (const w of r.written) out(`wrote ${w.file} (${w.mode.toString(8).padStart(4, '0')})`);
  for (const k of r.kept) out(`kept  ${k} (exists and matches; --force replaces it)`);
}

export function registerPkiCommand(program: Command, out: (l: string) => void = (l) => process.stdout.write(l + '\n')): void {
  const pki = program.command('pki').description('development CA and certificates for components and hosts (operators may use their own CA)');

  pki
    .command('init')
    .description('create ca.crt and ca.key (ECDSA P-256) in DIR; an existing CA is kept')
    .requiredOption('--dir <dir>', 'PKI directory')
    .option('--cn <name>', 'CA common name', 'dne development CA')
    .option('--days <n>', 'validity in days', intArg('--days'), 3650)
    .option('--force', 'replace an existing CA (every certificate it issued stops being trusted)')
    .action(async (o: { dir: string; cn: string; days: number; force?: boolean }) => {
      report(await initCa({ dir: o.dir, commonName: o.cn, days: o.days, force: o.force }), out);
    });

  pki
    .command('issue')
    .description('issue ROLE-NAME.crt/.key signed by the CA in DIR (controllers also get an Ed25519 grant-signing pair)')
    .requiredOption('--dir <dir>', 'PKI directory (holds ca.crt/ca.key unless --ca-cert/--ca-key)')
    .addOption(new Option('--role <role>', 'component role').choices([...ROLES]).makeOptionMandatory())
    .requiredOption('--name <name>', 'component or host name (CN and dne://ROLE/NAME)')
    .option('--dns <names>', 'comma-separated DNS SANs (servers default to localhost)', list)
    .option('--ip <addrs>', 'comma-separated IP SANs (servers default to 127.0.0.1)', list)
    .option('--days <n>', 'validity in days', intArg('--days'), 365)
    .option('--ca-cert <file>', "an operator's CA certificate instead of DIR/ca.crt")
    .option('--ca-key <file>', "that CA's private key instead of DIR/ca.key")
    .option('--force', 'replace existing files')
    .action(
      async (o: { dir: string; role: Role; name: string; dns?: string[]; ip?: string[]; days: number; caCert?: string; caKey?: string; force?: boolean }) => {
        report(
          await issueCertificate({
            dir: o.dir,
            role: o.role,
            name: o.name,
            dns: o.dns,
            ip: o.ip,
            days: o.days,
            force: o.force,
            caCertFile: o.caCert,
            caKeyFile: o.caKey,
          }),
          out,
        );
      },
    );
}
