import type { Engine } from '../model/engine.js';
import { PMD_SIZE, PUD_SIZE, type LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { linearPageIndex, type Vma } from '../model/vma.js';
import type { FaultOutcome } from './errno.js';
import { NONE_RAW, putFolio, viewLeaf, writeLeaves, type LeafView } from './leaf.js';
import { folioMoveAnonRmap, newAnonRmap } from './rmap-primitives.js';
import { opsState } from './state.js';
import { allocFolio, copyTags, faultEntry, installLeaves } from './wp-fault.js';

/**
 * hugetlb_fault: faults in a hugetlb VMA, at its own level (PMD for 2 MiB, PUD for 1 GiB). The spec's fault
 * tables (kernel-operations.md §5) have no hugetlb rows; pvmw follows the same shapes as the small-page paths,
 * with the folios §1.6 names (anon hugetlb folios in private mappings, hugetlbfs page-cache folios in shared
 * ones):
 * - NONE, shared: the page-cache folio of the file at the huge page's index (read in with the file's tags if not
 *   cached), mapped with vm_page_prot (writable in a writable shared mapping), dirty on a write — §5.7's shape;
 * - NONE, private anonymous: a new zeroed anon hugetlb folio, new-anon-rmap exclusive (§0.4), writable only on a
 *   write fault (a read maps it read-only, and a later write reuses it) — hugetlb_no_page then hugetlb_wp;
 * - NONE, private file: a read maps the page-cache folio read-only; a write copies it into an anon hugetlb folio;
 * - write on a read-only present leaf (hugetlb_wp, §5.6's shape): shared → writable; an AnonExclusive or
 *   singly mapped, unpinned anon folio is reused (its anon rmap moved to this VMA); otherwise the whole huge page
 *   is copied (tags copied) into a new exclusive anon folio and the old mapping goes;
 * - migration entries: wait (retry); hwpoison and poison markers: SIGBUS; guard markers: SIGSEGV; an uffd-wp
 *   marker (no registration is modelled) counts as none; a present leaf that allows the access: accessed.
 * No free huge page: OOM (nothing changed).
 */
export function hugetlbFault(engine: Engine, mm: Mm, vma: Vma, addr: number, write: boolean): FaultOutcome {
  const level: LeafLevel = vma.flags.hugetlb === '1G' ? 'pud' : 'pmd';
  const size = level === 'pud' ? PUD_SIZE : PMD_SIZE;
  const haddr = addr - (addr % size);
  const t = mm.translate(haddr);
  const raw = t.leaf.level === level ? t.leaf.raw : NONE_RAW;
  const v = viewLeaf(engine, { va: haddr, level, raw });
  switch (v.kind) {
    case 'NONE':
    case 'MK-UW':
      return hugetlbNoPage(engine, mm, vma, v, write);
    case 'MIG-R': case 'MIG-RX': case 'MIG-W':
      return 'retry';
    case 'HWP': case 'MK-PSN':
      return 'SIGBUS';
    case 'MK-GRD':
      return 'SIGSEGV';
    case 'HT': {
      const p = v.entry.present!;
      if (write && !p.write) return hugetlbWp(engine, mm, vma, v);
      if (p.young && (!write || p.dirty)) return 'ok';
      writeLeaves(engine, mm, [{ va: haddr, level, raw: faultEntry(vma, level, v.entry.number!, { ...p, young: true, ...(write ? { dirty: true } : {}) }) }]);
      return 'ok';
    }
    default:
      return 'SIGBUS';
  }
}

function hugetlbNoPage(engine: Engine, mm: Mm, vma: Vma, v: LeafView, write: boolean): FaultOutcome {
  const size = vma.flags.hugetlb!;
  const index = linearPageIndex(vma, v.va);
  if (vma.anon) {
    const id = allocFolio(engine, { hugetlb: size, anonVma: 0, index });
    if (id === null) return 'OOM';
    const raw = faultEntry(vma, v.level, engine.folio(id).number, write ? { write: true, dirty: true } : {});
    if (!installLeaves(engine, mm, [{ va: v.va, level: v.level, raw }])) {
      opsState(engine).alloc.free(id);
      return 'OOM';
    }
    newAnonRmap(engine, id, vma, v.va, true);
    return 'ok';
  }
  const cache = opsState(engine).pageCache;
  let id = cache.lookup(vma.file!, index);
  if (id === undefined) {
    const made = allocFolio(engine, { hugetlb: size, file: vma.file!, index });
    if (made === null) return 'OOM';
    const nr = engine.folio(made).nrPages;
    for (let i = 0; i < nr; i++) {
      const tag = cache.fileTag(vma.file!, index + i);
      if (tag !== 0) engine.folios.setTag(made, i, 1, tag);
    }
    cache.insert(vma.file!, index, nr, made);
    id = made;
  }
  if (!vma.flags.shared && write) {
    return hugetlbCopy(engine, mm, vma, { ...v, folio: engine.folio(id), page: 0 }, false);
  }
  const raw = faultEntry(vma, v.level, engine.folio(id).number, write ? { dirty: true } : {});
  if (!installLeaves(engine, mm, [{ va: v.va, level: v.level, raw }])) return 'OOM';
  if (write) engine.folios.setFlags(id, { dirty: true });
  return 'ok';
}

function hugetlbWp(engine: Engine, mm: Mm, vma: Vma, v: LeafView): FaultOutcome {
  const f = v.folio!;
  const p = v.entry.present!;
  const reuse = vma.flags.shared ||
    (f.anon && (engine.folios.anonExclusive(f.id, 0) || (f.mapcount === 1 && !opsState(engine).pinned(f.id))));
  if (reuse) {
    if (f.anon && !vma.flags.shared) {
      folioMoveAnonRmap(engine, f.id, vma);
      engine.folios.setAnonExclusive(f.id, 0, f.nrPages, true);
    }
    writeLeaves(engine, mm, [{ va: v.va, level: v.level, raw: faultEntry(vma, v.level, f.number, { ...p, write: true, dirty: true, young: true }) }]);
    return 'ok';
  }
  return hugetlbCopy(engine, mm, vma, v, true);
}

/** Copy the huge page `v` names into a new exclusive anon hugetlb folio mapped writable in its place. */
function hugetlbCopy(engine: Engine, mm: Mm, vma: Vma, v: LeafView, mapped: boolean): FaultOutcome {
  const src = v.folio!;
  const id = allocFolio(engine, { hugetlb: vma.flags.hugetlb!, anonVma: 0, index: linearPageIndex(vma, v.va) });
  if (id === null) return 'OOM';
  copyTags(engine, src, id);
  const raw = faultEntry(vma, v.level, engine.folio(id).number, { write: true, dirty: true });
  if (!installLeaves(engine, mm, [{ va: v.va, level: v.level, raw }])) {
    opsState(engine).alloc.free(id);
    return 'OOM';
  }
  newAnonRmap(engine, id, vma, v.va, true);
  if (mapped) putFolio(engine, src.id);
  return 'ok';
}
