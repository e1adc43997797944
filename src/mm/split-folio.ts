import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import { err, ok, type SysResult } from './errno.js';
import { folioAge } from './folio-age.js';
import { peekZeroPages, putFolio } from './leaf.js';
import { removeMigrationPtes, removeMigrationPtesBatch, tryToMigrate } from './migrate-folio.js';
import { opsState } from './state.js';
import { tryToUnmap, TTU_IGNORE_MLOCK, TTU_SPLIT_HUGE_PMD, TTU_SYNC } from './try-to-unmap.js';

/**
 * split_huge_page / split_folio → __folio_split (kernel-operations.md §6.2), the uniform split of one large
 * folio into folios of `newOrder` (default 0). The non-uniform (buddy-style) split of folio_split is not
 * modelled.
 *
 * Preconditions (§6.2 table), checked in the kernel's order before anything changes:
 * - EINVAL: newOrder ≥ order; an anon folio to order 1; hugetlb folios; the (huge) zero page; device-private
 *   folios (their driver split callback, §11.5, is not modelled: refused instead);
 * - EBUSY: the folio is locked by someone else; an anon folio no longer mapped (its anon_vma is gone, or names
 *   no live anon_vma); a file folio no longer in its file's page cache (truncated);
 * - EAGAIN: extra references — GUP pins (opsState.pins) — checked before unmapping.
 * Rows without a pvmw counterpart: writeback, swap cache, private data, mappings without large folio support.
 *
 * Steps: lock; unmap (step 3) — anon: try_to_migrate with split-PMD (a PMD mapping is split with freeze into
 * 512 PTE migration entries, §6.1; each PTE mapping becomes mig-entry(old)), file: try_to_unmap with split-PMD
 * and mlock ignored (mappings just go; they refault); something still mapped → EAGAIN after remapping; split the
 * memmap folio (Folios.split: mapping, index + offset, folio flags, per-page AnonExclusive / hwpoison and tags
 * kept; PG_idle / PG_young copied); page-cache slots repointed to the new folios (file); remap (step 6): one
 * batched remove_migration_ptes, each new folio keyed on its own pfns, with the zero-page rule of a successful
 * anon split (an order-0 piece whose tag is ZERO, mapped by a migration entry, becomes ZP, §12.2); unlock; the
 * anon pieces left unmapped (ZP pages, pages never mapped) are freed — the split's final folio_put.
 * On a failure after unmapping (the memory ceiling, a pin that stopped try_to_migrate) the original folio is
 * remapped, as PTEs: a PMD that was frozen does not come back as a PMD.
 *
 * Returns the number of folios the split made.
 */
export function splitFolio(engine: Engine, folio: FolioId, newOrder = 0): SysResult {
  if (!Number.isInteger(newOrder) || newOrder < 0) throw new PvmwError('BAD_ORDER', `split order must be a whole number from 0, got ${JSON.stringify(newOrder)}`);
  const f = engine.folio(folio);
  const refusal = splitRefusal(engine, f, newOrder);
  if (refusal) return err(refusal);
  const s = opsState(engine);
  const iface = s.policy.walkInterface;
  engine.folios.setFlags(folio, { locked: true });
  // Step 3: unmap every mapping through rmap.
  let unmapped: boolean;
  if (f.anon) unmapped = tryToMigrate(engine, engine.folio(folio), iface, true);
  else unmapped = tryToUnmap(engine, folio, { flags: TTU_SPLIT_HUGE_PMD | TTU_SYNC | TTU_IGNORE_MLOCK });
  unmapped &&= engine.folios.mapcount(folio) === 0;
  // Step 4/5: "freeze" and split.
  let pieces: FolioId[] | null = null;
  if (unmapped) {
    try {
      pieces = engine.folios.split(folio, newOrder);
    } catch (e) {
      if (!(e instanceof PvmwError) || e.code !== 'MEMORY_LIMIT') throw e;
    }
  }
  if (!pieces) {
    // Step 6 on failure: the original folio comes back (anon: its migration entries, now all PTEs).
    const orig = engine.folio(folio);
    if (orig.anon) removeMigrationPtes(engine, orig, orig, iface);
    engine.folios.setFlags(folio, { locked: false });
    return err(unmapped ? 'ENOMEM' : 'EAGAIN');
  }
  const infos = pieces.map((id) => engine.folio(id));
  const age = folioAge(engine);
  for (const p of infos.slice(1)) {
    age.setIdle(p.id, age.isIdle(folio));
    age.setYoung(p.id, age.isYoung(folio));
  }
  if (!f.anon && f.file !== null) for (const p of infos) s.pageCache.insert(f.file, p.index, p.nrPages, p.id);
  if (f.anon) removeMigrationPtesBatch(engine, infos.map((p) => ({ src: p, dst: p })), iface, !f.devicePrivate);
  for (const p of infos) {
    engine.folios.setFlags(p.id, { locked: false });
    if (p.anon) putFolio(engine, p.id);
  }
  return ok(pieces.length);
}

/** The §6.2 precondition a folio fails for a split to `newOrder`, or null (nothing is changed by asking). */
function splitRefusal(engine: Engine, f: FolioInfo, newOrder: number): 'EINVAL' | 'EBUSY' | 'EAGAIN' | null {
  if (newOrder >= f.order || (f.anon && newOrder === 1)) return 'EINVAL';
  if (f.hugetlb || f.devicePrivate || peekZeroPages(engine)?.huge === f.id) return 'EINVAL';
  if (f.flags.locked) return 'EBUSY';
  if (f.anon && (f.mapcount === 0 || f.anonVma === null || !engine.rmap.anon.get(f.anonVma))) return 'EBUSY';
  if (!f.anon && (f.file === null || opsState(engine).pageCache.lookup(f.file, f.index) !== f.id)) return 'EBUSY';
  if (opsState(engine).pinned(f.id)) return 'EAGAIN';
  return null;
}
