// Status codes returned by engine calls (0 = done), with the address or index that caused a failure.
// src/wasm/status.ts turns them into PvmwError codes and messages.

export const OK: i32 = 0;
/** The memory ceiling would be passed; nothing was changed. */
export const E_NOMEM: i32 = -1;
/** A leaf where a table is, a lower entry under a leaf, or a range that cuts a huge leaf. */
export const E_CONFLICT: i32 = -2;
/** A page already belongs to a folio. */
export const E_BUSY: i32 = -3;
/** A number outside every memory range. */
export const E_RANGE: i32 = -4;
/** No folio has its head there. */
export const E_NOFOLIO: i32 = -5;
/** Too many memory ranges, or ranges that overlap. */
export const E_RANGES: i32 = -6;

/** Where the failure was: an address, a global memmap index, or a height (errHeight). */
export let errAt: f64 = 0;
export let errHeight: u32 = 0;

@inline export function fail(code: i32, at: f64, height: u32 = 0): i32 {
  errAt = at;
  errHeight = height;
  return code;
}

export function errorAt(): f64 {
  return errAt;
}
export function errorHeight(): u32 {
  return errHeight;
}

// Result registers: u64 results are read by the host as two u32 halves (no BigInt on the host side).
export let res64: u64 = 0;
export let resHeight: u32 = 0;
export function resultLo(): u32 {
  return <u32>res64;
}
export function resultHi(): u32 {
  return <u32>(res64 >> 32);
}
export function resultHeight(): u32 {
  return resHeight;
}
@inline export function setResult(v: u64, h: u32 = 0): void {
  res64 = v;
  resHeight = h;
}
