// Sparse page tables in linear memory (spec §3.1): a table is one 4 KiB frame of 512 u64 entries, created
// when the first entry under it is set and freed when emptied. Heights count from the leaf (0 = PTE, 1 = PMD,
// 2 = PUD, 3/4 = P4D/PGD): the geometry is the number of levels, one code path for 4- and 5-level paging.
// Table pointers hold the frame's linear-memory address in their PFN field, as hardware holds a phys address.
// Every mutating call checks and reserves all it needs first, so a failure changes nothing.

import { allocFrame, freeFrame, reserveFrames, countAdd, countOf } from './frames';
import { isTable, PTE_PFN_MASK, TABLE_FLAGS } from './entry';
import { OK, E_NOMEM, E_CONFLICT, fail, setResult } from './status';
import { account } from './mapcount';

/** Number of paging levels (4 or 5), set by the host from its geometry table. */
export let levels: u32 = 4;
export function setLevels(n: u32): void {
  levels = n;
}

@inline export function rootHeight(): u32 {
  return levels - 1;
}
@inline export function shiftOf(h: u32): u64 {
  return 12 + 9 * <u64>h;
}
/** Bytes of VA one entry at height h maps. */
@inline export function sizeOf(h: u32): u64 {
  return <u64>1 << shiftOf(h);
}
@inline export function slotOf(table: usize, va: u64, h: u32): usize {
  return table + (<usize>((va >> shiftOf(h)) & 511) << 3);
}
@inline export function tableOf(e: u64): usize {
  return <usize>(e & PTE_PFN_MASK);
}
@inline function alignDown(va: u64, size: u64): u64 {
  return va & ~(size - 1);
}
@inline function minU64(a: u64, b: u64): u64 {
  return a < b ? a : b;
}

let tablesLive: u32 = 0;
export function tablesInUse(): u32 {
  return tablesLive;
}

/** A zeroed frame counted as a page table, or 0 if memory is exhausted (reserve first). */
export function newTable(): usize {
  const t = allocFrame();
  if (t != 0) tablesLive++;
  return t;
}
/** Free a table frame that is all zero and has entry count 0. */
export function dropTable(t: usize): void {
  tablesLive--;
  freeFrame(t);
}

/** A new empty root table (PGD), or 0 if memory is exhausted. */
export function ptAllocRoot(): f64 {
  return <f64>newTable();
}

function freeTree(table: usize, h: u32): void {
  if (h > 0) {
    for (let i: usize = 0; i < 512; i++) {
      const e = load<u64>(table + (i << 3));
      if (e != 0 && isTable(e, h)) freeTree(tableOf(e), h - 1);
    }
  }
  memory.fill(table, 0, 4096);
  countAdd(table, -<i32>countOf(table));
  dropTable(table);
}

/** Free a whole address space's tables (mm teardown). */
export function ptFreeRoot(root: f64): void {
  freeTree(<usize>root, rootHeight());
}

/**
 * Descend from the root towards height h for va without allocating. Result: the entry where the descent
 * stopped (res64) and its height (resHeight): height h, or higher if a none entry or a leaf stopped it.
 * Returns the slot address, or 0 if a none entry above h stopped it. `trace` (if non-zero) receives the
 * entry read at each height, root first (like crash's vtop).
 */
export function ptLookup(root: f64, vaf: f64, h: u32, trace: usize): f64 {
  const va = <u64>vaf;
  let table = <usize>root;
  let k = rootHeight();
  while (true) {
    const slot = slotOf(table, va, k);
    const e = load<u64>(slot);
    if (trace != 0) store<u64>(trace + (<usize>(rootHeight() - k) << 3), e);
    if (k == h || e == 0 || !isTable(e, k)) {
      setResult(e, k);
      return e == 0 && k != h ? 0 : <f64>slot;
    }
    table = tableOf(e);
    k--;
  }
}

/**
 * Check that entries at height h for [va, va + count·size(h)) can be written: no leaf above h covers any of
 * them, and (h ≥ 1) none of the slots holds a table pointer. Returns the number of tables that must be
 * created, or a negative status.
 */
function planSet(root: usize, start: u64, end: u64, h: u32, mustBeNone: bool): i64 {
  let missing: i64 = 0;
  let va = start;
  const rh = rootHeight();
  while (va < end) {
    let table = root;
    let k = rh;
    let stopped = false;
    while (k > h) {
      const e = load<u64>(slotOf(table, va, k));
      if (e == 0) {
        // Every table below this none entry, within its span, must be created.
        const regionEnd = minU64(end, alignDown(va, sizeOf(k)) + sizeOf(k));
        for (let x = k - 1; x >= h; x--) {
          const s = shiftOf(x + 1);
          missing += <i64>(((regionEnd - 1) >> s) - (va >> s) + 1);
          if (x == 0) break;
        }
        va = regionEnd;
        stopped = true;
        break;
      }
      if (!isTable(e, k)) return <i64>fail(E_CONFLICT, <f64>alignDown(va, sizeOf(k)), k);
      table = tableOf(e);
      k--;
    }
    if (stopped) continue;
    const runEnd = minU64(end, alignDown(va, sizeOf(h + 1)) + sizeOf(h + 1));
    if (h > 0 || mustBeNone) {
      for (let a = va; a < runEnd; a += sizeOf(h)) {
        const e = load<u64>(slotOf(table, a, h));
        if (e != 0 && (mustBeNone || isTable(e, h))) return <i64>fail(E_CONFLICT, <f64>a, h);
      }
    }
    va = runEnd;
  }
  return missing;
}

/** The table at height h covering va, creating missing tables (the caller reserved the frames). */
export function tableFor(root: usize, va: u64, h: u32): usize {
  let table = root;
  for (let k = rootHeight(); k > h; k--) {
    const slot = slotOf(table, va, k);
    let e = load<u64>(slot);
    if (e == 0) {
      const t = newTable();
      e = <u64>t | TABLE_FLAGS;
      store<u64>(slot, e);
      countAdd(table, 1);
    }
    table = tableOf(e);
  }
  return table;
}

/**
 * Set `count` consecutive entries at height h from va: entry i = first + i·step (u64 arithmetic, so a
 * negative step is its two's complement). One call fills whole tables; nothing is changed on failure.
 * With `mustBeNone`, every target slot must be empty (installing never overwrites).
 */
export function ptSetRange(root: f64, vaf: f64, h: u32, count: u32, firstLo: u32, firstHi: u32, stepLo: u32, stepHi: u32, mustBeNone: bool): i32 {
  const r = <usize>root;
  const start = <u64>vaf;
  const end = start + <u64>count * sizeOf(h);
  const plan = planSet(r, start, end, h, mustBeNone);
  if (plan < 0) return <i32>plan;
  if (plan > 0 && (plan > <i64>0xffff_ffff || !reserveFrames(<u32>plan))) return fail(E_NOMEM, vaf);
  let v = (<u64>firstHi << 32) | <u64>firstLo;
  const step = (<u64>stepHi << 32) | <u64>stepLo;
  let va = start;
  let left = count;
  while (left > 0) {
    const table = tableFor(r, va, h);
    const idx = <u32>((va >> shiftOf(h)) & 511);
    const n = min(left, 512 - idx);
    let delta: i32 = 0;
    let p = table + (<usize>idx << 3);
    for (let j: u32 = 0; j < n; j++) {
      const old = load<u64>(p);
      store<u64>(p, v);
      delta += <i32>(v != 0) - <i32>(old != 0);
      v += step;
      p += 8;
    }
    if (delta != 0) countAdd(table, delta);
    left -= n;
    va += <u64>n * sizeOf(h);
  }
  return OK;
}


let cleared: u32 = 0;
let unaccount: bool = false;

function planClear(table: usize, h: u32, start: u64, end: u64): i32 {
  let va = start;
  while (va < end) {
    const e = load<u64>(slotOf(table, va, h));
    const eStart = alignDown(va, sizeOf(h));
    const next = minU64(eStart + sizeOf(h), end);
    if (e != 0) {
      if (h > 0 && isTable(e, h)) {
        const r = planClear(tableOf(e), h - 1, va, next);
        if (r != OK) return r;
      } else if (eStart < start || eStart + sizeOf(h) > end) {
        return fail(E_CONFLICT, <f64>eStart, h);
      }
    }
    va = next;
  }
  return OK;
}

function doClear(table: usize, h: u32, start: u64, end: u64): void {
  let va = start;
  while (va < end) {
    const slot = slotOf(table, va, h);
    const e = load<u64>(slot);
    const next = minU64(alignDown(va, sizeOf(h)) + sizeOf(h), end);
    if (e != 0) {
      if (h > 0 && isTable(e, h)) {
        const child = tableOf(e);
        doClear(child, h - 1, va, next);
        if (countOf(child) == 0) {
          store<u64>(slot, 0);
          countAdd(table, -1);
          dropTable(child);
        }
      } else {
        if (unaccount) account(e, h, -1);
        store<u64>(slot, 0);
        countAdd(table, -1);
        cleared++;
      }
    }
    va = next;
  }
}

/**
 * Clear every leaf mapping [start, end) at any height and free the tables this empties (never the root).
 * A huge leaf only partly inside the range is a conflict, reported before anything changes. The number of
 * entries cleared is the result (resultLo). With `unaccountMappings`, each cleared mapping's mapcount change
 * is undone (mapcount.ts).
 */
export function ptClearRange(root: f64, startf: f64, endf: f64, unaccountMappings: bool): i32 {
  const r = <usize>root;
  const start = <u64>startf;
  const end = <u64>endf;
  const top = sizeOf(rootHeight() + 1);
  const e = end < top ? end : top;
  const p = planClear(r, rootHeight(), start, e);
  if (p != OK) return p;
  cleared = 0;
  unaccount = unaccountMappings;
  doClear(r, rootHeight(), start, e);
  setResult(<u64>cleared);
  return OK;
}

let accounted: u32 = 0;

function accountIn(table: usize, h: u32, start: u64, end: u64): void {
  let va = start;
  while (va < end) {
    const e = load<u64>(slotOf(table, va, h));
    const next = minU64(alignDown(va, sizeOf(h)) + sizeOf(h), end);
    if (e != 0) {
      if (h > 0 && isTable(e, h)) accountIn(tableOf(e), h - 1, va, next);
      else accounted += account(e, h, 1);
    }
    va = next;
  }
}

/** Count every mapping leaf in [start, end) once (after installing it). Returns the number counted. */
export function ptAccountRange(root: f64, startf: f64, endf: f64): u32 {
  accounted = 0;
  const top = sizeOf(rootHeight() + 1);
  const end = <u64>endf < top ? <u64>endf : top;
  accountIn(<usize>root, rootHeight(), <u64>startf, end);
  return accounted;
}

/** Statistics of one address space, written as u32 counters at `out`: [0..4] tables per height,
 *  [5..7] leaf entries at heights 0..2 (non-none). */
export function ptStats(root: f64, out: usize): void {
  memory.fill(out, 0, 8 * 4);
  statsOf(<usize>root, rootHeight(), out);
}

function statsOf(table: usize, h: u32, out: usize): void {
  const tp = out + (<usize>h << 2);
  store<u32>(tp, load<u32>(tp) + 1);
  for (let i: usize = 0; i < 512; i++) {
    const e = load<u64>(table + (i << 3));
    if (e == 0) continue;
    if (h > 0 && isTable(e, h)) {
      statsOf(tableOf(e), h - 1, out);
    } else if (h <= 2) {
      const lp = out + ((5 + <usize>h) << 2);
      store<u32>(lp, load<u32>(lp) + 1);
    }
  }
}
