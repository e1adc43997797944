// Shared test helpers.
import { expect } from 'vitest';
import { PvmwError, type PvmwErrorCode } from '../src/index.js';

/** Run f, expect a PvmwError with this code whose message contains every string given; return it. */
export function expectPvmwError(f: () => unknown, code: PvmwErrorCode, ...inMessage: string[]): PvmwError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected PvmwError ${code}`).toBeInstanceOf(PvmwError);
  const err = caught as PvmwError;
  expect(err.code, err.message).toBe(code);
  for (const s of inMessage) expect(err.message).toContain(s);
  return err;
}
