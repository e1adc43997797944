import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { PresentBits } from '../model/entry.js';
import type { FolioId, FolioInfo, FolioSpec } from '../model/folio.js';
import { LEAF_LEVELS, PAGE_SIZE, PMD_ORDER, type LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import type { Vma } from '../model/vma.js';
import { rmapWalk } from '../rmap/rmap-walk.js';
import type { FaultOutcome } from './errno.js';
import { splitHugePmd } from './huge-pmd.js';
import { NONE_RAW, presentRaw, putFolio, viewLeaf, vmaPageProt, writeLeaves, type LeafView } from './leaf.js';
import { folioMoveAnonRmap, newAnonRmap } from './rmap-primitives.js';
import { opsState } from './state.js';

/**
 * Write faults on read-only present entries (kernel-operations.md §5.6: do_wp_page, wp_page_reuse,
 * wp_can_reuse_anon_folio, wp_page_copy, do_huge_pmd_wp_page), and the small pieces every fault handler
 * shares: the leaf at a faulting address, present entries built from vm_page_prot, folio allocation that
 * reports OOM instead of throwing, and installing entries (a table that cannot be allocated is OOM, §5.3
 * step 2). Not modelled: userfaultfd (a uffd-wp bit is cleared as in async mode, §5.6 step 1), unshare faults
 * (GUP read-only pins), page_mkwrite, the swap cache (no extra references make reuse fail, §13).
 */

/**
 * The leaf mapping `addr` as the fault path sees it: the PTE (level 'pte', possibly NONE) when a PTE table is
 * there, else the PMD slot (level 'pmd': NONE, a huge leaf or a PMD softleaf), or a PUD leaf (1 GiB hugetlb).
 */
export function faultLeafAt(engine: Engine, mm: Mm, addr: number): LeafView {
  const t = mm.translate(addr);
  const none = t.leaf.entry.kind === 'none';
  const level: LeafLevel = t.leaf.level === 'pte' ? 'pte' : t.leaf.level === 'pud' && !none ? 'pud' : 'pmd';
  const size = 2 ** LEAF_LEVELS[level];
  return viewLeaf(engine, { va: addr - (addr % size), level, raw: none ? NONE_RAW : t.leaf.raw });
}

/** Page of the leaf's folio that `addr` falls in. */
export function pageAt(v: LeafView, addr: number): number {
  return v.page + Math.floor((addr - v.va) / PAGE_SIZE);
}

/**
 * A present entry as a fault installs it: the VMA's vm_page_prot (user, nx, protnone, write only for shared
 * writable VMAs), accessed (x86 vm_page_prot carries A), and `extra` on top. `dirty` also sets soft-dirty, as
 * x86 pte_mkdirty does.
 */
export function faultEntry(vma: Vma, level: LeafLevel, pfn: number, extra: Partial<PresentBits> = {}): Leaf['raw'] {
  const bits: Partial<PresentBits> = { ...vmaPageProt(vma), young: true, ...extra };
  if (bits.dirty) bits.softDirty = true;
  return presentRaw(level, pfn, bits);
}

/** A new folio from the ops allocator; null when RAM (or the engine's memory ceiling) is exhausted: OOM. */
export function allocFolio(engine: Engine, spec: Omit<FolioSpec, 'number' | 'namespace'>): FolioId | null {
  try {
    return opsState(engine).alloc.alloc(spec);
  } catch (e) {
    if (e instanceof PvmwError && e.code === 'MEMORY_LIMIT') return null;
    throw e;
  }
}

/** Write leaves; false (nothing changed) if a page table for them cannot be allocated (OOM). */
export function installLeaves(engine: Engine, mm: Mm, leaves: readonly Leaf[]): boolean {
  try {
    writeLeaves(engine, mm, leaves);
    return true;
  } catch (e) {
    if (e instanceof PvmwError && e.code === 'MEMORY_LIMIT') return false;
    throw e;
  }
}

/**
 * do_wp_page / do_huge_pmd_wp_page (§5.6): a write fault on the read-only present leaf `v` (P, PL, ZP, a
 * special entry, a PMD or HZP) that maps `addr` in `vma`.
 */
export function doWpPage(engine: Engine, mm: Mm, vma: Vma, addr: number, v: LeafView): FaultOutcome {
  return v.level === 'pte' ? wpPte(engine, mm, vma, addr, v) : doHugePmdWpPage(engine, mm, vma, addr, v);
}

/** wp_page_reuse (§5.6 step 2/3): the same page, now young + dirty + writable (uffd-wp cleared). */
function wpPageReuse(engine: Engine, mm: Mm, v: LeafView): FaultOutcome {
  const p = v.entry.present!;
  const raw = presentRaw(v.level, v.entry.number!, { ...p, write: true, dirty: true, softDirty: true, young: true, uffdWp: false });
  writeLeaves(engine, mm, [{ va: v.va, level: v.level, raw }]);
  if (v.folio && !v.folio.anon) engine.folios.setFlags(v.folio.id, { dirty: true });
  return 'ok';
}

/** §5.6 at the PTE level: shared → writable; reusable anon → writable; else copy. */
function wpPte(engine: Engine, mm: Mm, vma: Vma, addr: number, v: LeafView): FaultOutcome {
  if (vma.flags.shared && v.kind !== 'ZP') return wpPageReuse(engine, mm, v);
  const f = v.folio;
  if (v.kind !== 'ZP' && f && f.anon && !f.flags.ksm && !f.devicePrivate) {
    if (engine.folios.anonExclusive(f.id, v.page) || wpCanReuseAnonFolio(engine, mm, vma, f)) {
      engine.folios.setAnonExclusive(f.id, v.page, 1, true);
      return wpPageReuse(engine, mm, v);
    }
  }
  return wpPageCopy(engine, mm, vma, addr, v);
}

/**
 * wp_can_reuse_anon_folio (§5.6 step 3). Small folio: not KSM, only this mapping holds it (mapcount 1, no
 * pins: pvmw's refcount is mappings + pins), not locked → folio_move_anon_rmap to this VMA's anon_vma.
 * Large folio: mapped more than once, all of it in this mm, no pins (mapcount == refcount); the anon rmap is
 * not moved. A large folio mapped by a single PTE is not reused (copying lets it be freed).
 */
function wpCanReuseAnonFolio(engine: Engine, mm: Mm, vma: Vma, f: FolioInfo): boolean {
  const s = opsState(engine);
  if (f.flags.ksm || s.pinned(f.id)) return false;
  if (f.order === 0) {
    if (f.mapcount !== 1 || f.flags.locked) return false;
    folioMoveAnonRmap(engine, f.id, vma);
    return true;
  }
  if (f.mapcount <= 1) return false;
  let shared = false;
  rmapWalk(engine, [f.id], {
    interface: s.policy.walkInterface,
    rmapOne(c, matches) {
      if (matches.length > 0 && c.mm.id !== mm.id) shared = true;
      return !shared;
    },
  });
  return !shared;
}

/**
 * wp_page_copy (§5.6 step 4, §12.2 COW copy): a new order-0 anon folio whose tag is the faulting page's (ZERO
 * for the zero page), mapped young + dirty + writable with new-anon-rmap(exclusive); the old mapping is
 * replaced and the old folio freed if nothing holds it any more. A hwpoisoned source is SIGBUS.
 */
function wpPageCopy(engine: Engine, mm: Mm, vma: Vma, addr: number, v: LeafView): FaultOutcome {
  const page = addr - (addr % PAGE_SIZE);
  let tag = 0;
  if (v.kind !== 'ZP' && v.folio) {
    const src = engine.page(v.folio.namespace, v.folio.number + pageAt(v, addr))!;
    if (src.hwpoison) return 'SIGBUS';
    tag = src.tag;
  }
  const old = v.kind === 'P' || v.kind === 'PL' ? v.folio : undefined; // special entries hold no reference
  const id = allocFolio(engine, { order: 0 });
  if (id === null) return 'OOM';
  const raw = faultEntry(vma, 'pte', engine.folio(id).number, { write: vma.flags.write, dirty: true });
  if (!installLeaves(engine, mm, [{ va: page, level: 'pte', raw }])) {
    opsState(engine).alloc.free(id);
    return 'OOM';
  }
  newAnonRmap(engine, id, vma, page, true);
  if (tag !== 0) engine.folios.setTag(id, 0, 1, tag);
  if (old) putFolio(engine, old.id);
  return 'ok';
}

/**
 * do_huge_pmd_wp_page (§5.6 step 5): HZP → a fresh zeroed THP (on failure: split into ZP PTEs and copy 4 KiB);
 * head AnonExclusive → reuse; only this mapping holds the folio (mapcount 1, no pins, unlocked) → move the
 * anon rmap, AnonExclusive, reuse; otherwise split the PMD (§6.1) and handle the 4 KiB at the PTE level. A
 * file THP in a private VMA is split (cleared) and the access retries into do_cow_fault.
 */
export function doHugePmdWpPage(engine: Engine, mm: Mm, vma: Vma, addr: number, v: LeafView): FaultOutcome {
  if (vma.flags.shared && v.kind !== 'HZP') return wpPageReuse(engine, mm, v);
  const f = v.folio;
  if (v.kind === 'HZP') {
    const id = allocFolio(engine, { order: PMD_ORDER });
    if (id !== null) {
      const raw = faultEntry(vma, 'pmd', engine.folio(id).number, { write: vma.flags.write, dirty: true });
      if (installLeaves(engine, mm, [{ va: v.va, level: 'pmd', raw }])) {
        newAnonRmap(engine, id, vma, v.va, true);
        return 'ok';
      }
      opsState(engine).alloc.free(id);
    }
  } else if (f && f.anon && !f.flags.ksm) {
    if (engine.folios.anonExclusive(f.id, 0)) return wpPageReuse(engine, mm, v);
    if (!f.flags.locked && f.mapcount === 1 && !opsState(engine).pinned(f.id)) {
      folioMoveAnonRmap(engine, f.id, vma);
      engine.folios.setAnonExclusive(f.id, 0, f.nrPages, true);
      return wpPageReuse(engine, mm, v);
    }
  }
  if (v.level !== 'pmd') return 'SIGBUS'; // a 1 GiB leaf outside hugetlb does not exist
  splitHugePmd(engine, mm, vma, v.va);
  const after = faultLeafAt(engine, mm, addr);
  if (after.level !== 'pte' || after.kind === 'NONE') return 'ok'; // file PMD cleared: the access retries
  return wpPte(engine, mm, vma, addr, after);
}

/** Copy every page's content tag of `from` to the same page of the new folio `to` (§12.2), one call per run. */
export function copyTags(engine: Engine, from: FolioInfo, to: FolioId): void {
  let run = 0;
  let runTag = -1;
  for (let i = 0; i <= from.nrPages; i++) {
    const tag = i < from.nrPages ? engine.page(from.namespace, from.number + i)!.tag : -1;
    if (tag === runTag) continue;
    if (runTag > 0) engine.folios.setTag(to, run, i - run, runTag);
    run = i;
    runTag = tag;
  }
}
