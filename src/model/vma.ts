import { PvmwError, hex } from '../errors.js';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE, PUD_ORDER, checkRange, type Geometry } from './geometry.js';

/**
 * The VMA model: the VMAs of one mm, kept sorted by start, and the kernel's address ↔ page-offset helpers
 * (spec §1.3 `vma_address`, `vma_address_end`, `linear_page_index`; decisions.md D5 `thp_vma_suitable_order`).
 *
 * Addresses reach 2^56 and page offsets 2^52, so nothing here uses JS bitwise operators (they truncate to 32
 * bits): page arithmetic is done with division, remainder and comparisons counted in pages, which keeps every
 * intermediate value an exact integer below 2^53 (or a multiple of 4096 below 2^57, which is also exact).
 */

/** vm_flags bits the simulator models. */
export interface VmaFlags {
  read: boolean;
  write: boolean;
  exec: boolean;
  /** VM_SHARED (MAP_SHARED). */
  shared: boolean;
  /** VM_LOCKED (mlock). */
  locked: boolean;
  /** THP allowed (the VMA is not VM_NOHUGEPAGE). */
  thp: boolean;
  /** A hugetlb VMA and its huge page size, or null. */
  hugetlb: null | '2M' | '1G';
  /** VM_MAYWRITE: write may be granted by mprotect (false for a read-only open file mapped shared). */
  mayWrite: boolean;
  /** VM_DONTCOPY (MADV_DONTFORK): fork leaves a hole. */
  dontcopy: boolean;
  /** VM_WIPEONFORK (MADV_WIPEONFORK): the child gets fresh anonymous memory. */
  wipeonfork: boolean;
  /** VM_MERGEABLE (MADV_MERGEABLE): KSM scans it. */
  mergeable: boolean;
}

/** What a caller asks for; `VmaSet.insert` validates it and fills in defaults. */
export interface VmaSpec {
  start: number;
  end: number;
  /** vm_pgoff. Default: start / 4096 for anonymous VMAs (spec §1.3), 0 for file VMAs. */
  pgoff?: number;
  flags?: Partial<VmaFlags>;
  /** File id; absent = anonymous. */
  file?: number;
}

/**
 * A stored VMA. start/end/pgoff decide the VMA's place in its VmaSet: change them only by removing the VMA
 * and inserting a new one. flags may be changed in place.
 */
export interface Vma {
  readonly id: number;
  start: number;
  end: number;
  pgoff: number;
  flags: VmaFlags;
  file: number | null;
  /** file === null (vma_is_anonymous). */
  anon: boolean;
  /** The mm the VMA belongs to (vm_mm). */
  readonly mm: number;
}

/** -EFAULT, as `vma_address` returns it (spec §1.3). */
export const EFAULT = -14;

/** Page offsets (and pgoff + page count) stay below this: 2^52 (MAX_LFS_FILESIZE / 4096 is 2^51). */
export const PGOFF_LIMIT = 2 ** 52;

export const DEFAULT_VMA_FLAGS: Readonly<VmaFlags> = Object.freeze({
  read: true,
  write: true,
  exec: false,
  shared: false,
  locked: false,
  thp: false,
  hugetlb: null,
  mayWrite: true,
  dontcopy: false,
  wipeonfork: false,
  mergeable: false,
});

/** The boolean vm_flags, in the order they are listed. */
export const VMA_BOOL_FLAGS = ['read', 'write', 'exec', 'shared', 'locked', 'thp', 'mayWrite', 'dontcopy', 'wipeonfork', 'mergeable'] as const;
const HUGETLB_SIZE = { '2M': PMD_SIZE, '1G': PUD_SIZE } as const;

/** Pages in a VMA ((vm_end − vm_start) / 4096; vma_pages). */
export function vmaPages(vma: Vma): number {
  return (vma.end - vma.start) / PAGE_SIZE;
}

function rangeText(start: number, end: number): string {
  return `[${hex(start)}, ${hex(end)})`;
}

/** Check a page-offset range [pgoff, pgoff + nrPages): whole numbers, nrPages ≥ 1, end below PGOFF_LIMIT. */
function checkPgoffRange(pgoff: number, nrPages: number): void {
  if (!Number.isSafeInteger(pgoff) || pgoff < 0) {
    throw new PvmwError('BAD_RANGE', `pgoff ${String(pgoff)} is not a non-negative whole number`);
  }
  if (!Number.isSafeInteger(nrPages) || nrPages < 1) {
    throw new PvmwError('BAD_RANGE', `nr_pages ${String(nrPages)} is not a positive whole number`);
  }
  if (pgoff + nrPages >= PGOFF_LIMIT) {
    throw new PvmwError('BAD_RANGE', `page offsets [${hex(pgoff)}, ${hex(pgoff + nrPages)}) reach ${hex(PGOFF_LIMIT)}`);
  }
}

/** Validate flags: only known names, booleans, and a hugetlb size that exists. */
function resolveFlags(flags: Partial<VmaFlags> | undefined): VmaFlags {
  if (flags === undefined) return { ...DEFAULT_VMA_FLAGS };
  if (typeof flags !== 'object' || flags === null) {
    throw new PvmwError('BAD_SETTING', `VMA flags must be an object, got ${JSON.stringify(flags)}`);
  }
  const out: VmaFlags = { ...DEFAULT_VMA_FLAGS };
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined) continue; // a flag given as undefined keeps its default
    if (k === 'hugetlb') {
      if (v !== null && v !== '2M' && v !== '1G') {
        throw new PvmwError('BAD_ORDER', `hugetlb page size must be null, "2M" or "1G", got ${JSON.stringify(v)}`);
      }
      out.hugetlb = v;
    } else if ((VMA_BOOL_FLAGS as readonly string[]).includes(k)) {
      if (typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `VMA flag ${k} must be true or false, got ${JSON.stringify(v)}`);
      out[k as (typeof VMA_BOOL_FLAGS)[number]] = v;
    } else {
      throw new PvmwError('BAD_SETTING', `unknown VMA flag ${JSON.stringify(k)}`);
    }
  }
  return out;
}

/**
 * The VMAs of one mm, sorted by start and non-overlapping, with binary-search lookups (the maple tree's role).
 * The backing array is replaced, never mutated, so `all()` can hand it out safely.
 */
export class VmaSet {
  private vmas: readonly Vma[] = [];
  private readonly ids = new Set<number>();
  private counter = 1;
  private readonly nextId: () => number;

  /**
   * @param nextId source of VMA ids (e.g. an engine-wide counter); default: the set's own counter 1, 2, …
   * @param mmId the owning mm's id, recorded in every VMA (vm_mm)
   */
  constructor(nextId?: () => number, readonly mmId = 0) {
    this.nextId = nextId ?? (() => this.counter++);
  }

  get size(): number {
    return this.vmas.length;
  }

  /** The VMAs in address order. The array is a snapshot: later inserts and removes do not change it. */
  all(): readonly Vma[] {
    return this.vmas;
  }

  /** Index of the first VMA whose end is above addr (ends are sorted, as VMAs do not overlap). */
  private firstEndingAbove(addr: number): number {
    let lo = 0;
    let hi = this.vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1; // array indices, not addresses
      if (this.vmas[mid]!.end > addr) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The VMA with start ≤ addr < end, if any (vma_lookup). */
  find(addr: number): Vma | undefined {
    const v = this.vmas[this.firstEndingAbove(addr)];
    return v !== undefined && v.start <= addr ? v : undefined;
  }

  /** The VMA with this id, if it is in the set. */
  byId(id: number): Vma | undefined {
    if (!this.ids.has(id)) return undefined;
    return this.vmas.find((v) => v.id === id);
  }

  /** VMAs that intersect [start, end), in address order. start === end gives none. */
  overlapping(start: number, end: number): Vma[] {
    checkQuery(start, end);
    const out: Vma[] = [];
    for (let i = this.firstEndingAbove(start); i < this.vmas.length && this.vmas[i]!.start < end; i++) {
      out.push(this.vmas[i]!);
    }
    return out;
  }

  /** True iff every page of [start, end) lies in some VMA; adjacent VMAs (no gap) cover together. */
  covers(start: number, end: number): boolean {
    checkQuery(start, end);
    let cursor = start;
    for (let i = this.firstEndingAbove(start); cursor < end; i++) {
      const v = this.vmas[i];
      if (v === undefined || v.start > cursor) return false;
      cursor = v.end;
    }
    return true;
  }

  /**
   * Validate a VMA and add it. Throws PvmwError (and changes nothing) for: misaligned or out-of-range start/end
   * (BAD_ADDRESS), an empty range (BAD_RANGE), a hugetlb VMA not aligned to its page size (BAD_ADDRESS) or
   * whose pgoff is not a multiple of its pages (BAD_RANGE), a bad pgoff (BAD_RANGE), bad flags or file id
   * (BAD_SETTING, BAD_ORDER for a hugetlb size), overlap with an existing VMA (VMA_OVERLAP; D7).
   */
  insert(spec: VmaSpec, g: Geometry): Vma {
    if (typeof spec !== 'object' || spec === null) throw new PvmwError('BAD_SETTING', `VMA spec must be an object`);
    const { start, end } = spec;
    checkRange(g, start, end);
    const flags = resolveFlags(spec.flags);
    const file = spec.file ?? null;
    if (file !== null && (!Number.isSafeInteger(file) || file < 0)) {
      throw new PvmwError('BAD_SETTING', `file id must be a non-negative whole number, got ${JSON.stringify(file)}`);
    }
    const pages = (end - start) / PAGE_SIZE;
    const pgoff = spec.pgoff ?? (file === null ? start / PAGE_SIZE : 0);
    if (!Number.isSafeInteger(pgoff) || pgoff < 0) {
      throw new PvmwError('BAD_RANGE', `VMA pgoff ${String(pgoff)} is not a non-negative whole number`);
    }
    if (pgoff + pages >= PGOFF_LIMIT) {
      throw new PvmwError('BAD_RANGE', `VMA pgoff ${hex(pgoff)} + ${hex(pages)} pages reaches ${hex(PGOFF_LIMIT)}`);
    }
    if (flags.hugetlb !== null) {
      const size = HUGETLB_SIZE[flags.hugetlb];
      for (const [what, a] of [['start', start], ['end', end]] as const) {
        if (a % size !== 0) {
          throw new PvmwError('BAD_ADDRESS', `hugetlb ${flags.hugetlb} VMA ${what} ${hex(a)} is not aligned to ${hex(size)}`);
        }
      }
      const hpages = size / PAGE_SIZE;
      if (pgoff % hpages !== 0) {
        throw new PvmwError('BAD_RANGE', `hugetlb ${flags.hugetlb} VMA pgoff ${hex(pgoff)} is not a multiple of ${hex(hpages)}`);
      }
    }
    const at = this.firstEndingAbove(start);
    const next = this.vmas[at];
    if (next !== undefined && next.start < end) {
      throw new PvmwError('VMA_OVERLAP', `VMA ${rangeText(start, end)} overlaps VMA ${rangeText(next.start, next.end)}`);
    }
    const id = this.nextId();
    if (!Number.isSafeInteger(id) || this.ids.has(id)) {
      throw new PvmwError('INTERNAL', `VMA id ${String(id)} is not a whole number or is already in use`);
    }
    const vma: Vma = { id, start, end, pgoff, flags, file, anon: file === null, mm: this.mmId };
    this.vmas = [...this.vmas.slice(0, at), vma, ...this.vmas.slice(at)];
    this.ids.add(id);
    return vma;
  }

  /**
   * Put back a VMA object that was removed from this set (an operation undoing itself): same id, same place.
   * VMA_OVERLAP if something now overlaps it.
   */
  restore(vma: Vma): void {
    if (this.ids.has(vma.id)) return;
    const at = this.firstEndingAbove(vma.start);
    const next = this.vmas[at];
    if (next !== undefined && next.start < vma.end) {
      throw new PvmwError('VMA_OVERLAP', `VMA ${rangeText(vma.start, vma.end)} overlaps VMA ${rangeText(next.start, next.end)}`);
    }
    this.vmas = [...this.vmas.slice(0, at), vma, ...this.vmas.slice(at)];
    this.ids.add(vma.id);
  }

  /** Remove a VMA (matched by id). Returns false if it is not in the set (like munmap of a hole, D7). */
  remove(vma: Vma): boolean {
    if (!this.ids.has(vma.id)) return false;
    let i = this.firstEndingAbove(vma.start);
    if (this.vmas[i]?.id !== vma.id) i = this.vmas.findIndex((v) => v.id === vma.id);
    this.vmas = [...this.vmas.slice(0, i), ...this.vmas.slice(i + 1)];
    this.ids.delete(vma.id);
    return true;
  }
}

function checkQuery(start: number, end: number): void {
  if (typeof start !== 'number' || typeof end !== 'number' || Number.isNaN(start) || Number.isNaN(end) || end < start) {
    throw new PvmwError('BAD_RANGE', `range [${String(start)}, ${String(end)}) is not a range`);
  }
}

/**
 * vma_address (spec §1.3): the first VA in the VMA at which any page of [pgoff, pgoff + nrPages) appears,
 * or EFAULT.
 * 1. pgoff ≥ vm_pgoff: start + (pgoff − vm_pgoff)·4096, or EFAULT if that is at or beyond vm_end. (The
 *    kernel's "wrapped below vm_start" case is this one too: with offsets below 2^52 a wrap means the page
 *    lies beyond vm_end. Counting in pages keeps it exact.)
 * 2. pgoff < vm_pgoff: vm_start if the range reaches vm_pgoff (pgoff + nrPages − 1 ≥ vm_pgoff), else EFAULT.
 */
export function vmaAddress(vma: Vma, pgoff: number, nrPages: number): number {
  checkPgoffRange(pgoff, nrPages);
  if (pgoff >= vma.pgoff) {
    const delta = pgoff - vma.pgoff;
    return delta < vmaPages(vma) ? vma.start + delta * PAGE_SIZE : EFAULT;
  }
  return pgoff + nrPages - 1 >= vma.pgoff ? vma.start : EFAULT;
}

/**
 * vma_address_end (spec §1.3): the exclusive end VA of a walk.
 * 1. nrPages == 1: address + 4096 (pgoff is not looked at: KSM).
 * 2. Else vm_start + (pgoff + nrPages − vm_pgoff)·4096, clamped to vm_end when it falls below vm_start
 *    (the kernel's unsigned wrap: the range ends before the VMA) or above vm_end. A range ending exactly at
 *    vm_pgoff gives vm_start, as in the kernel.
 */
export function vmaAddressEnd(w: { address: number; pgoff: number; nrPages: number; vma: Vma }): number {
  if (w.nrPages === 1) return w.address + PAGE_SIZE;
  checkPgoffRange(w.pgoff, w.nrPages);
  const delta = w.pgoff + w.nrPages - w.vma.pgoff;
  if (delta < 0 || delta > vmaPages(w.vma)) return w.vma.end;
  return w.vma.start + delta * PAGE_SIZE;
}

/**
 * linear_page_index (spec §1.3): the page offset at which addr lies, ((addr − vm_start) / 4096) + vm_pgoff.
 * Meant for addr inside the VMA; outside it the result is the same line extended.
 */
export function linearPageIndex(vma: Vma, addr: number): number {
  return Math.floor((addr - vma.start) / PAGE_SIZE) + vma.pgoff;
}

/**
 * thp_vma_suitable_order (decisions.md D5): true iff the naturally aligned block of 2^order pages containing
 * addr lies wholly inside the VMA, and, for file VMAs, the block's first page offset is a multiple of 2^order
 * (so a folio of that order in the page cache maps there whole). order is 0 … PUD_ORDER (BAD_ORDER else).
 */
export function thpVmaSuitableOrder(vma: Vma, addr: number, order: number): boolean {
  if (!Number.isInteger(order) || order < 0 || order > PUD_ORDER) {
    throw new PvmwError('BAD_ORDER', `folio order ${String(order)} does not exist (0 … ${PUD_ORDER})`);
  }
  const nr = 2 ** order;
  const size = nr * PAGE_SIZE;
  const blockStart = addr - (addr % size);
  if (blockStart < vma.start || blockStart + size > vma.end) return false;
  return vma.anon || linearPageIndex(vma, blockStart) % nr === 0;
}
