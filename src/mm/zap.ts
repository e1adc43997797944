import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { RawEntry } from '../model/entry.js';
import { FOLIO_FLAG, type FolioId } from '../model/folio.js';
import { PAGE_SIZE, PMD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { LeafList } from '../model/pte-batch.js';
import type { Vma } from '../model/vma.js';
import { splitHugePmd } from './huge-pmd.js';
import { NONE_RAW, putFolio, softleafRaw, visitLeaves, writeLeaves, type LeafView } from './leaf.js';
import { opsState } from './state.js';

/**
 * zap_page_range (kernel-operations.md §2.4 per PTE kind, §2.5 per PMD kind): the unrestricted zap of munmap,
 * exit and MADV_DONTNEED. A huge PMD only partly inside the range is split first (§2.5, non-freeze §6.1); then
 * every leaf of the range is read once, the changes are written with one writeLeaves call (mapcounts follow
 * the entries: remove-rmap), and afterwards:
 * - swap counts −1 for every SWAP entry cleared (swap_free; slots pvmw's swap space does not hold are left);
 * - a file folio whose PTE was dirty is marked dirty (§2.4 "P / PL file");
 * - every folio whose mapping went gets its reference dropped (putFolio: freed when nothing maps, pins, locks
 *   or caches it). Migration entries hold no reference: their folio is left alone.
 * Markers: MK-UW is always cleared in an anon VMA and kept in a file VMA, MK-GRD kept, unless `dropMarkers`
 * (munmap, exit). A present PTE with the uffd-wp bit zapped in a file VMA leaves a MK-UW marker unless markers
 * are dropped (§2.4 note). hugetlb leaves (HT, at PMD or PUD) are mappings like PMD.
 * Not modelled: rss counters, the deferred-split queue of partially unmapped large folios (§6.3), the
 * accessed flag of file folios (young), PT_RECLAIM of empty tables (munmap frees them; MADV_DONTNEED keeps them).
 */
export interface ZapDetails {
  /** ZAP_FLAG_DROP_MARKER: munmap and exit drop markers; MADV_DONTNEED keeps them. */
  dropMarkers: boolean;
}

export interface ZapResult {
  /** Leaves cleared (or replaced by a uffd-wp marker). */
  zapped: number;
  /** Markers left in place. */
  kept: number;
  /** Folios freed because their last mapping went. */
  freed: FolioId[];
}

type ZapAction = 'keep' | 'clear' | 'unmap';

/** What §2.4/§2.5 do with one leaf: keep it, clear it, or clear a mapping (and drop its reference). */
function zapAction(vma: Vma, l: LeafView, d: ZapDetails): ZapAction {
  switch (l.kind) {
    case 'P': case 'PL': case 'PN': case 'PMD': case 'HT': case 'DP-R': case 'DP-W': case 'DX':
      return 'unmap';
    case 'MK-UW':
      return vma.anon || d.dropMarkers ? 'clear' : 'keep';
    case 'MK-GRD':
      return d.dropMarkers ? 'clear' : 'keep';
    default: // ZP, HZP, special, MIG-*, SWAP, HWP, MK-PSN: cleared, no reference held
      return 'clear';
  }
}

/**
 * Split the huge PMDs that [start, end) covers only in part (§2.5 first line). hugetlb VMAs have none: their
 * callers only ever zap whole huge pages.
 */
function splitPartialPmds(engine: Engine, mm: Mm, vma: Vma, start: number, end: number): void {
  if (vma.flags.hugetlb !== null) return;
  for (const a of [start, end]) {
    if (a % PMD_SIZE === 0) continue;
    const block = a - (a % PMD_SIZE);
    if (block < vma.start || block + PMD_SIZE > vma.end) continue;
    const leaf = mm.entryAt(block);
    if (leaf.level === 'pmd' && leaf.entry.kind !== 'none' && leaf.entry.kind !== 'table') splitHugePmd(engine, mm, vma, block);
  }
}

/** Zap [start, end) of `vma` (page aligned, inside the VMA) per §2.4/§2.5. */
export function zapPageRange(engine: Engine, mm: Mm, vma: Vma, start: number, end: number, details: ZapDetails): ZapResult {
  if (start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0 || start < vma.start || end > vma.end || start > end) {
    throw new PvmwError('BAD_RANGE', `cannot zap [${hex(start)}, ${hex(end)}) of VMA ${hex(vma.start)}-${hex(vma.end)}`);
  }
  const res: ZapResult = { zapped: 0, kept: 0, freed: [] };
  if (start === end) return res;
  splitPartialPmds(engine, mm, vma, start, end);
  const writes = new LeafList();
  // Folios whose mapping went, in first-unmapped order. A folio met again later (not next to itself) is listed
  // again: putFolio of it then finds it freed, or as the first put left it (a put changes no other folio).
  const unmapped: FolioId[] = [];
  const dirtied = new Set<FolioId>();
  const swapSlots: number[] = [];
  let uffdWpMarker: RawEntry | undefined;
  visitLeaves(engine, mm, start, end, (l) => {
    const action = zapAction(vma, l, details);
    if (action === 'keep') {
      res.kept++;
      return;
    }
    let raw = NONE_RAW;
    if (action === 'unmap' && l.folioId >= 0) {
      if (unmapped[unmapped.length - 1] !== l.folioId) unmapped.push(l.folioId);
      if ((l.folioFlags & FOLIO_FLAG.anon) === 0 && l.level === 'pte' && l.entry.present) {
        const p = l.entry.present;
        if (p.dirty || p.savedDirty) dirtied.add(l.folioId);
        if (p.uffdWp && !details.dropMarkers) raw = uffdWpMarker ??= softleafRaw(engine, { kind: 'marker', uffdWp: true });
      }
    } else if (l.kind === 'SWAP' && l.entry.swap && l.entry.swap.type === 0) {
      swapSlots.push(l.entry.swap.offset);
    }
    writes.push(l.va, l.level, raw.lo, raw.hi);
    res.zapped++;
  }, false);
  writeLeaves(engine, mm, writes);
  const s = opsState(engine);
  for (const id of dirtied) engine.folios.setFlags(id, { dirty: true });
  for (const offset of swapSlots) if (s.swap.has(offset)) s.swap.put(offset);
  for (const id of unmapped) if (putFolio(engine, id)) res.freed.push(id);
  return res;
}
