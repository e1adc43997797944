import type { Engine } from '../model/engine.js';
import type { FolioId } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import type { VmaFlags } from '../model/vma.js';
import { rmapWalk } from '../rmap/rmap-walk.js';
import { PVMW_PGTABLE_CROSSED } from '../walk/types.js';
import { writeLeaves } from './leaf.js';
import { clearYoungLeaf } from './page-idle.js';
import { folioAge } from './folio-age.js';
import { opsState } from './state.js';

/**
 * folio_referenced (spec §5 row folio_referenced_one, §6.3): reclaim's question "was this folio used since the
 * last look?". An rmap walk with walk flags 0 through the engine's walk interface (D2); per VMA:
 * - VM_LOCKED: the matches are counted (and the remaining mapcount lowered) but nothing is cleared; once all
 *   nr_pages of the folio were seen in that VMA (a PMD match, or nr_pages PTEs) and the walk did not cross
 *   into another PTE table (no PVMW_PGTABLE_CROSSED), the folio is mlocked again and the rmap walk stops
 *   (VM_LOCKED reported);
 * - otherwise the young bit of every present PTE/PMD match is cleared (folio_pte_batch batches of a PTE-mapped
 *   large folio clear the same bits, so per match gives the same end state); PFN swap entries (device-exclusive)
 *   are old. A VMA counts once if anything was young; the folio's PG_idle is cleared then, and PG_young is
 *   tested and cleared per VMA (page_idle.c's mark, page-idle.ts FolioAge);
 * - the walk stops once the folio's mapcount is used up.
 * Not modelled: MGLRU's lru_gen_look_around (the classic LRU path is taken), the exiting/OOM-reaped mm skip
 * (referenced = −1), memcg and VM_SEQ_READ filtering (invalid_folio_referenced_vma), rmap lock contention.
 */

/** The vm_flags that are plain on/off bits (all but the hugetlb page size). */
export type VmFlagName = Exclude<keyof VmaFlags, 'hugetlb'>;
const VM_FLAG_NAMES: readonly VmFlagName[] = ['read', 'write', 'exec', 'shared', 'locked', 'thp', 'mayWrite', 'dontcopy', 'wipeonfork', 'mergeable'];

export interface FolioReferencedResult {
  /** pra.referenced: the number of VMAs in which the folio was found referenced. */
  referenced: number;
  /** The folio was found fully mapped in a VM_LOCKED VMA and mlocked again. */
  mlocked: boolean;
  /** The vm_flags of the referencing VMAs OR-ed together (locked: set only by the mlock case). */
  vmFlags: Record<VmFlagName, boolean>;
}

export interface FolioReferencedOptions {
  /**
   * The caller holds the folio lock (reclaim's folio_check_references does: default true). Without it a file
   * or KSM folio is trylocked, and a folio whose lock is taken counts as referenced (1) without a walk.
   */
  isLocked?: boolean;
}

export function folioReferenced(engine: Engine, folio: FolioId, opts: FolioReferencedOptions = {}): FolioReferencedResult {
  const f = engine.folio(folio);
  const vmFlags = Object.fromEntries(VM_FLAG_NAMES.map((k) => [k, false])) as Record<VmFlagName, boolean>;
  const result: FolioReferencedResult = { referenced: 0, mlocked: false, vmFlags };
  let mapcount = f.mapcount;
  if (mapcount === 0) return result;
  if (opts.isLocked === false && (!f.anon || f.flags.ksm) && f.flags.locked) return { ...result, referenced: 1 };
  const age = folioAge(engine);
  const writes = new Map<Mm, Leaf[]>();
  rmapWalk(engine, [folio], {
    interface: opsState(engine).policy.walkInterface,
    rmapOne(c, matches) {
      const vma = c.vma;
      // The walk's nr_pages (KSM folios are order 0, so their 1 is the folio's size too).
      const nrPages = f.nrPages;
      let ptes = 0;
      let referenced = 0;
      const out = writes.get(c.mm) ?? [];
      for (const m of matches) {
        // pvmw.pte is set for PTE matches and for hugetlb leaves at any level.
        const pteMatch = m.level === 'pte' || vma.flags.hugetlb !== null;
        if (vma.flags.locked) {
          ptes++;
          mapcount--;
          if (pteMatch && ptes !== nrPages) continue;
          if ((m.flags & PVMW_PGTABLE_CROSSED) !== 0) continue;
          engine.folios.setFlags(folio, { mlocked: true });
          result.mlocked = true;
          vmFlags.locked = true;
          writes.set(c.mm, out);
          return false;
        }
        const leaf = clearYoungLeaf(engine, m);
        if (leaf) {
          out.push(leaf);
          referenced++;
        }
        if (pteMatch) ptes++;
        mapcount--;
        if (ptes === nrPages) break;
      }
      writes.set(c.mm, out);
      if (referenced > 0) age.setIdle(folio, false);
      if (age.testClearYoung(folio)) referenced++;
      if (referenced > 0) {
        result.referenced++;
        for (const k of VM_FLAG_NAMES) if (k !== 'locked' && vma.flags[k]) vmFlags[k] = true;
      }
      return mapcount > 0;
    },
  });
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
  return result;
}
