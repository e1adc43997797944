import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { decodeEntry } from '../model/decode.js';
import type { FolioId } from '../model/folio.js';
import type { LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import { EFAULT, vmaAddress, type Vma } from '../model/vma.js';
import { rmapWalk } from '../rmap/rmap-walk.js';
import { pageVmaMappedWalk, walkBatch, type WalkRequest } from '../walk/pvmw.js';
import { PVMW_SYNC, type WalkMatch } from '../walk/types.js';
import { presentRaw, writeLeaves } from './leaf.js';
import { opsState } from './state.js';

/**
 * Write-protect-and-clean for writeback (spec §5 rows page_mkclean_one / folio_mkclean,
 * mapping_wrprotect_range_one, pfn_mkclean_range; D2: raw pfn ranges use the pfn-keyed walk). Every one of them
 * walks with PVMW_SYNC and applies page_vma_mkclean_one to each match; only VM_SHARED VMAs take part
 * (invalid_mkclean_vma): a private mapping's writes never reach the file. Changes are written with one
 * writeLeaves per mm. MMU notifiers and TLB flushes have no state to change here.
 */

/** invalid_mkclean_vma: skip every VMA that is not VM_SHARED. */
function invalidMkcleanVma(vma: Vma): boolean {
  return !vma.flags.shared;
}

/**
 * page_vma_mkclean_one's action for one match: a present PTE/PMD (or hugetlb leaf) that is dirty (D or
 * SAVED_DIRTY) or writable becomes write-protected and clean; returns the new leaf, or null when nothing is to
 * be done (already clean and read-only, or a PFN swap entry such as device-exclusive, which the CPU sees as
 * clean and not writable).
 */
export function mkcleanLeaf(engine: Engine, m: Pick<WalkMatch, 'address' | 'level' | 'raw'>): Leaf | null {
  const e = decodeEntry(m.raw, m.level, engine.decodeContext);
  const p = e.present;
  if (e.kind !== 'present' || !p || e.number === null) return null;
  if (!p.dirty && !p.savedDirty && !p.write) return null;
  return { va: m.address, level: m.level, raw: presentRaw(m.level, e.number, { ...p, write: false, dirty: false, savedDirty: false }) };
}

/**
 * folio_mkclean (spec §5 page_mkclean_one): for a mapped page-cache folio, clean and write-protect every
 * mapping in a shared VMA, through the engine's walk interface. An anon folio has no folio_mapping (pvmw has
 * no swap cache) and an unmapped folio nothing to clean: both give 0. Returns the number of entries cleaned.
 */
export function folioMkclean(engine: Engine, folio: FolioId): number {
  const f = engine.folio(folio);
  if (f.mapcount === 0 || f.anon) return 0;
  const writes = new Map<Mm, Leaf[]>();
  let cleaned = 0;
  rmapWalk(engine, [folio], {
    flags: PVMW_SYNC,
    interface: opsState(engine).policy.walkInterface,
    invalidVma: invalidMkcleanVma,
    rmapOne(c, matches) {
      const out = writes.get(c.mm) ?? [];
      for (const m of matches) {
        const leaf = mkcleanLeaf(engine, m);
        if (!leaf) continue;
        out.push(leaf);
        cleaned++;
      }
      writes.set(c.mm, out);
      return true;
    },
  });
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
  return cleaned;
}

/**
 * pfn_mkclean_range (spec §5; fs/dax.c): clean the mappings of the raw pfn range [pfn, pfn + nrPages) at page
 * offset pgoff in one VMA, with a pfn-keyed PVMW_SYNC walk from vma_address(vma, pgoff, nrPages). A VMA that is
 * not VM_SHARED gives 0. A range outside the VMA is a PvmwError (the kernel's VM_BUG_ON: callers never pass
 * one). Returns the number of entries cleaned.
 */
export function pfnMkcleanRange(engine: Engine, mm: Mm, vma: Vma, pfn: number, nrPages: number, pgoff: number): number {
  if (invalidMkcleanVma(vma)) return 0;
  const address = vmaAddress(vma, pgoff, nrPages);
  if (address === EFAULT) {
    throw new PvmwError('BAD_RANGE', `pfn_mkclean_range: page offsets [${hex(pgoff)}, ${hex(pgoff + nrPages)}) are not in VMA ${hex(vma.start)}-${hex(vma.end)} (pgoff ${hex(vma.pgoff)})`);
  }
  const key = { kind: 'pfn' as const, number: pfn, nrPages, pgoff, flags: PVMW_SYNC };
  const leaves: Leaf[] = [];
  for (const m of pageVmaMappedWalk(engine, { mm, vma, key, address }).matches) {
    const leaf = mkcleanLeaf(engine, m);
    if (leaf) leaves.push(leaf);
  }
  writeLeaves(engine, mm, leaves);
  return leaves.length;
}

const LEVELS: readonly LeafLevel[] = ['pte', 'pmd', 'pud'];

/**
 * mapping_wrprotect_range (spec §5 mapping_wrprotect_range_one; fbdev deferred I/O): an rmap walk of a file's
 * i_mmap over page offsets [pgoff, pgoff + nrPages) with no folio (__rmap_walk_file with folio = NULL), each
 * shared VMA walked pfn-keyed for the raw range [pfn, pfn + nrPages) with PVMW_SYNC, all walks in one batch.
 * Returns the number of entries cleaned.
 */
export function mappingWrprotectRange(engine: Engine, file: number, pgoff: number, nrPages: number, pfn: number): number {
  const key = { kind: 'pfn' as const, number: pfn, nrPages, pgoff, flags: PVMW_SYNC };
  const requests: WalkRequest[] = [];
  for (const vma of engine.rmap.iMmap.query(file, pgoff, pgoff + nrPages - 1)) {
    const address = vmaAddress(vma, pgoff, nrPages);
    if (address === EFAULT || invalidMkcleanVma(vma)) continue;
    requests.push({ mm: engine.mm(vma.mm), vma, key, address });
  }
  if (requests.length === 0) return 0;
  const r = walkBatch(engine, requests);
  const writes = new Map<Mm, Leaf[]>();
  for (let i = 0; i < r.matches; i++) {
    const m = { address: r.address[i], level: LEVELS[r.level[i]], raw: { lo: r.entryLo[i], hi: r.entryHi[i] } };
    const leaf = mkcleanLeaf(engine, m);
    if (!leaf) continue;
    const mm = requests[r.job[i]].mm;
    const out = writes.get(mm) ?? [];
    out.push(leaf);
    writes.set(mm, out);
  }
  let cleaned = 0;
  for (const [mm, leaves] of writes) {
    writeLeaves(engine, mm, leaves);
    cleaned += leaves.length;
  }
  return cleaned;
}
