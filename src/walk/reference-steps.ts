import { PvmwError } from '../errors.js';
import { decodeEntry, type DecodeContext } from '../model/decode.js';
import type { Engine } from '../model/engine.js';
import { isTablePointer, pmdPresent, pteNone, ptePresent, rawEquals, type RawEntry } from '../model/entry.js';
import { PAGE_SIZE, PMD_ORDER, PMD_SIZE, PTRS_PER_TABLE, type Geometry, type LeafLevel, type LevelName } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { isDevicePrivateKind, isMigration, type SoftleafKind } from '../model/softleaf.js';
import { thpVmaSuitableOrder, vmaAddressEnd, type Vma } from '../model/vma.js';
import type { Candidate, Injector, ResolvedKey } from './reference-key.js';
import { PVMW_MIGRATION, PVMW_PGTABLE_CROSSED, PVMW_SYNC, type WalkCounters, type WalkLock, type WalkMatch } from './types.js';

/**
 * The TypeScript REFERENCE page_vma_mapped_walk, part 2: one walk state and the function itself (the spec §1.4
 * helpers and the numbered algorithm of §1.5), written step for step for clarity, not speed. The API is in
 * reference.ts, keys and injections in reference-key.ts. It reads the engine's tables one entry at a time through
 * Mm.readEntry and shares no walk code with the WebAssembly engine (assembly/walk.ts): the two are meant to be
 * compared, so they are written independently.
 *
 * Addresses reach 2^56: nothing here uses JS bitwise operators on addresses (only on the u32 halves of entries).
 */

/** A slot: entry `index` of the table at linear-memory address `table` (pvmw->pmd, pvmw->pte). */
interface Slot {
  table: number;
  index: number;
}

/** The walk state (spec §1.1) beyond the key: address, pmd, pte, ptl (the lock held), flags. */
interface WalkState {
  address: number;
  pmd: Slot | null;
  pte: Slot | null;
  ptl: WalkLock | null;
  flags: number;
}

/**
 * What the kernel keeps in local variables of one call: the PMD value map_pte saw and the PTE-table lock it
 * looked up (spec §1.4 map_pte: returned to the caller even when not locked, so next_pte can lock lazily).
 */
interface CallLocals {
  pmdval: RawEntry | null;
  ptl: WalkLock | null;
}

/** Where the descent (step 5) sends the walk next. */
type DescendOutcome = 'match' | 'not_found' | 'exhausted' | 'restart' | 'this_pte' | 'next_pte';

const DEVICE_PRIVATE_ENTRY: ReadonlySet<string> = new Set(['device-private-read', 'device-private-write']);

/** softleaf_is_device_private: device-private read/write (not the series' migration-device-private kinds). */
function isDevicePrivateEntry(kind: string): boolean {
  return DEVICE_PRIVATE_ENTRY.has(kind);
}

/** A softleaf kind (swap-format entry with a known type), as opposed to none / table / present / unknown. */
function softleafKind(kind: string): SoftleafKind | null {
  return kind === 'none' || kind === 'table' || kind === 'present' || kind === 'unknown' ? null : (kind as SoftleafKind);
}

/** The next table's address in a table entry: its PFN field as a byte address (tables live below 4 GiB). */
function nextTable(e: RawEntry): number {
  return (e.lo & 0xfffff000) >>> 0;
}

export function zeroCounters(geo: Geometry): WalkCounters {
  const entriesRead: Record<string, number> = {};
  for (const level of geo.table) entriesRead[level.name] = 0;
  return { entriesRead, memmapLookups: 0, matches: 0, restarts: 0, tablesCrossed: 0 };
}

/** One walk (one page_vma_mapped_walk state): call step() until it returns false. */
export class ReferenceWalk {
  readonly state: WalkState;
  /** The entry and level of the last true return. */
  private found: { level: LeafLevel; raw: RawEntry } | null = null;
  private readonly geo: Geometry;
  private readonly decode: DecodeContext;
  private readonly series: boolean;
  private readonly v614: boolean;

  constructor(
    private readonly engine: Engine,
    private readonly mm: Mm,
    private readonly vma: Vma,
    private readonly key: ResolvedKey,
    address: number,
    private readonly injector: Injector,
    readonly counters: WalkCounters,
  ) {
    this.geo = engine.geometry;
    this.decode = engine.decodeContext;
    this.series = engine.settings.semantics === 'series';
    this.v614 = engine.settings.semantics === 'v6.14';
    // §1.1: pmd, pte and ptl are NULL on the first call.
    this.state = { address, pmd: null, pte: null, ptl: null, flags: key.flags };
  }

  // ---- reading the tables ------------------------------------------------------------------------------

  /** Read one entry (counted per level: lockless reads and re-reads under a lock alike). */
  private read(level: LevelName, slot: Slot): RawEntry {
    this.counters.entriesRead[level]++;
    return this.mm.readEntry(slot.table, slot.index);
  }

  /** Index of the current address in a table of this level: floor(va / 2^shift) mod 512. */
  private indexAt(level: LevelName, address: number): number {
    const shift = this.geo.table.find((l) => l.name === level)!.shift;
    return Math.floor(address / 2 ** shift) % PTRS_PER_TABLE;
  }

  private hasFlag(flag: number): boolean {
    return (this.state.flags & flag) !== 0;
  }

  // ---- §1.4 helpers ------------------------------------------------------------------------------------

  /** page_vma_mapped_walk_done: unmap the PTE page (nothing to do here) and release the lock if held. */
  done(): void {
    this.state.ptl = null;
  }

  /** page_vma_mapped_walk_restart (§1.4): the caller changed the tables; the next step re-descends at the
   *  current address. */
  restart(): void {
    this.done();
    this.state.pmd = null;
    this.state.pte = null;
  }

  /** not_found: done, then false. */
  private notFound(): false {
    this.done();
    return false;
  }

  /** step_forward: to the start of the next size-aligned block (no wrap below 2^57; the kernel's ULONG_MAX
   *  case cannot happen). */
  private stepForward(size: number): void {
    this.state.address = (Math.floor(this.state.address / size) + 1) * size;
  }

  /**
   * check_pte steps 2–4 (spec §1.4), the kind filter: which entries can match at all, and what they name.
   * - PVMW_MIGRATION: only migration softleaves (the series' migration-device-private kinds are migration
   *   entries too: "is-a", §3.4); v6.14 also device-exclusive (D1, spec §1.7).
   * - otherwise: present entries (pte_pfn, L1TF undone by the decoder), device-private read/write and
   *   device-exclusive softleaves.
   * `pages` is pte_nr: 1, or the hugetlb page size in pages.
   */
  private pteCandidate(raw: RawEntry, level: LeafLevel, pages: number): Candidate | null {
    const d = decodeEntry(raw, level, this.decode);
    const leaf = softleafKind(d.kind);
    if (this.hasFlag(PVMW_MIGRATION)) {
      // §1.4 check_pte step 2: decode as a softleaf (present and none entries decode to NONE: no migration entry).
      if (leaf === null) return null;
      if (!isMigration(leaf) && !(this.v614 && leaf === 'device-exclusive')) return null;
    } else if (d.kind === 'present') {
      // §1.4 check_pte step 3: a present entry; candidate = its pfn.
    } else {
      // §1.4 check_pte step 4: only device-private and device-exclusive softleaves are mappings.
      if (leaf === null || (!isDevicePrivateEntry(leaf) && leaf !== 'device-exclusive')) return null;
    }
    if (d.namespace === null || d.number === null) return null;
    return { namespace: d.namespace, number: d.number, pages, devicePrivate: leaf !== null && isDevicePrivateKind(leaf) };
  }

  /**
   * check_pte(pvmw, pte_nr) (spec §1.4): read the entry at `slot`; steps 2–4 above; then the key's range test
   * (step 5, the series' namespace rule, and step 6, the overlap; or the folio-keyed strategies of D2).
   */
  private checkPte(level: LeafLevel, slot: Slot, pteNr: number): boolean {
    const raw = this.read(level, slot); // §1.4 check_pte step 1
    const c = this.pteCandidate(raw, level, pteNr);
    // §1.4 check_pte steps 5–6: the key's range test (series namespace rule, overlap; or D2's folio strategies).
    if (c === null || !this.key.matcher(c, this.counters)) return false;
    this.found = { level, raw };
    return true;
  }

  /**
   * check_pmd (spec §1.4): the 512-page block the PMD entry names must overlap the range; with series
   * semantics the device-private-ness must match PVMW_DEVICE_PRIVATE too (D3). `raw` is the PMD value read
   * under the lock; it is the match's entry when this returns true.
   */
  private checkPmd(raw: RawEntry): boolean {
    const d = decodeEntry(raw, 'pmd', this.decode);
    if (d.namespace === null || d.number === null) return false;
    const leaf = softleafKind(d.kind);
    const c: Candidate = { namespace: d.namespace, number: d.number, pages: 512, devicePrivate: leaf !== null && isDevicePrivateKind(leaf) };
    if (!this.key.matcher(c, this.counters)) return false;
    this.found = { level: 'pmd', raw };
    return true;
  }

  /** map_pte step 3, the lockless pre-filter: false when the PTE cannot match (so no lock is taken). */
  private prefilter(ptent: RawEntry): boolean {
    if (pteNone(ptent)) return false;
    if (ptePresent(ptent)) return !this.hasFlag(PVMW_MIGRATION);
    if (this.hasFlag(PVMW_MIGRATION)) return true; // non-present with MIGRATION: check_pte decides
    const leaf = softleafKind(decodeEntry(ptent, 'pte', this.decode).kind);
    return leaf !== null && (isDevicePrivateEntry(leaf) || leaf === 'device-exclusive');
  }

  /**
   * map_pte (spec §1.4). Returns true with the PTE-table lock held and `pte` set; false either with `pte`
   * NULL (no PTE table: the caller restarts) or with `pte` set and no lock (the entry cannot match).
   */
  private mapPte(locals: CallLocals): boolean {
    const s = this.state;
    const pmdSlot = s.pmd!;
    for (;;) {
      // §1.4 map_pte steps 1/2: map the PTE table: read the PMD (no table → false with pte NULL).
      const pmdval = this.read('pmd', pmdSlot);
      if (!isTablePointer('pmd', pmdval)) {
        s.pte = null;
        return false;
      }
      const table = nextTable(pmdval);
      s.pte = { table, index: this.indexAt('pte', s.address) };
      locals.pmdval = pmdval;
      locals.ptl = { kind: 'pte', table };
      if (this.hasFlag(PVMW_SYNC)) {
        // §1.4 map_pte step 1: PVMW_SYNC maps and locks in one step (pte_offset_map_lock); check_pte decides.
        s.ptl = locals.ptl;
        return true;
      }
      // §1.4 map_pte step 3: lockless read and pre-filter: false without locking.
      const ptent = this.read('pte', s.pte);
      if (!this.prefilter(ptent)) return false;
      // D4 'map-pte-lock': a change between the lockless read and the lock.
      this.injector.arrive('map-pte-lock', s.address);
      // §1.4 map_pte step 4: lock; if the PMD changed meanwhile, unlock and map again.
      const now = this.read('pmd', pmdSlot);
      if (!rawEquals(now, pmdval)) continue; // (unlock) "again"
      // §1.4 map_pte step 5: record the lock.
      s.ptl = locals.ptl;
      return true;
    }
  }

  /** sync_with_folio_pmd_zap: take and drop the PMD lock of `pmdTable`. Nothing visible happens (no count). */
  private syncWithFolioPmdZap(_pmdTable: number): void {}

  // ---- §1.5 the algorithm ------------------------------------------------------------------------------

  /** One call of page_vma_mapped_walk. True: a match is reported (see match()) and its lock is held. */
  step(): boolean {
    const s = this.state;
    this.found = null;
    // §1.5 step 1: a PMD-level match was the only possible mapping of the range.
    if (s.pmd !== null && s.pte === null) return this.notFound();
    // §1.5 step 2: hugetlb VMAs.
    if (this.vma.flags.hugetlb !== null) return this.counted(this.hugetlbStep());
    // §1.5 step 3: the end of the range in this VMA.
    const end = vmaAddressEnd({ address: s.address, pgoff: this.key.pgoff, nrPages: this.key.nrPages, vma: this.vma });
    const locals: CallLocals = { pmdval: null, ptl: null };
    // §1.5 step 4: continuing after a PTE match → next PTE.
    let label: 'restart' | 'this_pte' | 'next_pte' = s.pte !== null ? 'next_pte' : 'restart';
    for (;;) {
      if (label === 'restart') {
        const out = this.descend(end, locals);
        if (out === 'match') return this.counted(true);
        if (out === 'not_found') return this.notFound();
        if (out === 'exhausted') return false; // §1.5 step 6: no lock is held here
        label = out;
      } else if (label === 'this_pte') {
        // §1.5 step 5h "this_pte".
        if (this.checkPte('pte', s.pte!, 1)) return this.counted(true);
        label = 'next_pte';
      } else {
        const out = this.nextPte(end, locals);
        if (out === 'not_found') return this.notFound();
        label = out;
      }
    }
  }

  private counted(result: boolean): boolean {
    if (result) this.counters.matches++;
    return result;
  }

  /** §1.5 step 2: hugetlb VMAs (the leaf at PMD level for 2M pages, PUD level for 1G). */
  private hugetlbStep(): boolean {
    const s = this.state;
    // §1.5 step 2a: the one address was examined by the previous call.
    if (s.pte !== null) return this.notFound();
    const leafLevel: LeafLevel = this.vma.flags.hugetlb === '2M' ? 'pmd' : 'pud';
    const pages = this.vma.flags.hugetlb === '2M' ? 512 : 2 ** 18;
    // §1.5 step 2b: hugetlb_walk: descend to the leaf level; a missing table on the way → false (no lock).
    let table = this.mm.root;
    for (const level of this.geo.table) {
      if (level.name === leafLevel) break;
      const e = this.read(level.name, { table, index: this.indexAt(level.name, s.address) });
      if (!isTablePointer(level.name, e)) return false;
      table = nextTable(e);
    }
    s.pte = { table, index: this.indexAt(leafLevel, s.address) };
    // §1.5 step 2c: huge_pte_lock: the PMD table's lock for 2M pages, mm->page_table_lock (the root) for 1G.
    s.ptl = { kind: 'hugetlb', table: leafLevel === 'pmd' ? table : this.mm.root };
    // §1.5 step 2d: check_pte with pte_nr = pages per huge page.
    if (!this.checkPte(leafLevel, s.pte, pages)) return this.notFound();
    return true;
  }

  /**
   * §1.5 step 5, label "restart": the descent loop (a do … while (address < end): the first block is examined
   * before the condition is tested, as in the kernel). Ends in a PMD match, not_found, exhaustion (step 6),
   * or a PTE table to look at (this_pte / next_pte), or asks to restart.
   */
  private descend(end: number, locals: CallLocals): DescendOutcome {
    const s = this.state;
    do {
      // §1.5 steps 5a–5c: PGD, (P4D with 5-level paging; folded with 4 levels), PUD. Not a table → next block.
      let table = this.mm.root;
      let missing = 0;
      for (const level of this.geo.table) {
        if (level.name === 'pmd') break;
        const e = this.read(level.name, { table, index: this.indexAt(level.name, s.address) });
        // A PUD leaf cannot exist outside 1G hugetlb VMAs (Mm.map refuses it); if one did, it is skipped.
        if (!isTablePointer(level.name, e)) {
          missing = 2 ** level.shift;
          break;
        }
        table = nextTable(e);
      }
      if (missing !== 0) {
        this.stepForward(missing);
        continue;
      }
      // §1.5 step 5d: the PMD slot and a lockless read of it.
      const pmdTable = table;
      s.pmd = { table: pmdTable, index: this.indexAt('pmd', s.address) };
      const pmde = this.read('pmd', s.pmd);
      const d = decodeEntry(pmde, 'pmd', this.decode);
      const leaf = softleafKind(d.kind);

      if (d.kind === 'present' || (leaf !== null && isMigration(leaf))) {
        // §1.5 step 5e: trans-huge (PSE) or a PMD migration entry.
        this.injector.arrive('pmd-huge-read', s.address); // D4: a change before the lock
        s.ptl = { kind: 'pmd', table: pmdTable };
        const again = this.read('pmd', s.pmd);
        if (!pmdPresent(again)) {
          // Not present: a PMD migration entry (or none now).
          if (!this.engine.settings.config.migration || !this.hasFlag(PVMW_MIGRATION)) return 'not_found';
          const now = softleafKind(decodeEntry(again, 'pmd', this.decode).kind);
          if (now === null || !isMigration(now) || !this.checkPmd(again)) return 'not_found';
          return 'match';
        }
        if (decodeEntry(again, 'pmd', this.decode).kind === 'present') {
          // Still trans-huge.
          if (this.hasFlag(PVMW_MIGRATION)) return 'not_found';
          if (!this.checkPmd(again)) return 'not_found';
          return 'match';
        }
        // The huge PMD was split under us: unlock and continue at the PTE level (step 5g).
        s.ptl = null;
      } else if (!pmdPresent(pmde)) {
        // §1.5 step 5f: a non-present PMD that is not a migration entry.
        if (leaf !== null && isDevicePrivateEntry(leaf)) {
          // A device-private PMD (device THP): NEWEST revalidates it under the lock.
          this.injector.arrive('pmd-device-read', s.address); // D4
          s.ptl = { kind: 'pmd', table: pmdTable };
          const again = this.read('pmd', s.pmd);
          const now = softleafKind(decodeEntry(again, 'pmd', this.decode).kind);
          if (now !== null && isDevicePrivateEntry(now)) {
            if (this.hasFlag(PVMW_MIGRATION)) return 'not_found';
            if (!this.checkPmd(again)) return 'not_found';
            return 'match';
          }
          // Changed (split under us): unlock and continue at the PTE level (step 5g).
          s.ptl = null;
        } else {
          // None or any other non-present value: serialize with a PMD zap if the range could have been
          // PMD-mapped here, then go to the next PMD.
          if (this.hasFlag(PVMW_SYNC) && thpVmaSuitableOrder(this.vma, s.address, PMD_ORDER) && this.key.nrPages >= 512) {
            this.syncWithFolioPmdZap(pmdTable);
          }
          this.stepForward(PMD_SIZE);
          continue;
        }
      }
      // §1.5 step 5g: the PMD points to a PTE table (or did a moment ago): map_pte.
      this.injector.arrive('map-pte', s.address); // D4: a change before map_pte maps the table
      if (!this.mapPte(locals)) {
        if (s.pte === null) {
          // The PTE table vanished: goto restart (same address).
          this.counters.restarts++;
          return 'restart';
        }
        return 'next_pte'; // the entry cannot match: scan onward without the lock
      }
      return 'this_pte'; // §1.5 step 5h
    } while (s.address < end);
    return 'exhausted';
  }

  /** §1.5 step 9, label "next_pte". */
  private nextPte(end: number, locals: CallLocals): 'restart' | 'this_pte' | 'not_found' {
    const s = this.state;
    for (;;) {
      // §1.5 step 9.i: the next page; past the end → not_found.
      s.address += PAGE_SIZE;
      if (s.address >= end) return 'not_found';
      // §1.5 step 9.ii: crossed into the next PTE table: release the lock, forget the PTE, restart the descent.
      if (s.address % PMD_SIZE === 0) {
        s.ptl = null;
        s.pte = null;
        s.flags |= PVMW_PGTABLE_CROSSED;
        this.counters.tablesCrossed++;
        return 'restart';
      }
      // §1.5 step 9.iii: the next slot, read locklessly (or under the lock if held); skip none entries.
      s.pte = { table: s.pte!.table, index: s.pte!.index + 1 };
      if (!pteNone(this.read('pte', s.pte))) break;
    }
    // §1.5 step 9.iv: a non-none entry: take the lock map_pte looked up; if the PMD changed since, restart.
    if (s.ptl === null) {
      if (locals.ptl === null || locals.pmdval === null) {
        throw new PvmwError('INTERNAL', 'reference walk: next_pte without a lock from map_pte');
      }
      this.injector.arrive('next-pte-lock', s.address); // D4: a change before the lock
      const now = this.read('pmd', s.pmd!);
      if (!rawEquals(now, locals.pmdval)) {
        // (unlock)
        s.pte = null;
        this.counters.restarts++;
        return 'restart';
      }
      s.ptl = locals.ptl;
    }
    // §1.5 step 9.v: goto this_pte.
    return 'this_pte';
  }

  /** The WalkMatch of the last true return. */
  match(): WalkMatch {
    const s = this.state;
    if (this.found === null || s.ptl === null) throw new PvmwError('INTERNAL', 'reference walk: a match without an entry or a lock');
    return { address: s.address, level: this.found.level, raw: { ...this.found.raw }, lock: { ...s.ptl }, flags: s.flags };
  }
}
