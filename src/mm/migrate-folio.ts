import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SIZE } from '../model/geometry.js';
import type { PresentBits } from '../model/entry.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import { walkBatch, type WalkRequest } from '../walk/pvmw.js';
import { PVMW_MIGRATION, PVMW_SYNC } from '../walk/types.js';
import { folioWalkKey, rmapCandidates, rmapWalk, type RmapCandidate, type WalkInterface } from '../rmap/rmap-walk.js';
import { err, ok, type SysResult } from './errno.js';
import type { Vma } from '../model/vma.js';
import { splitHugePmd } from './huge-pmd.js';
import { leavesIn, presentRaw, softleafRaw, viewLeaf, vmaPageProt, writeLeaves, zeroPages } from './leaf.js';
import { migEntryKind, tryShareAnon } from './rmap-primitives.js';
import { opsState } from './state.js';

/**
 * Migrating one folio to a new pfn, the core of kernel-operations.md §9.2 for a single system-RAM folio in
 * SYNC mode (the rmap selftest's move_pages, spec §7.3): try_to_migrate turns every mapping into a migration
 * entry, the destination takes the source's mapping, index and tags, and remove_migration_ptes (§9.4) turns the
 * migration entries into mappings of the destination. Passes, retries, splitting and device memory belong to
 * the migration issue; a pinned folio fails with EAGAIN and is left mapped as before.
 */

/**
 * try_to_migrate (spec §5): mappings of `f` → migration entries (mig-entry, §0.4). False if a pinned exclusive
 * page stopped it. `splitPmd` (TTU_SPLIT_HUGE_PMD, the folio split of §6.2 step 3): a PMD mapping is split with
 * freeze (§6.1, huge-pmd.ts) into 512 PTE migration entries instead of becoming a PMD migration entry; a dirty
 * PMD first dirties the folio (§6.1 step 5). If the freeze could not happen (pinned exclusive head: a normal PTE
 * split), the walk stops there and false is returned.
 */
export function tryToMigrate(engine: Engine, f: FolioInfo, iface: WalkInterface, splitPmd = false): boolean {
  const writes = new Map<Mm, Leaf[]>();
  let aborted = false;
  rmapWalk(engine, [f.id], {
    interface: iface,
    rmapOne(c, matches) {
      const out = writes.get(c.mm) ?? [];
      writes.set(c.mm, out);
      for (const m of matches) {
        const v = viewLeaf(engine, { va: m.address, level: m.level, raw: m.raw });
        const bits = v.entry.present;
        if (!bits || !v.folio) continue; // not a present mapping (device entries: the migration issue)
        if (splitPmd && v.level !== 'pte') {
          splitHugePmd(engine, c.mm, c.vma, m.address, true);
          if (leavesIn(engine, c.mm, m.address, m.address + PAGE_SIZE)[0]?.entry.present) {
            aborted = true; // not frozen: the pinned head's PTE stays mapped
            return false;
          }
          continue;
        }
        const n = v.level === 'pte' ? 1 : v.folio.nrPages;
        const kind = migEntryKind(engine, f, v.page, bits.write);
        if (f.anon && !f.flags.ksm && !tryShareAnon(engine, f, v.page, n)) {
          aborted = true;
          return false;
        }
        const flags = { softDirty: bits.softDirty, uffdWp: bits.uffdWp };
        out.push({ va: m.address, level: m.level, raw: softleafRaw(engine, { kind, number: v.entry.number!, young: bits.young, dirty: bits.dirty, flags }) });
        if (bits.dirty) engine.folios.setFlags(f.id, { dirty: true });
      }
      return true;
    },
  });
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
  return !aborted;
}

/** What remove_migration_ptes restores: migration entries of `src`'s pfns become mappings of `dst`. */
export interface MigrationRestore {
  src: FolioInfo;
  dst: FolioInfo;
}

/**
 * remove_migration_ptes (§9.4): walk rmap of the destination (same mapping and index as the source) with the
 * walk keyed on the source's pfns and PVMW_SYNC | PVMW_MIGRATION; each migration entry becomes a mapping of the
 * destination's page at the same offset: VMA protection, writable iff MIG-W, young/dirty from the entry,
 * AnonExclusive unless MIG-R.
 */
export function removeMigrationPtes(engine: Engine, src: FolioInfo, dst: FolioInfo, iface: WalkInterface): number {
  return removeMigrationPtesBatch(engine, [{ src, dst }], iface);
}

/**
 * remove_migration_ptes for several (source, destination) pairs in one batched walk (their entries never
 * overlap): after a folio split (§6.2 step 6) each new folio is both source and destination of its own walk,
 * keyed on its own pfns, mapping and index. `mapUnusedToZeropage` (RMP_USE_SHARED_ZEROPAGE, §9.4 step 3, only a
 * successful anon split): a PTE migration entry of an order-0 anon page whose content tag is ZERO (§12.2), not
 * hwpoisoned, of a folio not mlocked in a VMA not VM_LOCKED, becomes a ZP PTE (special, VMA protection,
 * soft-dirty and uffd-wp from the entry) instead; the caller puts the page. Returns the matches restored.
 */
export function removeMigrationPtesBatch(engine: Engine, pairs: readonly MigrationRestore[], iface: WalkInterface, mapUnusedToZeropage = false): number {
  const cands: { c: RmapCandidate; pair: MigrationRestore }[] = [];
  const requests: WalkRequest[] = [];
  for (const pair of pairs) {
    const key = folioWalkKey(engine, pair.src, PVMW_SYNC | PVMW_MIGRATION, iface);
    for (const c of rmapCandidates(engine, pair.src.id)) {
      cands.push({ c, pair });
      requests.push({ mm: c.mm, vma: c.vma, key, address: c.address });
    }
  }
  if (requests.length === 0) return 0;
  const r = walkBatch(engine, requests);
  const writes = new Map<Mm, Leaf[]>();
  let zeroPfn = -1;
  for (let i = 0; i < r.matches; i++) {
    const { c, pair: { src, dst } } = cands[r.job[i]];
    const level = (['pte', 'pmd', 'pud'] as const)[r.level[i]];
    const v = viewLeaf(engine, { va: r.address[i], level, raw: { lo: r.entryLo[i], hi: r.entryHi[i] } });
    const e = v.entry;
    if (e.number === null) continue;
    const page = e.number - src.number;
    const list = writes.get(c.mm) ?? [];
    writes.set(c.mm, list);
    if (mapUnusedToZeropage && level === 'pte' && unusedZeroPage(engine, dst, c.vma, page)) {
      if (zeroPfn < 0) zeroPfn = zeroPages(engine).zeroPfn;
      list.push({ va: v.va, level, raw: presentRaw('pte', zeroPfn, { ...vmaPageProt(c.vma), special: true, softDirty: e.bits.softDirty, uffdWp: e.bits.uffdWp }) });
      continue;
    }
    const write = v.kind === 'MIG-W';
    const bits: Partial<PresentBits> = {
      ...vmaPageProt(c.vma),
      write: write && c.vma.flags.write,
      young: e.bits.young,
      dirty: e.bits.dirty && dst.flags.dirty,
      softDirty: e.bits.softDirty,
      uffdWp: !write && e.bits.uffdWp,
    };
    list.push({ va: v.va, level, raw: presentRaw(level, dst.number + page, bits) });
    if (dst.anon && !dst.flags.ksm && v.kind !== 'MIG-R') engine.folios.setAnonExclusive(dst.id, page, level === 'pte' ? 1 : dst.nrPages, true);
  }
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
  return r.matches;
}

/** try_to_map_unused_to_zeropage's test (§9.4 step 3): an order-0 anon page, all zero, not hwpoison, not mlocked. */
function unusedZeroPage(engine: Engine, dst: FolioInfo, vma: Vma, page: number): boolean {
  if (dst.order !== 0 || !dst.anon || dst.devicePrivate || dst.flags.ksm || dst.flags.mlocked || vma.flags.locked) return false;
  const p = engine.page(dst.namespace, dst.number + page);
  return p !== undefined && p.tag === 0 && !p.hwpoison;
}

/**
 * Migrate one folio to a newly allocated folio of the same order (move_pages of the rmap selftest). Returns
 * the destination folio's id, or EBUSY (pinned: nothing changes; locked: busy), ENOMEM (no RAM), EAGAIN
 * (a pinned exclusive page stopped try_to_migrate: every entry is restored to the source).
 */
export function migrateFolio(engine: Engine, id: FolioId): SysResult {
  const s = opsState(engine);
  const iface = s.policy.walkInterface;
  const src = engine.folio(id);
  if (src.devicePrivate || src.hugetlb) throw new PvmwError('BAD_SETTING', `folio ${hex(id)}: device-private and hugetlb migration belong to the migration issue`);
  if (src.flags.locked) return err('EBUSY');
  const dstId = s.alloc.alloc({
    order: src.order,
    ...(src.anon ? { anonVma: src.anonVma ?? 0 } : { file: src.file ?? 0 }),
    index: src.index,
  });
  if (dstId === null) return err('ENOMEM');
  engine.folios.setFlags(id, { locked: true });
  if (!tryToMigrate(engine, src, iface) || s.pinned(id)) {
    removeMigrationPtes(engine, src, engine.folio(id), iface); // undo: back to the source
    engine.folios.setFlags(id, { locked: false });
    s.alloc.free(dstId);
    return err('EAGAIN');
  }
  // folio_migrate_mapping + copy: mapping, index, flags, KSM node, page cache slot, tags.
  engine.folios.setMapping(dstId, engine.folio(id).anonVma ?? src.file ?? 0, src.index);
  const { locked: _l, ...flags } = src.flags;
  engine.folios.setFlags(dstId, flags);
  for (let p = 0; p < src.nrPages; p++) {
    const tag = engine.page(src.namespace, src.number + p)!.tag;
    if (tag !== 0) engine.folios.setTag(dstId, p, 1, tag);
  }
  if (src.flags.ksm && src.anonVma !== null) {
    const node = engine.rmap.ksm.get(src.anonVma);
    if (node) node.folio = dstId;
  }
  if (!src.anon && src.file !== null) s.pageCache.insert(src.file, src.index, src.nrPages, dstId);
  removeMigrationPtes(engine, engine.folio(id), engine.folio(dstId), iface);
  engine.folios.setFlags(id, { locked: false, ksm: false });
  s.alloc.free(id);
  return ok(dstId);
}
