// Memory ranges (D1): system RAM and device-private chunks, each a run of numbered pages in a namespace (pfn,
// or device-private offset), and each owning a stretch of the engine's global page index (the memmap's).

import { allocBlock } from './frames';
import { E_RANGES, fail } from './status';

// Ranges: namespace (0 pfn, 1 device-private offset), kind (0 RAM, 1 device-private), first number, pages,
// first global index. 1024 ranges in 9 frames.
const MAX_RANGES: u32 = 1024;
const RANGE_FRAMES: u32 = 9;
let rNs: usize = 0;
let rKind: usize = 0;
let rBase: usize = 0;
let rPages: usize = 0;
let rStart: usize = 0;
let nRanges: u32 = 0;
let nextIndex: u64 = 0;
let lastRange: u32 = 0;

/** Set up an empty range table. False if memory could not be had. */
export function rangesInit(): bool {
  const r = allocBlock(RANGE_FRAMES);
  if (r == 0) return false;
  rNs = r;
  rKind = r + 4096;
  rBase = r + 8192;
  rPages = r + 16384;
  rStart = r + 24576;
  nRanges = 0;
  nextIndex = 0;
  lastRange = 0;
  return true;
}

export function rangesFixedBytes(): u32 {
  return RANGE_FRAMES << 12;
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

/** The range holding global index g, or -1. */
function rangeOfIndex(g: u64): i32 {
  for (let i: u32 = 0; i < nRanges; i++) {
    const s = load<u64>(rStart + (i << 3));
    if (g >= s && g - s < load<u64>(rPages + (i << 3))) return <i32>i;
  }
  return -1;
}

/** The number (pfn or device-private offset) of global index g; g must be in a range. */
export function numberOfIndex(gf: f64): f64 {
  const i = <u32>rangeOfIndex(<u64>gf);
  return <f64>(load<u64>(rBase + (i << 3)) + (<u64>gf - load<u64>(rStart + (i << 3))));
}

/** The namespace (0 pfn, 1 device-private offset) of global index g; g must be in a range. */
export function namespaceOfIndex(gf: f64): u32 {
  return load<u32>(rNs + (<u32>rangeOfIndex(<u64>gf) << 2));
}
