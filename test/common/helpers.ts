/**
 * Test helpers the component suites share: temporary folders removed when a
 * test file is done, a logger that writes nowhere (or into an array), and an
 * HTTPS request that answers with the parsed JSON body.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino, { Logger } from 'pino';
import { loggerOptions } from '../../ts/common/logging';

/** A new folder under the system temp dir, remembered in CREATED for removal. */
export function makeTmpDir(prefix: string, created: string[]): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `dne-${prefix}-`));
  created.push(d);
  return d;
}

/** A list whose folders are removed after all tests of the calling test file. */
export function removedAfterAll(): string[] {
  const created: string[] = [];
  afterAll(() => {
    for (const d of created.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  return created;
}

/** A logger for an app under test: nothing is printed; LINES, if given, receives every JSON line. */
export function testLogger(name: string, level: pino.LevelWithSilent = 'silent', lines?: string[]): Logger {
  return pino(
    loggerOptions(name, level as 'info'),
    new Writable({
      write: (c: Buffer, _e, cb) => {
        lines?.push(c.toString('utf8'));
        cb();
      },
    }),
  );
}

export interface JsonResp {
  status: number;
  headers: IncomingHttpHeaders;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/**
 * One HTTPS request. BODY: a Buffer or string is sent as is, anything else as
 * JSON; content-type defaults to application/json when there is a body. The
 * answer's body is parsed as JSON when it is JSON (else undefined; text has it).
 */
export function requestJson(o: https.RequestOptions, body?: unknown): Promise<JsonResp> {
  return new Promise((resolve, reject) => {
    let payload: Buffer | undefined;
    const headers: Record<string, string> = { ...((o.headers as Record<string, string> | undefined) ?? {}) };
    if (body !== undefined) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      if (!('content-type' in headers)) headers['content-type'] = 'application/json';
    }
    const req = https.request({ ...o, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (payload) req.end(payload);
    else req.end();
  });
}
