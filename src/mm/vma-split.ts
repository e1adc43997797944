import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { vmaPages, type Vma, type VmaFlags } from '../model/vma.js';
import { splitHugePmd } from './huge-pmd.js';

/**
 * VMA split and merge (kernel-operations.md §2.2). A VMA's bounds and pgoff key it in the mm's VMA set and in
 * the rmap trees, so a change makes new VMAs: they take copies of the old VMA's anon_vma links (anon_vma_clone)
 * and their place in i_mmap, then the old VMA is unlinked. Page tables are not touched, except a huge PMD that
 * straddles a split point, which is split first (§2.2 step 3).
 */

export interface VmaChange {
  start?: number;
  end?: number;
  pgoff?: number;
  flags?: Partial<VmaFlags>;
}

/** Replace `vma` by one VMA with the changes applied, keeping its anon_vma links and file. */
export function replaceVma(engine: Engine, mm: Mm, vma: Vma, change: VmaChange): Vma {
  return replaceVmas(engine, mm, [vma], [change], vma)[0];
}

/**
 * Replace `olds` (adjacent VMAs of one mm) by VMAs built from `changes` (each applied to the first old VMA's
 * settings). Every new VMA is linked to the anon_vmas of `linkFrom` (and takes its own anon_vma), then the old
 * ones are unlinked. A refused insert (overlap, bad bounds) puts the old VMA objects back and throws.
 */
function replaceVmas(engine: Engine, mm: Mm, olds: Vma[], changes: VmaChange[], linkFrom: Vma): Vma[] {
  for (const v of olds) mm.vmas.remove(v);
  const made: Vma[] = [];
  try {
    for (const c of changes) {
      const base = olds[0];
      made.push(mm.addVma({
        start: c.start ?? base.start,
        end: c.end ?? base.end,
        pgoff: c.pgoff ?? base.pgoff,
        flags: { ...base.flags, ...c.flags },
        file: base.file ?? undefined,
      }));
    }
  } catch (e) {
    // Undo: the old VMAs return as they were (still linked in the rmap trees, which change only below).
    for (const v of made) mm.detachVma(v);
    for (const v of olds) mm.vmas.restore(v);
    throw e;
  }
  for (const v of made) engine.rmap.anon.clone(v, linkFrom);
  for (const v of olds) {
    engine.rmap.anon.unlink(v);
    engine.rmap.iMmap.remove(v);
  }
  return made;
}

/**
 * __split_vma (§2.2): split at `addr` (page aligned, strictly inside). The high part's pgoff is
 * pgoff + (addr − start)/4096. Returns [low, high], or null when the VMA refuses the split (hugetlb and addr
 * not aligned to its page size: the callers' EINVAL).
 */
export function splitVma(engine: Engine, mm: Mm, vma: Vma, addr: number): [Vma, Vma] | null {
  if (addr % PAGE_SIZE !== 0 || addr <= vma.start || addr >= vma.end) {
    throw new PvmwError('BAD_ADDRESS', `cannot split VMA ${hex(vma.start)}-${hex(vma.end)} at ${hex(addr)}`);
  }
  if (!vmaMaySplit(vma, addr)) return null;
  if (addr % PMD_SIZE !== 0) {
    const block = addr - (addr % PMD_SIZE);
    if (block >= vma.start && block + PMD_SIZE <= vma.end) splitHugePmd(engine, mm, vma, addr);
  }
  const delta = (addr - vma.start) / PAGE_SIZE;
  const [low, high] = replaceVmas(engine, mm, [vma], [{ end: addr }, { start: addr, pgoff: vma.pgoff + delta }], vma);
  return [low, high];
}

/** may_split (§2.1 last row): a hugetlb VMA splits only at a multiple of its huge page size. */
export function vmaMaySplit(vma: Vma, addr: number): boolean {
  return vma.flags.hugetlb === null || addr % (vma.flags.hugetlb === '1G' ? PUD_SIZE : PMD_SIZE) === 0;
}

/**
 * Split so that [start, end) is covered by whole VMAs; returns the VMAs inside, or null if a split was refused
 * (both ends are checked before either is split, so a refusal changes nothing).
 */
export function isolateRange(engine: Engine, mm: Mm, start: number, end: number): Vma[] | null {
  const first = mm.vmas.find(start);
  const splitFirst = first !== undefined && first.start < start;
  const last = mm.vmas.find(end - 1);
  const splitLast = last !== undefined && last.end > end;
  if ((splitFirst && !vmaMaySplit(first, start)) || (splitLast && !vmaMaySplit(last, end))) return null;
  if (splitFirst) splitVma(engine, mm, first, start);
  if (splitLast) splitVma(engine, mm, mm.vmas.find(end - 1)!, end);
  return mm.vmas.overlapping(start, end);
}

function sameFlags(a: VmaFlags, b: VmaFlags): boolean {
  return (Object.keys(a) as (keyof VmaFlags)[]).every((k) => a[k] === b[k]);
}

/** May `a` and `b` (a directly below b) merge (§2.2 merging summary)? */
export function canMerge(engine: Engine, a: Vma, b: Vma): boolean {
  if (a.end !== b.start || a.file !== b.file || !sameFlags(a.flags, b.flags)) return false;
  if (a.pgoff + vmaPages(a) !== b.pgoff) return false;
  const av = engine.rmap.anon.of(a);
  const bv = engine.rmap.anon.of(b);
  return av === null || bv === null || av === bv;
}

/** Merge `vma` with its compatible neighbours (vma_merge); returns the VMA now covering it. */
export function vmaMergeAround(engine: Engine, mm: Mm, vma: Vma): Vma {
  let cur = vma;
  const all = mm.vmas.all();
  const i = all.indexOf(cur);
  const prev = i > 0 ? all[i - 1] : undefined;
  const next = i >= 0 && i + 1 < all.length ? all[i + 1] : undefined;
  if (prev && canMerge(engine, prev, cur)) {
    const linkFrom = engine.rmap.anon.of(prev) ? prev : cur;
    cur = replaceVmas(engine, mm, [prev, cur], [{ start: prev.start, end: cur.end, pgoff: prev.pgoff }], linkFrom)[0];
  }
  if (next && canMerge(engine, cur, next)) {
    const linkFrom = engine.rmap.anon.of(cur) ? cur : next;
    cur = replaceVmas(engine, mm, [cur, next], [{ start: cur.start, end: next.end, pgoff: cur.pgoff }], linkFrom)[0];
  }
  return cur;
}
