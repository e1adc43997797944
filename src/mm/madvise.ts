import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE } from '../model/geometry.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import type { Vma, VmaFlags } from '../model/vma.js';
import { err, ok, type SysResult } from './errno.js';
import { ksmUnmerge, vmaKsmCompatible } from './ksm.js';
import { leavesIn, NONE_RAW, presentRaw, writeLeaves, type LeafView } from './leaf.js';
import { checkWhole, pageAlign, DEFAULT_MAX_MAP_COUNT, type MapCountOptions } from './munmap.js';
import { isolateRange, vmaMaySplit, vmaMergeAround } from './vma-split.js';
import { opsState } from './state.js';
import { splitFolio } from './split-folio.js';
import { rmapWalk } from '../rmap/rmap-walk.js';
import { zapPageRange } from './zap.js';

/**
 * madvise(2) (kernel-operations.md §7, 7.0-rc6 mm/madvise.c):
 * - §7.1 arguments: unknown advice, unaligned start, a length that wraps → EINVAL; length 0 → 0; holes in the
 *   range: the advice is applied to the mapped parts, then ENOMEM; a per-VMA refusal returns at once (earlier
 *   VMAs already done).
 * - §7.2 MADV_DONTNEED / MADV_DONTNEED_LOCKED: zap (§2.4/§2.5) keeping markers; VM_LOCKED → EINVAL (DONTNEED
 *   only); hugetlb: start must be huge-page aligned (EINVAL), the end is rounded down to a huge page.
 * - §7.3 MADV_FREE: madviseFree below; EINVAL on VM_LOCKED, hugetlb and non-anonymous VMAs.
 * - §7.4 flag advice: HUGEPAGE/NOHUGEPAGE (flags.thp), DONTFORK/DOFORK (dontcopy), WIPEONFORK/KEEPONFORK
 *   (wipeonfork; WIPEONFORK on a file or shared VMA → EINVAL), MERGEABLE/UNMERGEABLE (§8: mergeable; a
 *   KSM-incompatible VMA is left alone; UNMERGEABLE first unshares the range's KSM pages with ksmUnmerge).
 *   A VMA whose flags change is split at the range's ends (a hugetlb VMA refusing the split → EINVAL; a split
 *   at map_count ≥ max_map_count → ENOMEM; both checked before any change) and merged with compatible
 *   neighbours (§2.2). No mapping changes.
 * Not modelled: VM_PFNMAP / VM_SPECIAL (no such VMAs), khugepaged registration.
 */
export type MadviseAdvice =
  | 'MADV_DONTNEED' | 'MADV_DONTNEED_LOCKED' | 'MADV_FREE' | 'MADV_HUGEPAGE' | 'MADV_NOHUGEPAGE'
  | 'MADV_DONTFORK' | 'MADV_DOFORK' | 'MADV_WIPEONFORK' | 'MADV_KEEPONFORK' | 'MADV_MERGEABLE' | 'MADV_UNMERGEABLE';

/** The flag each flag advice sets, and to what (§7.4). */
const FLAG_ADVICE: Partial<Record<MadviseAdvice, Partial<VmaFlags>>> = {
  MADV_HUGEPAGE: { thp: true },
  MADV_NOHUGEPAGE: { thp: false },
  MADV_DONTFORK: { dontcopy: true },
  MADV_DOFORK: { dontcopy: false },
  MADV_WIPEONFORK: { wipeonfork: true },
  MADV_KEEPONFORK: { wipeonfork: false },
  MADV_MERGEABLE: { mergeable: true },
  MADV_UNMERGEABLE: { mergeable: false },
};
const ADVICE = new Set<string>(['MADV_DONTNEED', 'MADV_DONTNEED_LOCKED', 'MADV_FREE', ...Object.keys(FLAG_ADVICE)]);

/** madvise(engine, mm, addr, len, advice): 0, or the errno of §7.1–§7.4. */
export function madvise(engine: Engine, mm: Mm, addr: number, len: number, advice: MadviseAdvice, opts: MapCountOptions = {}): SysResult {
  if (typeof advice !== 'string') throw new PvmwError('BAD_SETTING', `advice must be a MADV_* name, got ${JSON.stringify(advice)}`);
  checkWhole('addr', addr);
  checkWhole('len', len);
  if (!ADVICE.has(advice)) return err('EINVAL');
  if (addr < 0 || addr % PAGE_SIZE !== 0) return err('EINVAL'); // a negative start is a huge unsigned one: end wraps
  if (len < 0) return err('EINVAL'); // a huge size_t: PAGE_ALIGN wraps to 0, or start + len wraps
  const end = addr + pageAlign(len);
  if (end === addr) return ok(0);
  // madvise_walk_vmas: visit each VMA's part of the range; a hole makes the result ENOMEM.
  let start = addr;
  let hole = false;
  while (start < end) {
    const vma = mm.vmas.overlapping(start, end)[0];
    if (!vma) return err('ENOMEM');
    if (vma.start > start) {
      hole = true;
      start = vma.start;
    }
    const tmp = Math.min(end, vma.end);
    const r = madviseVma(engine, mm, vma, start, tmp, advice, opts);
    if (r) return r;
    start = tmp;
  }
  return hole ? err('ENOMEM') : ok(0);
}

/** One VMA's part [start, end) of the range: null when done, or the error that stops the walk. */
function madviseVma(engine: Engine, mm: Mm, vma: Vma, start: number, end: number, advice: MadviseAdvice, opts: MapCountOptions): SysResult | null {
  const hugeSize = vma.flags.hugetlb === '1G' ? PUD_SIZE : vma.flags.hugetlb === '2M' ? PMD_SIZE : 0;
  switch (advice) {
    case 'MADV_DONTNEED':
    case 'MADV_DONTNEED_LOCKED': {
      // madvise_dontneed_free_valid_vma
      if (hugeSize === 0 && vma.flags.locked && advice === 'MADV_DONTNEED') return err('EINVAL');
      if (hugeSize > 0 && start % hugeSize !== 0) return err('EINVAL');
      const e = hugeSize > 0 ? end - (end % hugeSize) : end;
      if (e > start) zapPageRange(engine, mm, vma, start, e, { dropMarkers: false });
      return null;
    }
    case 'MADV_FREE':
      if (hugeSize > 0 || vma.flags.locked || !vma.anon) return err('EINVAL');
      madviseFree(engine, mm, vma, start, end);
      return null;
    default:
      return madviseFlags(engine, mm, vma, start, end, advice, opts);
  }
}

/** §7.4 (madvise_vma_behavior → madvise_update_vma): the flag change on exactly [start, end) of `vma`. */
function madviseFlags(engine: Engine, mm: Mm, vma: Vma, start: number, end: number, advice: MadviseAdvice, opts: MapCountOptions): SysResult | null {
  const change = FLAG_ADVICE[advice]!;
  if (advice === 'MADV_WIPEONFORK' && (!vma.anon || vma.flags.shared)) return err('EINVAL');
  if (advice === 'MADV_MERGEABLE' && !vmaKsmCompatible(vma)) return null; // ksm_madvise: silently left alone
  const same = (Object.keys(change) as (keyof VmaFlags)[]).every((k) => vma.flags[k] === change[k]);
  if (same) return null;
  const splitLow = start > vma.start;
  const splitHigh = end < vma.end;
  if ((splitLow && !vmaMaySplit(vma, start)) || (splitHigh && !vmaMaySplit(vma, end))) return err('EINVAL');
  const max = opts.maxMapCount ?? DEFAULT_MAX_MAP_COUNT;
  if ((splitLow && mm.vmas.size >= max) || (splitHigh && mm.vmas.size + (splitLow ? 1 : 0) >= max)) return err('ENOMEM');
  if (advice === 'MADV_UNMERGEABLE' && engine.rmap.anon.of(vma)) {
    const r = ksmUnmerge(engine, mm, start, end);
    if (!r.ok) return r;
  }
  const [target] = isolateRange(engine, mm, start, end)!;
  Object.assign(target.flags, change);
  vmaMergeAround(engine, mm, target);
  return null;
}

/**
 * MADV_FREE on [start, end) of an anonymous VMA (§7.3 per-entry table; madvise_free_pte_range and
 * madvise_free_huge_pmd), all leaves read once and every change written in one call:
 * - SWAP: cleared, its swap count −1; HWP, MK-PSN: cleared; other non-present entries, ZP and special entries:
 *   untouched;
 * - P / PL / PN of a folio whose pages are all mapped by PTEs inside the range: if the folio is dirty it must be
 *   mapped only here (mapcount == those PTEs), else it is skipped; then folio dirty cleared, the PTEs made old
 *   and clean, the folio lazyfree (swapbacked cleared; not for an mlocked folio);
 * - PTEs of a large anon folio not wholly in the range, and a PMD the range covers only in part (also one
 *   straddling `start`): if the folio may be mapped by another process (folio_maybe_mapped_shared: rmap finds a
 *   mapping in another mm) it is skipped; else it is split to order 0 (§6.2, split-folio.ts) and the range's
 *   leaves are read again, so its pages are revisited as small folios (zero-content pages are ZP by then,
 *   §12.2); a failed split leaves it skipped;
 * - PMD / PN at PMD level wholly in the range: skipped when the folio may be mapped elsewhere (mapcount > 1);
 *   else folio dirty cleared, PMD old and clean, folio lazyfree. HZP, PMD migration and device-private PMDs:
 *   untouched.
 * Content tags do not change (§12.2): a later reclaim decides whether the pages are discarded.
 */
export function madviseFree(engine: Engine, mm: Mm, vma: Vma, start: number, end: number): void {
  const writes: Leaf[] = [];
  const swapSlots: number[] = [];
  const lazy: FolioInfo[] = [];
  const ptes = new Map<FolioId, LeafView[]>();
  const clean = (l: LeafView) => {
    const p = l.entry.present!;
    if (p.young || p.dirty || p.savedDirty) writes.push({ va: l.va, level: l.level, raw: presentRaw(l.level, l.entry.number!, { ...p, young: false, dirty: false, savedDirty: false }) });
  };
  let leaves = leavesIn(engine, mm, start, end);
  if (splitPartlyCovered(engine, mm, start, end, leaves)) leaves = leavesIn(engine, mm, start, end);
  for (const l of leaves) {
    if (l.kind === 'SWAP' || l.kind === 'HWP' || l.kind === 'MK-PSN') {
      writes.push({ va: l.va, level: l.level, raw: NONE_RAW });
      if (l.kind === 'SWAP' && l.entry.swap?.type === 0) swapSlots.push(l.entry.swap.offset);
    } else if ((l.kind === 'P' || l.kind === 'PL' || l.kind === 'PN') && l.level === 'pte' && l.folio) {
      const list = ptes.get(l.folio.id);
      if (list) list.push(l);
      else ptes.set(l.folio.id, [l]);
    } else if ((l.kind === 'PMD' || l.kind === 'PN') && l.level === 'pmd' && l.folio) {
      if (l.va + PMD_SIZE > end || l.folio.mapcount > 1) continue;
      clean(l);
      lazy.push(l.folio);
    }
  }
  for (const list of ptes.values()) {
    const f = list[0].folio!;
    if (list.length < f.nrPages) continue; // part of a large folio
    if (f.flags.dirty && f.mapcount !== list.length) continue; // dirty and mapped elsewhere too
    for (const l of list) clean(l);
    lazy.push(f);
  }
  writeLeaves(engine, mm, writes);
  const swap = opsState(engine).swap;
  for (const offset of swapSlots) if (swap.has(offset)) swap.put(offset);
  for (const f of lazy) {
    engine.folios.setFlags(f.id, f.anon && !f.flags.mlocked ? { dirty: false, swapbacked: false } : { dirty: false });
  }
}

/**
 * §7.3 partial rows (madvise_free_pte_range / madvise_free_huge_pmd): split every large anon folio the range
 * covers only in part — PTE-mapped with fewer of its pages in the range than it has, or PMD-mapped with the
 * range covering part of the 2 MiB (including a PMD straddling `start`, which `leaves` does not list) — unless
 * another process may map it. Returns whether any folio was split (the caller reads the leaves again).
 */
function splitPartlyCovered(engine: Engine, mm: Mm, start: number, end: number, leaves: LeafView[]): boolean {
  const partial = new Map<FolioId, FolioInfo>();
  const inRange = new Map<FolioId, number>();
  const large = (l: LeafView) => l.folio !== undefined && l.folio.anon && l.folio.order > 0;
  const block = start - (start % PMD_SIZE);
  const straddling = block < start ? leavesIn(engine, mm, block, block + PAGE_SIZE).find((l) => l.level === 'pmd' && l.va === block) : undefined;
  for (const l of straddling ? [straddling, ...leaves] : leaves) {
    if (!large(l) || (l.kind !== 'PL' && l.kind !== 'PMD' && l.kind !== 'PN')) continue;
    if (l.level === 'pmd') {
      if (l.va < start || l.va + PMD_SIZE > end) partial.set(l.folio!.id, l.folio!);
    } else inRange.set(l.folio!.id, (inRange.get(l.folio!.id) ?? 0) + 1);
  }
  for (const l of leaves) if (l.level === 'pte' && large(l) && inRange.get(l.folio!.id)! < l.folio!.nrPages) partial.set(l.folio!.id, l.folio!);
  let split = false;
  for (const f of partial.values()) {
    if (mappedByOtherMm(engine, f, mm)) continue;
    if (splitFolio(engine, f.id, 0).ok) split = true;
  }
  return split;
}

/** folio_maybe_mapped_shared: does rmap find a mapping of the folio in an mm other than `mm`? */
function mappedByOtherMm(engine: Engine, f: FolioInfo, mm: Mm): boolean {
  let other = false;
  rmapWalk(engine, [f.id], {
    interface: opsState(engine).policy.walkInterface,
    rmapOne(c, matches) {
      if (c.mm !== mm && matches.length > 0) other = true;
      return !other;
    },
  });
  return other;
}
