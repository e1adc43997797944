import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { decodeEntry, type DecodedEntry } from '../model/decode.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import { folioWalkKey, rmapWalk, type RmapCandidate, type WalkInterface } from '../rmap/rmap-walk.js';
import { pageVmaMappedWalk } from '../walk/pvmw.js';
import { PVMW_PGTABLE_CROSSED, PVMW_SYNC, type WalkMatch } from '../walk/types.js';
import { splitHugePmd } from './huge-pmd.js';
import { NONE_RAW, presentRaw, putFolio, softleafRaw, writeLeaves } from './leaf.js';
import { tryShareAnon } from './rmap-primitives.js';
import { opsState } from './state.js';

/**
 * try_to_unmap (spec §5 row try_to_unmap_one, §6.3; kernel-operations.md §2.4 for what removing a mapping
 * means, §7.3 for lazyfree folios, §12.2 swap-out: slot := page tag): reclaim takes every mapping of a folio
 * away. An rmap walk (walk flags 0, or PVMW_SYNC with TTU_SYNC) through the engine's walk interface (D2); the
 * entries are computed from the matches and written with one writeLeaves per mm at the end (the walks of the
 * batch ran first; an abort leaves the entries it did not get to, as the kernel restores the one it was at).
 *
 * Per VMA (try_to_unmap_one):
 * - VM_LOCKED without TTU_IGNORE_MLOCK: nothing is unmapped there and the rmap walk stops (the folio is mlocked
 *   again when all its pages were seen under one page-table lock, as in folio_referenced);
 * - PMD match: a lazyfree THP is discarded whole if its PMD and the folio are clean and nothing else holds it
 *   (else it becomes swapbacked again, or stays for the extra reference: abort); with TTU_SPLIT_HUGE_PMD the PMD
 *   is split (huge-pmd.ts: anon → 512 PTEs, file → PMD cleared) and the walk restarts on the PTEs; any other
 *   PMD match aborts (the kernel's "unexpected PMD-mapped THP" BUG);
 * - PTE match (present, or a device-private / device-exclusive PFN swap entry, which is just cleared): a dirty
 *   PTE marks the folio dirty; then
 *   - anon, swapbacked: a swap entry of the page's own slot (one slot per page, its count raised per further
 *     PTE; the slot keeps the page's content tag), carrying soft-dirty and uffd-wp, and the exclusive bit if
 *     the page was AnonExclusive (which must first be shared: a pinned page aborts);
 *   - anon, lazyfree (swapbacked clear, MADV_FREE): discarded if the folio is still clean and not pinned (PTEs
 *     of a large folio in batches: consecutive pages, same table, same bits but A/D); if redirtied it becomes
 *     swapbacked again and the walk aborts, leaving the entry; if pinned it aborts;
 *   - file: the mapping is dropped;
 *   - hugetlb: a file mapping is dropped; an anon one aborts (it never goes to swap).
 * Afterwards an anon folio that lost its last mapping is freed (putFolio): its content lives in the swap slots,
 * or was discarded. pvmw has no swap cache: a folio whose unmap aborted half-way keeps its remaining mappings,
 * and the slots already made hold its pages' tags.
 * Not modelled: TTU_HWPOISON, guest-unused PTEs, TLB batching, the exiting-mm and VM_DROPPABLE cases.
 */

/** try_to_unmap flags (enum ttu_flags) pvmw models. */
export const TTU_SPLIT_HUGE_PMD = 0x4;
export const TTU_IGNORE_MLOCK = 0x8;
export const TTU_SYNC = 0x10;
const TTU_KNOWN = TTU_SPLIT_HUGE_PMD | TTU_IGNORE_MLOCK | TTU_SYNC;

export interface TryToUnmapOptions {
  /** TTU_SYNC | TTU_SPLIT_HUGE_PMD | TTU_IGNORE_MLOCK. */
  flags?: number;
  /** Same as TTU_IGNORE_MLOCK. */
  ignoreMlock?: boolean;
}

/** Unmap every mapping of `folio`; returns whether the folio is left fully unmapped (!folio_mapped). */
export function tryToUnmap(engine: Engine, folio: FolioId, opts: TryToUnmapOptions = {}): boolean {
  const flags = opts.flags ?? 0;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~TTU_KNOWN) !== 0) {
    throw new PvmwError('BAD_SETTING', `unknown try_to_unmap flag bits ${Number.isInteger(flags) && flags >= 0 ? hex(flags & ~TTU_KNOWN) : JSON.stringify(flags)}`);
  }
  const f = engine.folio(folio);
  if (f.mapcount === 0) return true;
  const u = new Unmap(engine, f, flags, opts.ignoreMlock === true || (flags & TTU_IGNORE_MLOCK) !== 0);
  rmapWalk(engine, [folio], {
    flags: u.walkFlags,
    interface: u.iface,
    rmapOne: (c, matches) => u.unmapOne(c, matches),
    // folio_not_mapped, counting the removals not yet written.
    done: () => engine.folio(folio).mapcount - u.removed <= 0,
  });
  for (const [mm, leaves] of u.writes) writeLeaves(engine, mm, leaves);
  const after = engine.folio(folio);
  if (after.mapcount > 0) return false;
  if (after.anon) putFolio(engine, folio); // the allocator drops its PG_idle / PG_young
  return true;
}

/** The state of one try_to_unmap: the folio's flags as the walk changes them, the writes, the slots. */
class Unmap {
  readonly writes = new Map<Mm, Leaf[]>();
  /** Mappings removed by writes not yet made. */
  removed = 0;
  readonly walkFlags: number;
  readonly iface: WalkInterface;
  private dirty: boolean;
  private swapbacked: boolean;
  /** Swap slot of each page of the folio made by this call. */
  private readonly slots = new Map<number, number>();

  constructor(
    private readonly engine: Engine,
    private readonly f: FolioInfo,
    private readonly flags: number,
    private readonly ignoreMlock: boolean,
  ) {
    this.walkFlags = (flags & TTU_SYNC) !== 0 ? PVMW_SYNC : 0;
    this.iface = opsState(engine).policy.walkInterface;
    this.dirty = f.flags.dirty;
    this.swapbacked = f.flags.swapbacked;
  }

  private get lazyfree(): boolean {
    return this.f.anon && !this.swapbacked;
  }

  private markDirty(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.engine.folios.setFlags(this.f.id, { dirty: true });
  }

  private setSwapbacked(): void {
    this.swapbacked = true;
    this.engine.folios.setFlags(this.f.id, { swapbacked: true });
  }

  private pinned(): boolean {
    return opsState(this.engine).pinned(this.f.id);
  }

  /** try_to_unmap_one for one candidate VMA; false stops the rmap walk (ret = false). */
  unmapOne(c: RmapCandidate, matches: WalkMatch[]): boolean {
    const { engine, f } = this;
    const vma = c.vma;
    const out = this.writes.get(c.mm) ?? [];
    this.writes.set(c.mm, out);
    let split = (this.flags & TTU_SPLIT_HUGE_PMD) !== 0;
    let list = matches;
    let ptes = 0;
    let ret = true;
    for (let i = 0; i < list.length; i++) {
      const m = list[i];
      // pvmw.pte: PTE matches, and hugetlb leaves at any level.
      const pteMatch = m.level === 'pte' || vma.flags.hugetlb !== null;
      if (vma.flags.locked && !this.ignoreMlock) {
        ptes++;
        ret = false;
        if (pteMatch && ptes !== f.nrPages) continue;
        if ((m.flags & PVMW_PGTABLE_CROSSED) === 0) engine.folios.setFlags(f.id, { mlocked: true });
        return false;
      }
      const e = decodeEntry(m.raw, m.level, engine.decodeContext);
      if (!pteMatch) {
        if (this.lazyfree) {
          if (!this.discardPmd(e)) return false;
          out.push({ va: m.address, level: m.level, raw: NONE_RAW });
          this.removed++;
          return true;
        }
        if (!split) return false;
        split = false;
        splitHugePmd(engine, c.mm, vma, m.address);
        // page_vma_mapped_walk_restart: descend again from the PMD's address.
        const key = folioWalkKey(engine, f, this.walkFlags, this.iface);
        list = pageVmaMappedWalk(engine, { mm: c.mm, vma, key, address: m.address }).matches;
        i = -1;
        continue;
      }
      const nr = this.batch(list, i, e);
      for (let k = i; k < i + nr; k++) {
        const d = k === i ? e : decodeEntry(list[k].raw, list[k].level, engine.decodeContext);
        if (d.kind === 'present' && d.bits.dirty) this.markDirty();
      }
      let raw = NONE_RAW;
      if (f.anon) {
        if (f.hugetlb) return false; // swapbacked but never in the swap cache: the kernel warns and aborts
        if (!this.swapbacked) {
          // MADV_FREE folio: redirtied → swapbacked again and kept; extra references → kept as it is.
          if (this.dirty) {
            this.setSwapbacked();
            return false;
          }
          if (this.pinned()) return false;
        } else {
          const swp = this.swapEntry(e);
          if (!swp) return false;
          raw = swp;
        }
      }
      for (let k = i; k < i + nr; k++) out.push({ va: list[k].address, level: list[k].level, raw });
      this.removed += nr;
      i += nr - 1;
      if (nr === f.nrPages) break;
    }
    return ret;
  }

  /**
   * folio_unmap_pte_batch: how many matches from `i` one clear takes. Only a lazyfree large folio's present
   * PTEs are batched (spec §5: consecutive pages of the folio at consecutive addresses in one PTE table,
   * respecting write and soft-dirty; young and dirty are gathered over the batch).
   */
  private batch(list: WalkMatch[], i: number, e: DecodedEntry): number {
    const { f } = this;
    if (!this.lazyfree || f.order === 0 || f.hugetlb || e.kind !== 'present' || !e.present || e.number === null) return 1;
    const first = list[i];
    // The entry with the ignored bits (young, dirty) cleared, as if it mapped the first page of the batch.
    const norm = (d: DecodedEntry, back: number) => {
      const r = presentRaw('pte', d.number! - back, { ...d.present, young: false, dirty: false, savedDirty: false });
      return `${r.lo}:${r.hi}`;
    };
    const want = norm(e, 0);
    let nr = 1;
    while (i + nr < list.length) {
      const m = list[i + nr];
      const d = decodeEntry(m.raw, m.level, this.engine.decodeContext);
      const addr = first.address + nr * 4096;
      if (m.address !== addr || m.level !== 'pte' || addr % (512 * 4096) === 0) break;
      if (d.kind !== 'present' || d.number !== e.number + nr || d.number >= f.number + f.nrPages) break;
      if (norm(d, nr) !== want) break;
      nr++;
    }
    return nr;
  }

  /**
   * __discard_anon_folio_pmd_locked (spec §5 PMD match of a lazyfree THP): a dirty PMD dirties the folio; a
   * dirty folio becomes swapbacked again; a pinned one stays. True if the PMD may be cleared.
   */
  private discardPmd(e: DecodedEntry): boolean {
    if (e.kind === 'present' && e.bits.dirty) this.markDirty();
    if (this.dirty) {
      this.setSwapbacked();
      return false;
    }
    return !this.pinned();
  }

  /**
   * The swap entry replacing a mapping of a swapbacked anon page (§12.2: the slot holds the page's tag), or
   * null if an AnonExclusive page cannot be shared (pinned: abort). The entry is exclusive iff the page was.
   */
  private swapEntry(e: DecodedEntry) {
    const { engine, f } = this;
    const page = e.number! - f.number;
    const info = engine.page(f.namespace, e.number!);
    const exclusive = info?.anonExclusive === true;
    if (exclusive && !tryShareAnon(engine, f, page, 1)) return null;
    const swap = opsState(engine).swap;
    let offset = this.slots.get(page);
    if (offset === undefined) {
      offset = swap.alloc(info?.tag ?? 0);
      this.slots.set(page, offset);
    } else swap.dup(offset);
    return softleafRaw(engine, { kind: 'swap', swapType: 0, offset, flags: { exclusive, softDirty: e.bits.softDirty, uffdWp: e.bits.uffdWp } });
  }
}
