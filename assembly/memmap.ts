// The memmap: the state of every page of simulated memory, system RAM and device-private memory alike
// (spec §6.5, D1, D5, D8), in two parts sized to the memory budget of the model issue:
//   * a 4-byte word per page, in sections of 2^15 pages created when the first folio lands in them
//     (SPARSEMEM-like, so a large configured memory costs only what is used);
//   * a 16-byte record per folio (two consecutive records for a large folio, whose second holds the
//     entire and large mapcounts, as the kernel keeps them in a folio's second page).
// A folio is named by its head page: its id is the head page's global memmap index (ranges.ts lays memory
// out in that index so that natural folio alignment carries over).
//
// Page word:  0 = free page.
//   head page: bit 31 clear; bits 0..30 = record slot + 1.
//   tail page: bit 31 set; bits 26..30 folio order; bit 25 anon-exclusive; bit 24 hwpoison;
//              bits 0..23 the page's own mapcount (PTE mappings, CONFIG_PAGE_MAPCOUNT). 2^24 mappings of
//              one page would need 2^24 address spaces, more root tables than wasm32 memory can hold.
// Record:     r0 mapping id; r1 index (low 32 bits); r2 info: bits 0..4 order, bit 7 head anon-exclusive,
//             bit 8 head hwpoison, bits 9..19 folio flags, bits 20..31 index (high 12 bits);
//             r3 the head page's own mapcount.
//   large folios, second record: r4 entire mapcount (PMD/PUD mappings), r5 large mapcount (all mappings).

import { allocBlock, reserveBlock } from './frames';
import { OK, E_NOMEM, E_BUSY, E_NOFOLIO, fail } from './status';
import { tagClear, tagsInit, tagsFixedBytes } from './tags';
import { rangesInit, rangesFixedBytes } from './ranges';

export const PG_ORDER_MASK: u32 = 0x1f;
export const PG_ANON_EXCLUSIVE: u32 = 1 << 7;
export const PG_HWPOISON: u32 = 1 << 8;
/** Folio flags: bits 9..19 of the record's info word (src/model/folio.ts names them). */
export const FOLIO_FLAGS_MASK: u32 = 0x7ff << 9;
export const INDEX_HI_SHIFT: u32 = 20;

export const W_TAIL: u32 = 1 << 31;
export const W_ORDER_SHIFT: u32 = 26;
export const W_ANON_EXCLUSIVE: u32 = 1 << 25;
export const W_HWPOISON: u32 = 1 << 24;
export const W_MAPCOUNT: u32 = 0xff_ffff;

const SECTION_SHIFT: u32 = 15;
const SECTION_PAGES: u32 = 1 << SECTION_SHIFT;
/** A section: 2^15 page words, 128 KiB. */
const SECTION_FRAMES: u32 = (SECTION_PAGES * 4) >> 12;
const SECTION_TABLE_FRAMES: u32 = (4 << 17) >> 12; // pointers for 2^17 sections (the u32 index space)

/** Records: chunks of 4096 records (64 KiB); up to 2^27 records. */
const REC_SHIFT: u32 = 12;
const REC_CHUNK_FRAMES: u32 = ((1 << REC_SHIFT) * 16) >> 12;
const REC_DIR_FRAMES: u32 = ((1 << (27 - REC_SHIFT)) * 4) >> 12;
const MAX_RECORDS: u32 = 1 << 27;

let sections: usize = 0;
let recDir: usize = 0;
let recTop: u32 = 0; // next never-used record slot
let freeSingle: u32 = 0; // free record slots + 1, linked through r0
let freePair: u32 = 0;
let nFreeSingle: u32 = 0;
let nFreePair: u32 = 0;

let nSections: u32 = 0;
let nFolios: u32 = 0;
let nRecChunks: u32 = 0;

/** Set up an empty memmap (after framesInit). Returns false if memory could not be had. */
export function memmapInit(): bool {
  sections = allocBlock(SECTION_TABLE_FRAMES);
  recDir = allocBlock(REC_DIR_FRAMES);
  if (sections == 0 || recDir == 0 || !rangesInit() || !tagsInit()) return false;
  nSections = 0;
  nFolios = 0;
  nRecChunks = 0;
  recTop = 0;
  freeSingle = 0;
  freePair = 0;
  nFreeSingle = 0;
  nFreePair = 0;
  return true;
}

/** Bytes the memmap holds for its whole life: section table, record directory, tag and range tables. */
export function memmapFixedBytes(): u32 {
  return ((SECTION_TABLE_FRAMES + REC_DIR_FRAMES) << 12) + tagsFixedBytes() + rangesFixedBytes();
}

// --- page words -----------------------------------------------------------------------------------------

@inline function sectionOf(g: u64): usize {
  return <usize>load<u32>(sections + (<usize>(g >> SECTION_SHIFT) << 2));
}
/** Address of the page word of global index g, or 0 if its section was never created (no folio there). */
@inline export function wordAt(g: u64): usize {
  const s = sectionOf(g);
  return s == 0 ? 0 : s + (<usize>(g & (SECTION_PAGES - 1)) << 2);
}
@inline export function wordOf(g: u64): u32 {
  const p = wordAt(g);
  return p == 0 ? 0 : load<u32>(p);
}
@inline function isTailWord(w: u32): bool {
  return (w & W_TAIL) != 0;
}

function missingSections(g: u64, n: u64): u32 {
  let m: u32 = 0;
  for (let s = g >> SECTION_SHIFT; s <= (g + n - 1) >> SECTION_SHIFT; s++) {
    if (load<u32>(sections + (<usize>s << 2)) == 0) m++;
  }
  return m;
}
/** Create the sections covering [g, g + n); the caller reserved the memory. */
function ensureSections(g: u64, n: u64): void {
  for (let s = g >> SECTION_SHIFT; s <= (g + n - 1) >> SECTION_SHIFT; s++) {
    const p = sections + (<usize>s << 2);
    if (load<u32>(p) == 0) {
      store<u32>(p, <u32>allocBlock(SECTION_FRAMES));
      nSections++;
    }
  }
}

// --- folio records --------------------------------------------------------------------------------------

@inline export function recAt(slot: u32): usize {
  return <usize>load<u32>(recDir + (<usize>(slot >> REC_SHIFT) << 2)) + (<usize>(slot & ((1 << REC_SHIFT) - 1)) << 4);
}
/** Record of the folio whose head is g (g must be a head). */
@inline function recOf(g: u64): usize {
  return recAt((wordOf(g) & ~W_TAIL) - 1);
}

/** Frames needed to hand out `singles` single and `pairs` paired record slots, or -1 past MAX_RECORDS. */
export function recordFramesNeeded(singles: u32, pairs: u32): i64 {
  const fromFree = <u64>min(singles, nFreeSingle);
  const fromFreePairs = <u64>min(pairs, nFreePair);
  const fresh = (<u64>singles - fromFree) + 2 * (<u64>pairs - fromFreePairs) + 1; // +1: pair alignment
  const top = <u64>recTop + fresh;
  if (top > <u64>MAX_RECORDS) return -1;
  const chunksNow = (<u64>recTop + (1 << REC_SHIFT) - 1) >> REC_SHIFT;
  const chunksThen = (top + (1 << REC_SHIFT) - 1) >> REC_SHIFT;
  return <i64>((chunksThen - chunksNow) * REC_CHUNK_FRAMES);
}

function freshSlots(n: u32): u32 {
  const slot = recTop;
  recTop += n;
  for (let c = slot >> REC_SHIFT; c <= (recTop - 1) >> REC_SHIFT; c++) {
    const p = recDir + (<usize>c << 2);
    if (load<u32>(p) == 0) {
      store<u32>(p, <u32>allocBlock(REC_CHUNK_FRAMES));
      nRecChunks++;
    }
  }
  return slot;
}

/** A zeroed record slot (two consecutive ones for a large folio); the caller reserved the memory. */
export function allocRecord(large: bool): u32 {
  let slot: u32;
  if (!large) {
    if (freeSingle != 0) {
      slot = freeSingle - 1;
      freeSingle = load<u32>(recAt(slot));
      nFreeSingle--;
    } else {
      slot = freshSlots(1);
    }
    memory.fill(recAt(slot), 0, 16);
    return slot;
  }
  if (freePair != 0) {
    slot = freePair - 1;
    freePair = load<u32>(recAt(slot));
    nFreePair--;
  } else {
    if ((recTop & 1) != 0) {
      // Keep pairs inside one chunk: the odd slot left behind becomes a free single.
      const odd = freshSlots(1);
      store<u32>(recAt(odd), freeSingle);
      freeSingle = odd + 1;
      nFreeSingle++;
    }
    slot = freshSlots(2);
  }
  memory.fill(recAt(slot), 0, 32);
  return slot;
}

export function freeRecord(slot: u32, large: bool): void {
  memory.fill(recAt(slot), 0, large ? 32 : 16);
  if (large) {
    store<u32>(recAt(slot), freePair);
    freePair = slot + 1;
    nFreePair++;
  } else {
    store<u32>(recAt(slot), freeSingle);
    freeSingle = slot + 1;
    nFreeSingle++;
  }
}

// --- folios ---------------------------------------------------------------------------------------------

/** First page in [g, g + n) that belongs to a folio, or -1. */
function firstBusy(g: u64, n: u64): f64 {
  for (let i: u64 = 0; i < n; i++) {
    const p = wordAt(g + i);
    if (p == 0) {
      i |= SECTION_PAGES - 1; // skip the rest of a missing section (g + i is then section aligned)
      continue;
    }
    if (load<u32>(p) != 0) return <f64>(g + i);
  }
  return -1;
}

function createOne(g: u64, order: u32, flags: u32, mapping: u32, index: u64): void {
  const large = order != 0;
  const slot = allocRecord(large);
  const r = recAt(slot);
  store<u32>(r, mapping);
  store<u32>(r + 4, <u32>index);
  store<u32>(r + 8, order | (flags & FOLIO_FLAGS_MASK) | (<u32>(index >> 32) << INDEX_HI_SHIFT));
  store<u32>(wordAt(g), slot + 1);
  const tail = W_TAIL | (order << W_ORDER_SHIFT);
  const n = <u64>1 << order;
  for (let i: u64 = 1; i < n; i++) store<u32>(wordAt(g + i), tail);
  tagClear(g, n);
  nFolios++;
}

/**
 * Create `count` consecutive folios of 2^order pages from global index g (naturally aligned: the host checks
 * the number), the index advancing by `indexStep` per folio. flags: folio flags (bits 9..19). Fails with
 * E_BUSY (errAt = the first busy index) if a page already belongs to a folio, E_NOMEM if memory is
 * exhausted; everything is checked and reserved first, so a failure creates nothing.
 */
export function folioCreateRange(gf: f64, order: u32, count: u32, flags: u32, mapping: u32, indexf: f64, indexStep: f64): i32 {
  const g = <u64>gf;
  const n = <u64>count << order;
  const busy = firstBusy(g, n);
  if (busy >= 0) return fail(E_BUSY, busy);
  const recFrames = recordFramesNeeded(order == 0 ? count : 0, order == 0 ? 0 : count);
  if (recFrames < 0) return fail(E_NOMEM, gf);
  const frames = <u64>missingSections(g, n) * SECTION_FRAMES + <u64>recFrames;
  if (frames > 0 && !reserveBlock(<u32>frames)) return fail(E_NOMEM, gf);
  ensureSections(g, n);
  let index = <u64>indexf;
  for (let k: u32 = 0; k < count; k++) {
    createOne(g + (<u64>k << order), order, flags, mapping, index);
    index += <u64>indexStep;
  }
  return OK;
}

/** Free the folio whose head is g: its page words, record and content tags return to zero. */
export function folioFree(gf: f64): i32 {
  const g = <u64>gf;
  if (!isFolio(gf)) return fail(E_NOFOLIO, gf);
  const r = recOf(g);
  const order = load<u32>(r + 8) & PG_ORDER_MASK;
  freeRecord((wordOf(g) & ~W_TAIL) - 1, order != 0);
  const n = <u64>1 << order;
  for (let i: u64 = 0; i < n; i++) store<u32>(wordAt(g + i), 0);
  tagClear(g, n);
  nFolios--;
  return OK;
}

/** The folio (head index) owning global index g, or -1 if the page belongs to no folio. */
export function folioOf(gf: f64): f64 {
  const g = <u64>gf;
  const w = wordOf(g);
  if (w == 0) return -1;
  if (!isTailWord(w)) return gf;
  return <f64>(g & ~((<u64>1 << ((w >> W_ORDER_SHIFT) & PG_ORDER_MASK)) - 1));
}

/** Is g the head of a folio? */
export function isFolio(gf: f64): bool {
  const w = wordOf(<u64>gf);
  return w != 0 && !isTailWord(w);
}

export function folioOrder(gf: f64): u32 {
  return load<u32>(recOf(<u64>gf) + 8) & PG_ORDER_MASK;
}
/** The folio flags (bits 9..19) of the folio whose head is g. */
export function folioFlags(gf: f64): u32 {
  return load<u32>(recOf(<u64>gf) + 8) & FOLIO_FLAGS_MASK;
}
export function folioMapping(gf: f64): u32 {
  return load<u32>(recOf(<u64>gf));
}
export function folioIndex(gf: f64): f64 {
  const r = recOf(<u64>gf);
  return <f64>(((<u64>(load<u32>(r + 8) >> INDEX_HI_SHIFT)) << 32) | <u64>load<u32>(r + 4));
}
/** Entire mapcount (PMD/PUD mappings) of a large folio; 0 for order 0. */
export function entireMapcount(gf: f64): u32 {
  const r = recOf(<u64>gf);
  return (load<u32>(r + 8) & PG_ORDER_MASK) == 0 ? 0 : load<u32>(r + 16);
}
/** folio_mapcount: all mappings (order 0: the page's mapcount; large: the large mapcount). */
export function folioMapcount(gf: f64): u32 {
  const r = recOf(<u64>gf);
  return (load<u32>(r + 8) & PG_ORDER_MASK) == 0 ? load<u32>(r + 12) : load<u32>(r + 20);
}

/** The page's own mapcount (PTE mappings), 0 for a page in no folio. */
export function pageMapcount(gf: f64): u32 {
  const g = <u64>gf;
  const w = wordOf(g);
  if (w == 0) return 0;
  return isTailWord(w) ? w & W_MAPCOUNT : load<u32>(recOf(g) + 12);
}
/** Per-page flags of g as PG_ANON_EXCLUSIVE | PG_HWPOISON (0 for a page in no folio). */
export function pageFlags(gf: f64): u32 {
  const g = <u64>gf;
  const w = wordOf(g);
  if (w == 0) return 0;
  if (!isTailWord(w)) return load<u32>(recOf(g) + 8) & (PG_ANON_EXCLUSIVE | PG_HWPOISON);
  return ((w & W_ANON_EXCLUSIVE) != 0 ? PG_ANON_EXCLUSIVE : 0) | ((w & W_HWPOISON) != 0 ? PG_HWPOISON : 0);
}

/** Set folio->mapping and folio->index (an anon_vma, stable node or file id; the page index). */
export function folioSetMapping(gf: f64, mapping: u32, indexf: f64): void {
  const r = recOf(<u64>gf);
  const index = <u64>indexf;
  store<u32>(r, mapping);
  store<u32>(r + 4, <u32>index);
  store<u32>(r + 8, (load<u32>(r + 8) & ((1 << INDEX_HI_SHIFT) - 1)) | (<u32>(index >> 32) << INDEX_HI_SHIFT));
}
/** Set and clear folio flags (only FOLIO_FLAGS_MASK bits) of the folio whose head is g. */
export function folioSetFlags(gf: f64, set: u32, clear: u32): void {
  const p = recOf(<u64>gf) + 8;
  store<u32>(p, (load<u32>(p) & ~(clear & FOLIO_FLAGS_MASK)) | (set & FOLIO_FLAGS_MASK));
}
/** Set and clear per-page flags (PG_ANON_EXCLUSIVE, PG_HWPOISON) on n pages from g. */
export function pageSetFlags(gf: f64, n: u32, set: u32, clear: u32): void {
  const mask = PG_ANON_EXCLUSIVE | PG_HWPOISON;
  set &= mask;
  clear &= mask;
  for (let i: u64 = 0; i < <u64>n; i++) {
    const g = <u64>gf + i;
    const p = wordAt(g);
    const w = load<u32>(p);
    if (!isTailWord(w)) {
      const r = recOf(g) + 8;
      store<u32>(r, (load<u32>(r) & ~clear) | set);
      continue;
    }
    const s = ((set & PG_ANON_EXCLUSIVE) != 0 ? W_ANON_EXCLUSIVE : 0) | ((set & PG_HWPOISON) != 0 ? W_HWPOISON : 0);
    const c = ((clear & PG_ANON_EXCLUSIVE) != 0 ? W_ANON_EXCLUSIVE : 0) | ((clear & PG_HWPOISON) != 0 ? W_HWPOISON : 0);
    store<u32>(p, (w & ~c) | s);
  }
}

/** Add delta to the mapcount of n pages from g (PTE mappings), and to their folios' large mapcounts. */
export function pageMapcountAdd(gf: f64, n: u32, delta: i32): void {
  for (let i: u64 = 0; i < <u64>n; i++) {
    const g = <u64>gf + i;
    const p = wordAt(g);
    const w = load<u32>(p);
    let head = g;
    if (isTailWord(w)) {
      store<u32>(p, (w & ~W_MAPCOUNT) | (<u32>(<i32>(w & W_MAPCOUNT) + delta) & W_MAPCOUNT));
      head = g & ~((<u64>1 << ((w >> W_ORDER_SHIFT) & PG_ORDER_MASK)) - 1);
    } else {
      const r = recOf(g) + 12;
      store<u32>(r, <u32>(<i32>load<u32>(r) + delta));
    }
    const hr = recOf(head);
    if ((load<u32>(hr + 8) & PG_ORDER_MASK) != 0) store<u32>(hr + 20, <u32>(<i32>load<u32>(hr + 20) + delta));
  }
}

/** Add delta to the entire (PMD/PUD) mapcount of a large folio and to its large mapcount. */
export function entireMapcountAdd(gf: f64, delta: i32): void {
  const r = recOf(<u64>gf);
  store<u32>(r + 16, <u32>(<i32>load<u32>(r + 16) + delta));
  store<u32>(r + 20, <u32>(<i32>load<u32>(r + 20) + delta));
}

// --- statistics -----------------------------------------------------------------------------------------

export function folioCount(): u32 {
  return nFolios;
}
/** folio-split.ts: `delta` more folios (a split made them from one). */
export function folioCountAdd(delta: u32): void {
  nFolios += delta;
}
export function sectionCount(): u32 {
  return nSections;
}
export function sectionBytes(): u32 {
  return SECTION_FRAMES << 12;
}
/** Bytes of folio records (in 64 KiB chunks). */
export function recordBytes(): f64 {
  return <f64>nRecChunks * <f64>(REC_CHUNK_FRAMES << 12);
}

/** The first folio head at or after global index g, or -1: walks the created sections. */
export function nextFolio(gf: f64): f64 {
  let g = <u64>gf;
  while ((g >> SECTION_SHIFT) < (1 << 17)) {
    const sec = sectionOf(g);
    if (sec == 0) {
      g = ((g >> SECTION_SHIFT) + 1) << SECTION_SHIFT;
      continue;
    }
    const w = load<u32>(sec + (<usize>(g & (SECTION_PAGES - 1)) << 2));
    if (w != 0 && !isTailWord(w)) return <f64>g;
    g++;
  }
  return -1;
}

/** Histogram of folios by order (out[0..18], u32) and by flags: out[19 + bit − 9] counts folios with folio
 *  flag bit (9..19) set. Scans the created sections. */
export function folioStats(out: usize): void {
  memory.fill(out, 0, 4 * 32);
  for (let s: u32 = 0; s < (1 << 17); s++) {
    const sec = <usize>load<u32>(sections + (<usize>s << 2));
    if (sec == 0) continue;
    for (let i: u32 = 0; i < SECTION_PAGES; i++) {
      const w = load<u32>(sec + (<usize>i << 2));
      if (w == 0 || isTailWord(w)) continue;
      const info = load<u32>(recAt(w - 1) + 8);
      const o = out + (<usize>(info & PG_ORDER_MASK) << 2);
      store<u32>(o, load<u32>(o) + 1);
      for (let b: u32 = 9; b < 20; b++) {
        if ((info & (1 << b)) != 0) {
          const f = out + (<usize>(19 + b - 9) << 2);
          store<u32>(f, load<u32>(f) + 1);
        }
      }
    }
  }
}
