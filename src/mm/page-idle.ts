import type { Engine } from '../model/engine.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import { decodeEntry, type DecodedEntry } from '../model/decode.js';
import { rmapWalk } from '../rmap/rmap-walk.js';
import type { WalkMatch } from '../walk/types.js';
import { presentRaw, writeLeaves } from './leaf.js';
import { opsState } from './state.js';
import { folioAge } from './folio-age.js';

/**
 * Idle page tracking (mm/page_idle.c) and DAMON's rmap-based access checks (mm/damon/ops-common.c), the
 * callers of spec §5 `page_idle_clear_pte_refs_one`, `damon_folio_mkold_one` and `damon_folio_young_one`. Each
 * is an rmap_walk (spec §6.3) with walk flags 0 through the engine's walk interface (D2,
 * opsState(engine).policy.walkInterface); the young bits it clears are written with one writeLeaves per mm.
 *
 * PG_idle and PG_young are folio flags in the kernel (64-bit: real page flags). pvmw's memmap has no bits for
 * them, so they live beside it, per engine, keyed by folio id (folio-age.ts); the page allocator clears them
 * when it frees a folio, as the kernel's resets page flags.
 */

/**
 * ptep/pmdp_test_and_clear_young for one walk match: a present entry (P or PROTNONE) with the accessed bit
 * gives the same entry without it; anything else gives null. PFN swap entries (device-exclusive,
 * device-private) are "old" from the CPU's side (spec §2 notes): never young, never changed. Secondary-MMU
 * (MMU notifier) young state is not modelled.
 */
export function clearYoungLeaf(engine: Engine, m: Pick<WalkMatch, 'address' | 'level' | 'raw'>): Leaf | null {
  const e = decodeEntry(m.raw, m.level, engine.decodeContext);
  if (e.kind !== 'present' || !e.present || !e.present.young || e.number === null) return null;
  return { va: m.address, level: m.level, raw: presentRaw(m.level, e.number, { ...e.present, young: false }) };
}

/** pte_young / pmd_young of a match: present and accessed (non-present entries are old). */
export function matchYoung(engine: Engine, m: Pick<WalkMatch, 'level' | 'raw'>): boolean {
  const e = decodeEntry(m.raw, m.level, engine.decodeContext);
  return e.kind === 'present' && e.bits.young;
}

/**
 * The rmap walk of these callers is skipped for a file or KSM folio whose lock is taken (folio_trylock fails,
 * `need_lock` in page_idle_clear_pte_refs / damon_folio_mkold / damon_folio_young).
 */
function lockBusy(f: FolioInfo): boolean {
  return (!f.anon || f.flags.ksm) && f.flags.locked;
}

/**
 * page_idle_clear_pte_refs (spec §5 page_idle_clear_pte_refs_one): for an unlocked, mapped folio, clear the
 * young bit of every present PTE/PMD mapping it; if a VMA had a young one, the folio is marked not idle and
 * young (so that folio_referenced still sees the access). Returns whether any mapping was young.
 */
export function pageIdleClearPteRefs(engine: Engine, folio: FolioId): boolean {
  const f = engine.folio(folio);
  if (f.mapcount === 0 || lockBusy(f)) return false;
  const age = folioAge(engine);
  const writes = new Map<Mm, Leaf[]>();
  let any = false;
  rmapWalk(engine, [folio], {
    interface: opsState(engine).policy.walkInterface,
    rmapOne(c, matches) {
      const out = writes.get(c.mm) ?? [];
      let referenced = false;
      for (const m of matches) {
        const leaf = clearYoungLeaf(engine, m);
        if (!leaf) continue;
        referenced = true;
        out.push(leaf);
      }
      writes.set(c.mm, out);
      if (referenced) {
        age.setIdle(folio, false);
        age.setYoung(folio);
        any = true;
      }
      return true;
    },
  });
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
  return any;
}

/** /sys/kernel/mm/page_idle/bitmap write of a 1 bit (page_idle_bitmap_write): clear the refs, then mark idle. */
export function pageIdleMark(engine: Engine, folio: FolioId): void {
  pageIdleClearPteRefs(engine, folio);
  folioAge(engine).setIdle(folio);
}

/**
 * /sys/kernel/mm/page_idle/bitmap read of one folio (page_idle_bitmap_read): an idle folio has its refs
 * cleared and is re-tested; returns whether it is still idle.
 */
export function pageIdleRead(engine: Engine, folio: FolioId): boolean {
  const age = folioAge(engine);
  if (!age.isIdle(folio)) return false;
  pageIdleClearPteRefs(engine, folio);
  return age.isIdle(folio);
}

/**
 * The folio DAMON's damon_ptep_mkold / damon_pmdp_mkold take from an entry: damon_get_folio of its pfn, which
 * exists only for online memory (RAM). Device-private pages are not online: such entries are left alone.
 */
function ramFolioOf(engine: Engine, e: DecodedEntry, f: FolioInfo): FolioId | null {
  if (e.namespace !== 'pfn' || e.number === null) return null;
  if (!f.devicePrivate && e.number >= f.number && e.number < f.number + f.nrPages) return f.id;
  if (engine.memory.rangeOf('pfn', e.number)?.kind !== 'ram') return null;
  const head = engine.folios.headOf('pfn', e.number);
  return head >= 0 ? head : null;
}

/**
 * damon_folio_mkold (spec §5 damon_folio_mkold_one): an unmapped folio is just marked idle; otherwise every
 * match has its young bit cleared (present entries; PFN swap entries are old), and the folio it maps is marked
 * young if the entry was young, and idle.
 */
export function damonFolioMkold(engine: Engine, folio: FolioId): void {
  const f = engine.folio(folio);
  const age = folioAge(engine);
  if (f.mapcount === 0) {
    age.setIdle(folio);
    return;
  }
  if (lockBusy(f)) return;
  const writes = new Map<Mm, Leaf[]>();
  rmapWalk(engine, [folio], {
    interface: opsState(engine).policy.walkInterface,
    rmapOne(c, matches) {
      const out = writes.get(c.mm) ?? [];
      for (const m of matches) {
        const target = ramFolioOf(engine, decodeEntry(m.raw, m.level, engine.decodeContext), f);
        if (target === null) continue;
        const leaf = clearYoungLeaf(engine, m);
        if (leaf) {
          out.push(leaf);
          age.setYoung(target);
        }
        age.setIdle(target);
      }
      writes.set(c.mm, out);
      return true;
    },
  });
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
}

/**
 * damon_folio_young (spec §5 damon_folio_young_one): was the folio accessed since damon_folio_mkold? An
 * unmapped folio: accessed iff not idle. Otherwise the rmap walk stops at the first match that is young
 * (present and accessed), or at any match while the folio is not idle. Changes nothing. A file or KSM folio
 * whose lock is taken reads as not accessed.
 */
export function damonFolioYoung(engine: Engine, folio: FolioId): boolean {
  const f = engine.folio(folio);
  const age = folioAge(engine);
  if (f.mapcount === 0) return !age.isIdle(folio);
  if (lockBusy(f)) return false;
  let accessed = false;
  rmapWalk(engine, [folio], {
    interface: opsState(engine).policy.walkInterface,
    rmapOne(_c, matches) {
      accessed = false;
      for (const m of matches) {
        accessed = matchYoung(engine, m) || !age.isIdle(folio);
        if (accessed) break;
      }
      return !accessed;
    },
  });
  return accessed;
}
