// Entry batches for the operations layer (kernel-operations.md: fork, zap, mprotect, mremap, faults…): the
// host reads every leaf of a range in one call (ptScan, like a walk of copy_page_range or zap_pte_range over
// the tables) and writes any number of single leaves in one call (ptSetBatch, like set_pte_at /
// set_pmd_at / pte_clear), each write keeping mapcounts as mapcount.ts decides. The per-entry rules live on the
// host; these two calls only move entries in bulk so that no operation makes one call per entry.
//
// Record (24 bytes): f64 va, u32 lo, u32 hi, u32 height, u32 spare.

import { reserveFrames, countAdd } from './frames';
import { isTable } from './entry';
import { OK, E_NOMEM, E_CONFLICT, fail, setResult } from './status';
import { account } from './mapcount';
import { rootHeight, sizeOf, slotOf, tableOf, tableFor } from './pagetable';

export const BATCH_RECORD: usize = 24;

let outBuf: usize = 0;
let outCap: u32 = 0;
let outN: u32 = 0;
let resumeAt: u64 = 0;
let full: bool = false;

function scanIn(table: usize, h: u32, start: u64, end: u64): void {
  let va = start;
  while (va < end) {
    const e = load<u64>(slotOf(table, va, h));
    const blockStart = va & ~(sizeOf(h) - 1);
    const next = blockStart + sizeOf(h) < end ? blockStart + sizeOf(h) : end;
    if (e != 0) {
      if (h > 0 && isTable(e, h)) {
        scanIn(tableOf(e), h - 1, va, next);
        if (full) return;
      } else {
        if (outN == outCap) {
          full = true;
          resumeAt = blockStart;
          return;
        }
        const p = outBuf + <usize>outN * BATCH_RECORD;
        store<f64>(p, <f64>blockStart);
        store<u64>(p, e, 8);
        store<u32>(p, h, 16);
        store<u32>(p, 0, 20);
        outN++;
      }
    }
    va = next;
  }
}

/**
 * Every non-none leaf whose start lies in [start, end) (a huge leaf starting before `start` is not listed), in
 * address order, as records at `buf`, at most `cap`. Returns the number written; when the buffer filled first,
 * resultLo/Hi hold the address to resume from, else `end`.
 */
export function ptScan(root: f64, startf: f64, endf: f64, buf: usize, cap: u32): u32 {
  const top = sizeOf(rootHeight() + 1);
  const end = <u64>endf < top ? <u64>endf : top;
  outBuf = buf;
  outCap = cap;
  outN = 0;
  full = false;
  resumeAt = end;
  const start = <u64>startf;
  // Start at the first whole leaf boundary: scanIn visits blocks from `start`, and a leaf block beginning
  // below start is skipped by the check in the loop below.
  scanIn(<usize>root, rootHeight(), start, end);
  // Drop leaves that begin before start (a huge leaf straddling it).
  let w: u32 = 0;
  for (let i: u32 = 0; i < outN; i++) {
    const p = outBuf + <usize>i * BATCH_RECORD;
    if (<u64>load<f64>(p) < start) continue;
    if (w != i) memory.copy(outBuf + <usize>w * BATCH_RECORD, p, BATCH_RECORD);
    w++;
  }
  setResult(resumeAt);
  return w;
}

/** The slot for (va, h), or 0 if a none entry above h stops the descent; -1 (as usize max) on a leaf above h. */
function slotFor(root: usize, va: u64, h: u32): usize {
  let table = root;
  for (let k = rootHeight(); k > h; k--) {
    const e = load<u64>(slotOf(table, va, k));
    if (e == 0) return 0;
    if (!isTable(e, k)) return usize.MAX_VALUE;
    table = tableOf(e);
  }
  return slotOf(table, va, h);
}

/**
 * Write `n` leaves given as records at `buf` (va, value, height): each replaces whatever leaf was at that slot
 * (0 clears it; an emptied table stays, as PTE tables do until reclaimed). With `accountMappings`, the old
 * entry's mapping is taken off its folio and the new one's put on (mapcount.ts). Checked first, nothing
 * changed on failure: E_CONFLICT (errAt = va, errHeight) if a leaf above the height covers the slot or the
 * slot (height ≥ 1) holds a table pointer; E_NOMEM if the tables to create would pass the ceiling.
 */
export function ptSetBatch(root: f64, buf: usize, n: u32, accountMappings: bool): i32 {
  const r = <usize>root;
  let missing: u64 = 0;
  let lastBlock: u64 = u64.MAX_VALUE;
  for (let i: u32 = 0; i < n; i++) {
    const p = buf + <usize>i * BATCH_RECORD;
    const va = <u64>load<f64>(p);
    const v = load<u64>(p, 8);
    const h = load<u32>(p, 16);
    let table = r;
    let k = rootHeight();
    let need: u32 = 0;
    while (k > h) {
      const e = need > 0 ? 0 : load<u64>(slotOf(table, va, k));
      if (e == 0) {
        need++;
      } else {
        if (!isTable(e, k)) return fail(E_CONFLICT, <f64>(va & ~(sizeOf(k) - 1)), k);
        table = tableOf(e);
      }
      k--;
    }
    if (need == 0) {
      const e = load<u64>(slotOf(table, va, h));
      if (h > 0 && e != 0 && isTable(e, h)) return fail(E_CONFLICT, <f64>va, h);
    } else if (v != 0) {
      const block = va >> (<u64>12 + 9 * <u64>(h + 1));
      if (block != lastBlock) missing += need;
      lastBlock = block;
    }
  }
  if (missing > 0 && (missing > 0xffff_ffff || !reserveFrames(<u32>missing))) return fail(E_NOMEM, 0);
  for (let i: u32 = 0; i < n; i++) {
    const p = buf + <usize>i * BATCH_RECORD;
    const va = <u64>load<f64>(p);
    const v = load<u64>(p, 8);
    const h = load<u32>(p, 16);
    let slot = slotFor(r, va, h);
    if (slot == 0) {
      if (v == 0) continue;
      slot = slotOf(tableFor(r, va, h), va, h);
    }
    const old = load<u64>(slot);
    store<u64>(slot, v);
    const delta = <i32>(v != 0) - <i32>(old != 0);
    if (delta != 0) countAdd(slot & ~(<usize>4095), delta);
    if (accountMappings) {
      if (old != 0) account(old, h, -1);
      if (v != 0) account(v, h, 1);
    }
  }
  return OK;
}
