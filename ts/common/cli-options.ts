/** commander option parsers the service commands share. */
import { DneError, ErrorCodes } from './errors';

/** Parses a non-negative decimal integer; NAME (e.g. "--port") names the flag in the error. */
export function int(name: string) {
  return (v: string): number => {
    if (!/^[0-9]+$/.test(v)) throw new DneError(ErrorCodes.config, `${name} must be a non-negative integer`);
    return Number(v);
  };
}

/** For repeatable options: each occurrence adds one value. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}
