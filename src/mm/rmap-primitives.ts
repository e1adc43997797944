import type { Engine } from '../model/engine.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import type { LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { linearPageIndex, type Vma } from '../model/vma.js';
import type { PfnSoftleafKind } from '../model/entry.js';
import { opsState } from './state.js';

/**
 * The primitive state changes of kernel-operations.md §0.4, defined once. Mapcounts themselves follow the
 * entries (writeLeaves keeps them); these set what goes with them: folio->mapping and ->index, AnonExclusive,
 * and the decisions try-dup, try-share and mig-entry make.
 */

/**
 * new-anon-rmap (§0.4): the folio joins the VMA's anon_vma (exclusive) or its root (not exclusive); index :=
 * linear page index of `addr` (the folio's first page); AnonExclusive on every page (PMD-mapped: the head
 * is what counts, pvmw sets every page) if exclusive; swapbacked. The VMA must have an anon_vma (prepare).
 */
export function newAnonRmap(engine: Engine, folio: FolioId, vma: Vma, addr: number, exclusive: boolean): void {
  const av = engine.rmap.anon.prepare(vma);
  const f = engine.folio(folio);
  engine.folios.setMapping(folio, (exclusive ? av : av.root).id, linearPageIndex(vma, addr));
  engine.folios.setAnonExclusive(folio, 0, f.nrPages, exclusive);
  engine.folios.setFlags(folio, { swapbacked: true, dirty: true });
}

/** folio_move_anon_rmap (§5.6 reuse): an exclusively owned folio moves to this VMA's anon_vma. */
export function folioMoveAnonRmap(engine: Engine, folio: FolioId, vma: Vma): void {
  const av = engine.rmap.anon.prepare(vma);
  engine.folios.setMapping(folio, av.id, engine.folio(folio).index);
}

/** "Maybe DMA-pinned" as fork and KSM see it (§0.4 try-dup: only if the mm has ever pinned). */
export function maybePinned(engine: Engine, folio: FolioId, mm?: Mm): boolean {
  const s = opsState(engine);
  if (mm && !s.everPinned.has(mm.id)) return false;
  return s.pinned(folio);
}

/**
 * try-dup (§0.4, fork): fails (returns false) if the folio may be pinned, the source mm has ever pinned, and a
 * page is AnonExclusive; else clears AnonExclusive on those pages (the mapcount comes with the child's entry).
 * Device-private folios never fail.
 */
export function tryDupAnon(engine: Engine, f: FolioInfo, page: number, count: number, src: Mm): boolean {
  if (dupWouldFail(engine, f, page, count, src)) return false;
  engine.folios.setAnonExclusive(f.id, page, count, false);
  return true;
}

/** Would try-dup fail (fork's planning asks before changing anything)? */
export function dupWouldFail(engine: Engine, f: FolioInfo, page: number, count: number, src: Mm): boolean {
  if (!f.anon || f.devicePrivate || !maybePinned(engine, f.id, src)) return false;
  for (let i = 0; i < count; i++) if (engine.folios.anonExclusive(f.id, page + i)) return true;
  return false;
}

/** try-share (§0.4, before a mapping becomes a migration or KSM entry): fails if maybe pinned (not device). */
export function tryShareAnon(engine: Engine, f: FolioInfo, page: number, count: number): boolean {
  if (!f.devicePrivate && opsState(engine).pinned(f.id)) return false;
  engine.folios.setAnonExclusive(f.id, page, count, false);
  return true;
}

/**
 * mig-entry (§0.4): the migration entry kind for an old mapping. `writable`: present W or DP-W. Device
 * folios take the series' device-private migration kinds when the engine has them.
 */
export function migEntryKind(engine: Engine, f: FolioInfo, page: number, writable: boolean): PfnSoftleafKind {
  const dpTypes = f.devicePrivate && engine.softleaf.typeOf['migration-device-private-read'] !== undefined;
  const pre = dpTypes ? 'migration-device-private-' : 'migration-';
  if (writable) return `${pre}write` as PfnSoftleafKind;
  const exclusive = f.anon && engine.folios.anonExclusive(f.id, page);
  return (exclusive ? `${pre}read-exclusive` : `${pre}read`) as PfnSoftleafKind;
}

/** Pages a leaf of this level maps. */
export function levelPages(level: LeafLevel): number {
  return level === 'pte' ? 1 : level === 'pmd' ? 512 : 512 * 512;
}
