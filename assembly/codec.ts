// Host-facing wrappers of the hot-path entry codec (entry.ts), so tests can compare it with the TypeScript
// codec (src/model/entry.ts). u64 values cross as two u32 halves; results go to the result register.

import { mkLeaf, leafPfn, mkSwp, swpType, swpOffset, pteNone, ptePresent, pmdPresent, isTable } from './entry';
import { softleafCode } from './softleaf';
import { setResult } from './status';

@inline function u64of(lo: u32, hi: u32): u64 {
  return (<u64>hi << 32) | <u64>lo;
}

/** mkLeaf: a present leaf for pfn at height h with protection bits (lo, hi). */
export function codecLeaf(pfn: f64, h: u32, protLo: u32, protHi: u32): void {
  setResult(mkLeaf(<u64>pfn, h, u64of(protLo, protHi)));
}
export function codecLeafPfn(lo: u32, hi: u32, h: u32): f64 {
  return <f64>leafPfn(u64of(lo, hi), h);
}
export function codecSwp(type: u32, offset: f64): void {
  setResult(mkSwp(type, <u64>offset));
}
export function codecSwpType(lo: u32, hi: u32): u32 {
  return swpType(u64of(lo, hi));
}
export function codecSwpOffset(lo: u32, hi: u32): f64 {
  return <f64>swpOffset(u64of(lo, hi));
}

/** Classification at height h: 0 none, 1 table pointer, 2 present leaf, 16 + softleaf code otherwise. */
export function codecClassify(lo: u32, hi: u32, h: u32): u32 {
  const e = u64of(lo, hi);
  if (h == 0 ? pteNone(e) : e == 0) return 0;
  if (h > 0 && isTable(e, h)) return 1;
  if (h == 0 ? ptePresent(e) : pmdPresent(e)) return 2;
  return 16 + softleafCode(swpType(e));
}
