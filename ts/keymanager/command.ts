/**
 * `dne keymanager` and its tools:
 *   dne keymanager [--config F] [flags]        run the service
 *   dne keymanager rewrap --db F --old-master F --new-master F
 *   dne keymanager master-key --out F          a new random master key, 0600
 *   dne keymanager grant --signing-key F --host H --key-ids a,b
 *                                              sign a grant by hand (development
 *                                              and tests; controllers do this in production)
 */
import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { collect, int } from '../common/cli-options';
import { DneError, ErrorCodes } from '../common/errors';
import { createGrant, loadGrantSigningKey, UUID_PATTERN } from '../common/grant';
import { isValidName } from '../common/identity';
import { createLogger, LOG_LEVELS, LogLevel } from '../common/logging';
import { privateFileProblem } from '../common/secure-files';
import { closeOnSignals } from '../common/service';
import { KeyManagerFlags, loadKeyManagerConfig } from './config';
import { generateMasterKeyFile, masterKeyFromFile } from './master-key';
import { startKeyManager } from './server';
import { KeyService } from './service';
import { SqliteKeyStore } from './sqlite-store';

export function registerKeyManagerCommand(program: Command, out: (l: string) => void = (l) => process.stdout.write(l + '\n')): void {
  const km = program
    .command('keymanager')
    .description('the key manager service (mutual TLS only); subcommands are offline tools')
    .enablePositionalOptions()
    .option('--config <file>', 'configuration file (.json, .yaml or .yml)')
    .option('--pki-dir <dir>', 'take tls cert/key/ca from a `dne pki` directory (keymanager-NAME.*, ca.crt); trust the grant keys named with --trust-controller')
    .option('--trust-controller <name>', 'with --pki-dir: trust controller-NAME.grant.pub from it (repeatable)', collect)
    .option('--name <name>', 'instance id (default km1)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8443; 0 picks one)', int('--port'))
    .option('--db <file>', 'SQLite database file')
    .option('--tls-cert <file>', 'server certificate')
    .option('--tls-key <file>', 'server key (mode 0600)')
    .option('--tls-ca <file>', 'CA bundle that client certificates must chain to')
    .option('--master-key-file <file>', 'master key (32 bytes raw or hex, mode 0600); else DNE_KM_MASTER_KEY')
    .addOption(new Option('--sender-id-bits <n>', 'sender-ID width (default 24)').choices(['8', '16', '24', '32']).argParser(Number))
    .option('--sender-id-range <start-end>', "this instance's sender-ID range, END exclusive (default 1-2^bits)")
    .option('--grant-key <file>', 'trusted controller grant public key (repeatable)', collect)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .option('--accept-restored-store', 'start on a database restored from a backup or copied (behind its sender-ID high-water mark): raise the counters first; rotate every key afterwards')
    .action(async (flags: KeyManagerFlags & { acceptRestoredStore?: boolean }) => {
      const config = loadKeyManagerConfig(flags);
      const log = createLogger('keymanager', config.logLevel as LogLevel);
      const app = await startKeyManager(config, log, { acceptRestoredStore: !!flags.acceptRestoredStore });
      closeOnSignals(app, log);
    });

  km.command('rewrap')
    .description('re-seal every stored key under a new master key, in one transaction (stop the key manager first)')
    .requiredOption('--db <file>', 'SQLite database file')
    .requiredOption('--old-master <file>', 'current master key file (0600)')
    .requiredOption('--new-master <file>', 'new master key file (0600; make one with `dne keymanager master-key`)')
    .action(async (o: { db: string; oldMaster: string; newMaster: string }) => {
      const from = masterKeyFromFile(o.oldMaster);
      const next = masterKeyFromFile(o.newMaster);
      const store = new SqliteKeyStore(o.db, { mustExist: true });
      try {
        const n = await KeyService.rewrap(store, from, next);
        out(`re-wrapped ${n} key(s) in ${o.db}: master key id ${from.id} -> ${next.id}`);
      } finally {
        await store.close();
        from.destroy();
        next.destroy();
      }
    });

  km.command('master-key')
    .description('write a new random 32-byte master key (hex) with mode 0600')
    .requiredOption('--out <file>', 'where to write it')
    .option('--force', 'replace an existing file (keys sealed under it become unreadable)')
    .action((o: { out: string; force?: boolean }) => {
      generateMasterKeyFile(o.out, !!o.force);
      const id = masterKeyFromFile(o.out);
      out(`wrote ${o.out} (0600), master key id ${id.id}`);
      id.destroy();
    });

  km.command('grant')
    .description('sign a key-access grant with a controller grant key (development and tests)')
    .requiredOption('--signing-key <file>', 'controller-NAME.grant.key')
    .requiredOption('--host <name>', 'host the grant is for')
    .requiredOption('--key-ids <uuids>', 'comma-separated KeyIDs')
    .option('--ttl <seconds>', 'lifetime', int('--ttl'), 60)
    .action((o: { signingKey: string; host: string; keyIds: string; ttl: number }) => {
      const problem = privateFileProblem(o.signingKey);
      if (problem) throw new DneError(ErrorCodes.config, `refusing the signing key: ${problem}`);
      if (!isValidName(o.host)) throw new DneError(ErrorCodes.config, '--host is not a valid host name');
      const ids = o.keyIds.split(',').map((s) => s.trim());
      const re = new RegExp(UUID_PATTERN);
      if (!ids.length || !ids.every((k) => re.test(k))) throw new DneError(ErrorCodes.config, '--key-ids must be comma-separated UUIDs');
      out(createGrant({ host: o.host, keyIds: ids, ttlSeconds: o.ttl }, loadGrantSigningKey(fs.readFileSync(o.signingKey))));
    });
}
