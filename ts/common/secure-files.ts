/**
 * Files that hold secrets: written atomically (temp file, fsync, rename) with
 * their final mode from the start, and checked before they are trusted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Writes `data` to `file` so that readers see the old or the new content, never a torn one. */
export function writeFileAtomic(file: string, data: string | Buffer, mode: number): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    fs.fchmodSync(fd, mode); // the umask may have narrowed or (for 0644) kept bits we want
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/**
 * Refuses a secret file that group or others can reach, or that someone else
 * owns (it could be swapped under us). Returns null when fine, else the reason.
 */
export function privateFileProblem(file: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    return `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  if (!st.isFile()) return `${file} is not a regular file`;
  const mode = st.mode & 0o777;
  if (mode & 0o077) {
    return `${file} has mode ${mode.toString(8).padStart(4, '0')}; it must not be readable by group or others (chmod 600 ${file})`;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  if (uid !== undefined && st.uid !== uid) {
    return `${file} is owned by uid ${st.uid}, not by the user running dne (uid ${uid})`;
  }
  return null;
}
