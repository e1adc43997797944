// The memmap: one 16-byte descriptor per page of simulated memory, like the kernel's struct page array, for
// system RAM and device-private memory alike (spec §6.5, D1, D5, D8). A folio is its head page: its id is the
// head page's global memmap index. Memory is a list of ranges (namespace, first number, pages); each range
// occupies a stretch of the global index space aligned so that natural folio alignment carries over.
// Descriptors live in sections of 2^15 pages created when the first folio lands in them (SPARSEMEM-like), so
// a large configured memory costs only what is used.
//
// Descriptor words: w0 flags (order, TAIL, USED, per-page flags, and on the head the folio flags and the high
// bits of the index); w1 the page's own mapcount (PTE mappings, CONFIG_PAGE_MAPCOUNT); on the head w2 the
// mapping id and w3 the low 32 bits of the index; on the first tail w2 the entire mapcount (PMD/PUD
// mappings) and w3 the large mapcount (all mappings), as the kernel keeps them in the folio's second page.

import { allocBlock, reserveBlock, allocFrame, reserveFrames } from './frames';
import { OK, E_NOMEM, E_BUSY, E_RANGE, E_NOFOLIO, E_RANGES, fail, setResult } from './status';

export const PG_ORDER_MASK: u32 = 0x1f;
export const PG_TAIL: u32 = 1 << 5;
export const PG_USED: u32 = 1 << 6;
export const PG_ANON_EXCLUSIVE: u32 = 1 << 7;
export const PG_HWPOISON: u32 = 1 << 8;
/** Folio flags (head only): bits 9..19, set by the host (src/model/folio.ts names them). */
export const FOLIO_FLAGS_MASK: u32 = 0x7ff << 9;
const INDEX_HI_SHIFT: u32 = 20;

const SECTION_SHIFT: u32 = 15;
const SECTION_PAGES: u32 = 1 << SECTION_SHIFT;
const SLOT: u32 = 16;
/** A section: 2^15 descriptors (128 frames) plus one frame holding its 32 tag-chunk pointers. */
const SECTION_FRAMES: u32 = (SECTION_PAGES * SLOT) >> 12;
const TAG_SHIFT: u32 = 10; // 1024 u32 tags per 4 KiB chunk

/** Section pointers for the whole u32 global index space (2^17 sections, 128 frames). */
let sections: usize = 0;

// Ranges: namespace (0 pfn, 1 device-private offset), kind (0 RAM, 1 device-private), first number, pages,
// first global index. 1024 ranges in 9 frames.
const MAX_RANGES: u32 = 1024;
let rNs: usize = 0;
let rKind: usize = 0;
let rBase: usize = 0;
let rPages: usize = 0;
let rStart: usize = 0;
let nRanges: u32 = 0;
let nextIndex: u64 = 0;
let lastRange: u32 = 0;
let nSections: u32 = 0;
let nFolios: u32 = 0;
let nTagChunks: u32 = 0;

/** Set up an empty memmap (after framesInit). Returns false if memory could not be had. */
export function memmapInit(): bool {
  sections = allocBlock(128);
  const r = allocBlock(9);
  if (sections == 0 || r == 0) return false;
  rNs = r;
  rKind = r + 4096;
  rBase = r + 8192;
  rPages = r + 16384;
  rStart = r + 24576;
  nRanges = 0;
  nextIndex = 0;
  lastRange = 0;
  nSections = 0;
  nFolios = 0;
  nTagChunks = 0;
  return true;
}

/**
 * Add a memory range. Its global indices start at the next index congruent to `base` modulo 2^18 (the
 * largest folio order), so that a naturally aligned folio is aligned in the index space too. Returns the
 * range number, or E_RANGES (too many, index space exhausted, or overlapping a range of the namespace).
 */
export function rangeAdd(ns: u32, kind: u32, basef: f64, pagesf: f64): i32 {
  const base = <u64>basef;
  const pages = <u64>pagesf;
  if (nRanges >= MAX_RANGES) return fail(E_RANGES, basef);
  for (let i: u32 = 0; i < nRanges; i++) {
    if (load<u32>(rNs + (i << 2)) != ns) continue;
    const b = load<u64>(rBase + (i << 3));
    const p = load<u64>(rPages + (i << 3));
    if (base < b + p && b < base + pages) return fail(E_RANGES, basef);
  }
  const align: u64 = 1 << 18;
  let start = (nextIndex & ~(align - 1)) | (base & (align - 1));
  if (start < nextIndex) start += align;
  if (start + pages > 0xffff_ffff) return fail(E_RANGES, basef);
  const i = nRanges++;
  store<u32>(rNs + (i << 2), ns);
  store<u32>(rKind + (i << 2), kind);
  store<u64>(rBase + (i << 3), base);
  store<u64>(rPages + (i << 3), pages);
  store<u64>(rStart + (i << 3), start);
  nextIndex = start + pages;
  return <i32>i;
}

export function rangeStart(i: u32): f64 {
  return <f64>load<u64>(rStart + (i << 3));
}

/** Global memmap index of (namespace, number), or -1 if no range holds it. */
export function indexOf(ns: u32, numberf: f64): f64 {
  const n = <u64>numberf;
  let i = lastRange;
  for (let k: u32 = 0; k < nRanges; k++, i = (i + 1) % nRanges) {
    if (load<u32>(rNs + (i << 2)) != ns) continue;
    const b = load<u64>(rBase + (i << 3));
    if (n >= b && n - b < load<u64>(rPages + (i << 3))) {
      lastRange = i;
      return <f64>(load<u64>(rStart + (i << 3)) + (n - b));
    }
  }
  return -1;
}

@inline function sectionOf(g: u64): usize {
  return <usize>load<u32>(sections + (<usize>(g >> SECTION_SHIFT) << 2));
}
/** Descriptor address of global index g, or 0 if its section was never created (no folio there). */
@inline export function descOf(g: u64): usize {
  const s = sectionOf(g);
  return s == 0 ? 0 : s + (<usize>(g & (SECTION_PAGES - 1)) << 4);
}

/** Create the sections covering [g, g + n); the caller reserved the memory. */
function ensureSections(g: u64, n: u64): void {
  for (let s = g >> SECTION_SHIFT; s <= (g + n - 1) >> SECTION_SHIFT; s++) {
    const p = sections + (<usize>s << 2);
    if (load<u32>(p) == 0) {
      store<u32>(p, <u32>allocBlock(SECTION_FRAMES + 1));
      nSections++;
    }
  }
}
function missingSections(g: u64, n: u64): u32 {
  let m: u32 = 0;
  for (let s = g >> SECTION_SHIFT; s <= (g + n - 1) >> SECTION_SHIFT; s++) {
    if (load<u32>(sections + (<usize>s << 2)) == 0) m++;
  }
  return m;
}

/**
 * Create a folio of 2^order pages with its head at global index g (naturally aligned: the host checks the
 * number). flags: folio flags (bits 9..19); the index is split in 32 low and 12 high bits. Fails with E_BUSY
 * (errAt = the first busy index) if a page already belongs to a folio, E_NOMEM if memory is exhausted.
 */
export function folioCreate(gf: f64, order: u32, flags: u32, mapping: u32, indexLo: u32, indexHi: u32): i32 {
  const g = <u64>gf;
  const n = <u64>1 << order;
  const m = missingSections(g, n);
  if (m > 0 && !reserveBlock(m * (SECTION_FRAMES + 1))) return fail(E_NOMEM, gf);
  // Busy check over existing sections only (a missing section holds no folio).
  for (let i: u64 = 0; i < n; i++) {
    const d = descOf(g + i);
    if (d == 0) {
      i |= SECTION_PAGES - 1; // skip the rest of this missing section
      continue;
    }
    if ((load<u32>(d) & PG_USED) != 0) return fail(E_BUSY, <f64>(g + i));
  }
  ensureSections(g, n);
  const head = descOf(g);
  store<u32>(head, order | PG_USED | (flags & FOLIO_FLAGS_MASK) | (indexHi << INDEX_HI_SHIFT));
  store<u32>(head + 4, 0);
  store<u32>(head + 8, mapping);
  store<u32>(head + 12, indexLo);
  for (let i: u64 = 1; i < n; i++) {
    const d = descOf(g + i);
    store<u32>(d, order | PG_USED | PG_TAIL);
    store<u32>(d + 4, 0);
    store<u32>(d + 8, 0);
    store<u32>(d + 12, 0);
  }
  tagClear(g, n);
  nFolios++;
  return OK;
}

/**
 * Create `count` consecutive folios of one order from g, the index advancing by `indexStep` per folio. All
 * pages must be free; the sections are reserved first, so a failure creates nothing.
 */
export function folioCreateRange(gf: f64, order: u32, count: u32, flags: u32, mapping: u32, indexf: f64, indexStep: f64): i32 {
  const g = <u64>gf;
  const n = <u64>count << order;
  const m = missingSections(g, n);
  if (m > 0 && !reserveBlock(m * (SECTION_FRAMES + 1))) return fail(E_NOMEM, gf);
  for (let i: u64 = 0; i < n; i++) {
    const d = descOf(g + i);
    if (d == 0) {
      i |= SECTION_PAGES - 1;
      continue;
    }
    if ((load<u32>(d) & PG_USED) != 0) return fail(E_BUSY, <f64>(g + i));
  }
  let index = <u64>indexf;
  for (let k: u32 = 0; k < count; k++) {
    const st = folioCreate(<f64>(g + (<u64>k << order)), order, flags, mapping, <u32>index, <u32>(index >> 32));
    if (st != OK) return st; // cannot happen: checked and reserved above
    index += <u64>indexStep;
  }
  return OK;
}

/** Free the folio whose head is g: its descriptors and content tags return to zero. */
export function folioFree(gf: f64): i32 {
  const g = <u64>gf;
  const head = descOf(g);
  if (head == 0 || (load<u32>(head) & (PG_USED | PG_TAIL)) != PG_USED) return fail(E_NOFOLIO, gf);
  const n = <u64>1 << (load<u32>(head) & PG_ORDER_MASK);
  for (let i: u64 = 0; i < n; i++) memory.fill(descOf(g + i), 0, SLOT);
  tagClear(g, n);
  nFolios--;
  return OK;
}

/** The folio (head index) owning global index g, or -1 if the page belongs to no folio. */
export function folioOf(gf: f64): f64 {
  const g = <u64>gf;
  const d = descOf(g);
  if (d == 0) return -1;
  const w = load<u32>(d);
  if ((w & PG_USED) == 0) return -1;
  return <f64>(g & ~((<u64>1 << (w & PG_ORDER_MASK)) - 1));
}

/** Is g the head of a folio? */
export function isFolio(gf: f64): bool {
  const d = descOf(<u64>gf);
  return d != 0 && (load<u32>(d) & (PG_USED | PG_TAIL)) == PG_USED;
}

export function pageWord(gf: f64): u32 {
  const d = descOf(<u64>gf);
  return d == 0 ? 0 : load<u32>(d);
}
export function pageMapcount(gf: f64): u32 {
  const d = descOf(<u64>gf);
  return d == 0 ? 0 : load<u32>(d + 4);
}
export function folioMapping(gf: f64): u32 {
  return load<u32>(descOf(<u64>gf) + 8);
}
export function folioIndex(gf: f64): f64 {
  const d = descOf(<u64>gf);
  return <f64>(((<u64>(load<u32>(d) >> INDEX_HI_SHIFT)) << 32) | <u64>load<u32>(d + 12));
}
/** Entire mapcount (PMD/PUD mappings) of a large folio; 0 for order 0. */
export function entireMapcount(gf: f64): u32 {
  const d = descOf(<u64>gf);
  return (load<u32>(d) & PG_ORDER_MASK) == 0 ? 0 : load<u32>(d + SLOT + 8);
}
/** folio_mapcount: all mappings (order 0: the page's mapcount; large: the large mapcount). */
export function folioMapcount(gf: f64): u32 {
  const d = descOf(<u64>gf);
  return (load<u32>(d) & PG_ORDER_MASK) == 0 ? load<u32>(d + 4) : load<u32>(d + SLOT + 12);
}

/** Set and clear folio flags on the head (only FOLIO_FLAGS_MASK bits). */
export function folioSetFlags(gf: f64, set: u32, clear: u32): void {
  const d = descOf(<u64>gf);
  store<u32>(d, (load<u32>(d) & ~(clear & FOLIO_FLAGS_MASK)) | (set & FOLIO_FLAGS_MASK));
}
/** Set and clear per-page flags (anon-exclusive, hwpoison) on n pages from g. */
export function pageSetFlags(gf: f64, n: u32, set: u32, clear: u32): void {
  const mask = PG_ANON_EXCLUSIVE | PG_HWPOISON;
  for (let i: u64 = 0; i < <u64>n; i++) {
    const d = descOf(<u64>gf + i);
    store<u32>(d, (load<u32>(d) & ~(clear & mask)) | (set & mask));
  }
}

/** Add delta to the mapcount of n pages from g (PTE mappings), and to their folios' large mapcounts. */
export function pageMapcountAdd(gf: f64, n: u32, delta: i32): void {
  const g = <u64>gf;
  for (let i: u64 = 0; i < <u64>n; i++) {
    const d = descOf(g + i);
    store<u32>(d + 4, <u32>(<i32>load<u32>(d + 4) + delta));
    const order = load<u32>(d) & PG_ORDER_MASK;
    if (order != 0) {
      const p = descOf((g + i) & ~((<u64>1 << order) - 1)) + SLOT + 12;
      store<u32>(p, <u32>(<i32>load<u32>(p) + delta));
    }
  }
}

/** Add delta to the entire (PMD/PUD) mapcount of a large folio and to its large mapcount. */
export function entireMapcountAdd(gf: f64, delta: i32): void {
  const d = descOf(<u64>gf) + SLOT;
  store<u32>(d + 8, <u32>(<i32>load<u32>(d + 8) + delta));
  store<u32>(d + 12, <u32>(<i32>load<u32>(d + 12) + delta));
}

// Content tags (D8): one u32 per page in 4 KiB chunks, created on the first non-zero tag of their 1024
// pages. A page without a chunk has tag 0, ZERO.
@inline function tagDir(g: u64): usize {
  return sectionOf(g) + (<usize>SECTION_FRAMES << 12) + (<usize>((g & (SECTION_PAGES - 1)) >> TAG_SHIFT) << 2);
}
function tagClear(g: u64, n: u64): void {
  for (let i: u64 = 0; i < n; i++) {
    if (sectionOf(g + i) == 0) continue;
    const c = <usize>load<u32>(tagDir(g + i));
    if (c != 0) store<u32>(c + (<usize>((g + i) & ((1 << TAG_SHIFT) - 1)) << 2), 0);
  }
}

/** Set the tag of n pages from g (all inside folios). E_NOMEM if chunks cannot be created. */
export function tagSet(gf: f64, n: u32, tag: u32): i32 {
  const g = <u64>gf;
  for (let i: u64 = 0; i < <u64>n; i += SECTION_PAGES) if (sectionOf(g + i) == 0) return fail(E_NOFOLIO, <f64>(g + i));
  if (sectionOf(g + <u64>n - 1) == 0) return fail(E_NOFOLIO, <f64>(g + <u64>n - 1));
  let need: u32 = 0;
  if (tag != 0) {
    for (let c = g >> TAG_SHIFT; c <= (g + <u64>n - 1) >> TAG_SHIFT; c++) {
      if (load<u32>(tagDir(c << TAG_SHIFT)) == 0) need++;
    }
    if (need > 0 && !reserveFrames(need)) return fail(E_NOMEM, gf);
  }
  for (let i: u64 = 0; i < <u64>n; i++) {
    const dir = tagDir(g + i);
    let c = <usize>load<u32>(dir);
    if (c == 0) {
      if (tag == 0) continue;
      c = allocFrame();
      store<u32>(dir, <u32>c);
      nTagChunks++;
    }
    store<u32>(c + (<usize>((g + i) & ((1 << TAG_SHIFT) - 1)) << 2), tag);
  }
  return OK;
}
export function tagGet(gf: f64): u32 {
  const g = <u64>gf;
  if (sectionOf(g) == 0) return 0;
  const c = <usize>load<u32>(tagDir(g));
  return c == 0 ? 0 : load<u32>(c + (<usize>(g & ((1 << TAG_SHIFT) - 1)) << 2));
}

export function folioCount(): u32 {
  return nFolios;
}
export function sectionCount(): u32 {
  return nSections;
}
export function tagChunkCount(): u32 {
  return nTagChunks;
}
/** Frames the memmap holds for its whole life: the section table and the range table. */
export function memmapFixedBytes(): u32 {
  return (128 + 9) << 12;
}
export function sectionBytes(): u32 {
  return (SECTION_FRAMES + 1) << 12;
}

/** Histogram of folios by order (out[0..18], u32) and by flags: out[19 + bit] counts heads with folio flag
 *  bit (9..19) set. Scans the created sections. */
export function folioStats(out: usize): void {
  memory.fill(out, 0, 4 * 32);
  for (let s: u32 = 0; s < (1 << 17); s++) {
    const sec = <usize>load<u32>(sections + (<usize>s << 2));
    if (sec == 0) continue;
    for (let i: u32 = 0; i < SECTION_PAGES; i++) {
      const w = load<u32>(sec + (<usize>i << 4));
      if ((w & (PG_USED | PG_TAIL)) != PG_USED) continue;
      const o = out + (<usize>(w & PG_ORDER_MASK) << 2);
      store<u32>(o, load<u32>(o) + 1);
      for (let b: u32 = 9; b < 20; b++) {
        if ((w & (1 << b)) != 0) {
          const f = out + (<usize>(19 + b - 9) << 2);
          store<u32>(f, load<u32>(f) + 1);
        }
      }
    }
  }
}
