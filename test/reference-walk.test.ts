// The TypeScript reference page_vma_mapped_walk (src/walk/reference.ts): spec §1.1–§1.6, §2; decisions.md D1–D4.
// Every space here is rmap-consistent (kernel-operations.md §0.3): anon folios carry index = linear page index of
// the address where their first page is mapped (anon VMAs default to pgoff = start / 4096, so index = VA / 4096).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EFAULT, Engine, PMD_SIZE, PUD_SIZE, linearPageIndex,
  type EngineOptions, type EntrySpec, type Mm, type RawEntry, type Vma, type VmaSpec,
} from '../src/index.js';
import { referencePageMappedInVma, referenceWalk } from '../src/walk/reference.js';
import {
  PVMW_DEVICE_PRIVATE, PVMW_MIGRATION, PVMW_PGTABLE_CROSSED, PVMW_SYNC,
  type Injection, type WalkKey, type WalkMatch, type WalkResult,
} from '../src/walk/types.js';
import { expectPvmwError } from './helpers.js';

const P = 4096;
const CHUNK = 4096; // device chunk pages

function engine(opts: EngineOptions = {}): Engine {
  return new Engine({ ramPages: 1 << 20, deviceChunkPages: CHUNK, ...opts });
}

/** A new mm with one anon VMA [start, end). */
function space(e: Engine, start: number, end: number, flags?: VmaSpec['flags']): { mm: Mm; vma: Vma } {
  const mm = e.createMm();
  const vma = mm.addVma({ start, end, ...(flags ? { flags } : {}) });
  return { mm, vma };
}

/** Linear-memory address of the table at `level` ('pte' table or 'pmd' table) on the path to addr. */
function tableOf(mm: Mm, addr: number, level: 'pte' | 'pmd'): number {
  const parent = level === 'pte' ? 'pmd' : 'pud';
  const step = mm.translate(addr).steps.find((s) => s.level === parent)!;
  return (step.raw.lo & 0xfffff000) >>> 0;
}

const entryAt = (mm: Mm, addr: number): RawEntry => mm.translate(addr).leaf.raw;
const pfnKey = (number: number, nrPages: number, pgoff: number, flags = 0): WalkKey => ({ kind: 'pfn', number, nrPages, pgoff, flags });
const folioKey = (folio: number, flags = 0, strategy: 'range' | 'identity' = 'range', page?: number): WalkKey =>
  ({ kind: 'folio', folio, strategy, flags, ...(page !== undefined ? { page } : {}) });
const addrs = (r: WalkResult) => r.matches.map((m) => m.address);
/** The matches without their counters-independent identity: what two walks must agree on. */
const shape = (ms: WalkMatch[]) => ms.map((m) => ({ ...m, flags: m.flags & ~PVMW_SYNC }));

describe('§1.5 PTE-mapped folios', () => {
  it('§1.5 steps 5a–5h: one PTE-mapped order-0 folio gives one match, holding the lock of its PTE table', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x10000, 0x20000);
    const f = e.createFolio({ number: 77, index: linearPageIndex(vma, 0x13000) });
    mm.map(0x13000, { entry: { kind: 'present', number: 77, write: true } });
    const r = referenceWalk(e, mm, vma, folioKey(f));
    expect(r.start).toBe(0x13000);
    expect(r.matches).toEqual([
      { address: 0x13000, level: 'pte', raw: entryAt(mm, 0x13000), lock: { kind: 'pte', table: tableOf(mm, 0x13000, 'pte') }, flags: 0 },
    ]);
    // Reads: pgd, pud, pmd (step 5d) + pmd (map_pte) + pte (lockless pre-filter) + pmd (pmd_same under the
    // lock) + pte (check_pte). The second call ends at step 9.i (address + 4096 ≥ end).
    expect(r.counters).toEqual({ entriesRead: { pgd: 1, pud: 1, pmd: 3, pte: 2 }, memmapLookups: 0, matches: 1, restarts: 0, tablesCrossed: 0 });
    // §1.4 map_pte step 1: PVMW_SYNC maps and locks in one step, with no pre-filter read.
    const sync = referenceWalk(e, mm, vma, folioKey(f, PVMW_SYNC));
    expect(sync.matches.map((m) => m.flags)).toEqual([PVMW_SYNC]);
    expect(sync.counters.entriesRead).toEqual({ pgd: 1, pud: 1, pmd: 2, pte: 1 });
    // The same walk keyed by pfn (DEFINE_FOLIO_VMA_WALK's fields).
    expect(shape(referenceWalk(e, mm, vma, pfnKey(77, 1, linearPageIndex(vma, 0x13000))).matches)).toEqual(shape(r.matches));
  });

  it('§1.5 steps 5h, 9: a PTE-mapped order-4 folio gives 16 matches in address order under one PTE-table lock', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x7f0000000000, 0x7f0000100000); // addresses above 2^32
    const A = 0x7f0000040000;
    const f = e.createFolio({ number: 0x2000, order: 4, index: linearPageIndex(vma, A) });
    mm.map(A, { count: 16, entry: { kind: 'present', number: 0x2000 } });
    const r = referenceWalk(e, mm, vma, folioKey(f));
    expect(addrs(r)).toEqual(Array.from({ length: 16 }, (_, k) => A + k * P));
    const table = tableOf(mm, A, 'pte');
    for (const [k, m] of r.matches.entries()) {
      expect(m).toEqual({ address: A + k * P, level: 'pte', raw: entryAt(mm, A + k * P), lock: { kind: 'pte', table }, flags: 0 });
    }
    expect(r.counters).toMatchObject({ matches: 16, restarts: 0, tablesCrossed: 0 });
  });

  it('§1.5 step 9.ii: a THP PTE-mapped across a PMD boundary sets PVMW_PGTABLE_CROSSED after the crossing', () => {
    const e = engine();
    // The VMA starts in the middle of a 2 MiB block, so the folio's 512 pages span two PTE tables.
    const { mm, vma } = space(e, 0x100000, 0x600000);
    const f = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x100000) });
    mm.map(0x100000, { count: 512, entry: { kind: 'present', number: 0x1000 } });
    for (const flags of [0, PVMW_SYNC]) {
      const r = referenceWalk(e, mm, vma, folioKey(f, flags));
      expect(addrs(r)).toEqual(Array.from({ length: 512 }, (_, k) => 0x100000 + k * P));
      const before = r.matches.slice(0, 256);
      const after = r.matches.slice(256);
      expect(before.every((m) => m.flags === flags && m.lock.table === tableOf(mm, 0x100000, 'pte'))).toBe(true);
      expect(after.every((m) => m.flags === (flags | PVMW_PGTABLE_CROSSED) && m.lock.table === tableOf(mm, 0x200000, 'pte'))).toBe(true);
      expect(tableOf(mm, 0x100000, 'pte')).not.toBe(tableOf(mm, 0x200000, 'pte'));
      expect(r.counters).toMatchObject({ matches: 512, tablesCrossed: 1, restarts: 0 });
    }
  });

  it('§1.5 step 9.iii, §2: entries that are not this folio\'s mappings are skipped, in any position', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x400000, 0x800000);
    const A = 0x440000;
    const f = e.createFolio({ number: 0x2000, order: 4, index: linearPageIndex(vma, A) });
    const other = e.createFolio({ number: 0x3000, index: linearPageIndex(vma, A + 2 * P) });
    for (const k of [1, 3, 5, 15]) mm.map(A + k * P, { entry: { kind: 'present', number: 0x2000 + k } });
    mm.map(A + 2 * P, { entry: { kind: 'present', number: 0x3000 } }); // another folio (after COW, say)
    mm.map(A + 4 * P, { entry: { kind: 'swap', swapType: 1, offset: 0x2004 } }); // swap offset equal to a pfn of f
    mm.map(A + 6 * P, { entry: { kind: 'marker', guard: true } });
    mm.map(A + 7 * P, { entry: { kind: 'hwpoison', number: 0x2007 } }); // names f's page 7, never a match
    mm.map(A + 8 * P, { entry: { kind: 'migration-read', number: 0x2008 } }); // not without PVMW_MIGRATION
    mm.map(A + 9 * P, { entry: { kind: 'present', number: 0x2009, protnone: true } }); // NUMA hinting: present
    const want = [1, 3, 5, 9, 15].map((k) => A + k * P);
    for (const flags of [0, PVMW_SYNC]) {
      for (const strategy of ['range', 'identity'] as const) {
        expect(addrs(referenceWalk(e, mm, vma, folioKey(f, flags, strategy)))).toEqual(want);
      }
      expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x2000, 16, linearPageIndex(vma, A), flags)))).toEqual(want);
    }
    expect(addrs(referenceWalk(e, mm, vma, folioKey(other)))).toEqual([A + 2 * P]);
    expect(addrs(referenceWalk(e, mm, vma, folioKey(f, PVMW_MIGRATION)))).toEqual([A + 8 * P]);
  });

  it('§1.5 steps 5a–5c: empty PUD blocks are stepped over (step_forward), then the mapped block is found', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x3fe00000, 0x80200000); // spans PUD entries 0, 1 and 2
    const f = e.createFolio({ number: 0x4000, order: 2, index: linearPageIndex(vma, 0x80000000) });
    mm.map(0x80000000, { count: 4, entry: { kind: 'present', number: 0x4000 } });
    // A raw pfn range keyed from the VMA's first page offset (as pfn_mkclean_range would) covers the whole VMA.
    const nr = (0x80200000 - 0x3fe00000) / P;
    const r = referenceWalk(e, mm, vma, pfnKey(0x4000, nr, vma.pgoff));
    expect(r.start).toBe(0x3fe00000);
    expect(addrs(r)).toEqual([0x80000000, 0x80001000, 0x80002000, 0x80003000]);
    // PUD 0 and 1 are none (two step_forwards, one descent each); PUD 2 leads to the PMD table; after the 4 PTEs
    // the scan reads the other 508 (none) entries of the PTE table and stops at the VMA's end (step 9.i).
    expect(r.counters.entriesRead).toEqual({ pgd: 3, pud: 3, pmd: 3, pte: 2 + 3 * 2 + 508 });
    expect(r.counters.tablesCrossed).toBe(0);
    void f;
  });

  it('§1.5 steps 5a, 5b: empty PGD entries (4- and 5-level) and P4D entries (5-level) are stepped over', () => {
    const cases = [
      { paging: 4 as const, boundary: 2 ** 39, reads: { pgd: 2, pud: 1, pmd: 2 } }, // PGD 0 none, PGD 1 present
      { paging: 5 as const, boundary: 2 ** 48, reads: { pgd: 2, p4d: 1, pud: 1, pmd: 2 } }, // PGD 0 none, PGD 1 present
      { paging: 5 as const, boundary: 2 ** 39, reads: { pgd: 2, p4d: 2, pud: 1, pmd: 2 } }, // P4D 0 none, P4D 1 present
    ];
    for (const { paging, boundary, reads } of cases) {
      const e = engine({ paging });
      const { mm, vma } = space(e, boundary - PMD_SIZE, boundary + PMD_SIZE);
      e.createFolio({ number: 0x300, order: 1, index: linearPageIndex(vma, boundary) });
      mm.map(boundary, { count: 2, entry: { kind: 'present', number: 0x300 } });
      const r = referenceWalk(e, mm, vma, pfnKey(0x300, 1024, vma.pgoff, PVMW_SYNC));
      expect(r.start).toBe(boundary - PMD_SIZE);
      expect(addrs(r), `${paging}-level at ${boundary}`).toEqual([boundary, boundary + P]);
      expect(r.counters.entriesRead, `${paging}-level at ${boundary}`).toMatchObject(reads);
    }
  });

  it('§1.5 step 5 is a do … while: an explicit start at or beyond the end still examines that one block', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x10000, 0x20000);
    e.createFolio({ number: 0x50, index: linearPageIndex(vma, 0x15000) });
    mm.map(0x15000, { entry: { kind: 'present', number: 0x50 } });
    // pgoff 0x8 … 0xf ends before the VMA's first offset 0x10: vma_address is -EFAULT, vma_address_end is vm_start.
    const key = pfnKey(0x50, 8, 0x8);
    expect(referenceWalk(e, mm, vma, key)).toMatchObject({ start: null, matches: [] });
    expect(addrs(referenceWalk(e, mm, vma, key, { address: 0x15000 }))).toEqual([0x15000]);
    expect(addrs(referenceWalk(e, mm, vma, key, { address: 0x14000 }))).toEqual([]); // the next page is past the end
  });

  it('§1.5 with 5-level paging: P4D entries are read, addresses above 2^47 work', () => {
    const e = engine({ paging: 5 });
    const base = 2 ** 50;
    const { mm, vma } = space(e, base, base + 4 * PMD_SIZE);
    const small = e.createFolio({ number: 0x2000, order: 3, index: linearPageIndex(vma, base + PMD_SIZE - 4 * P) });
    const thp = e.createFolio({ number: 0x4000, order: 9, index: linearPageIndex(vma, base + 2 * PMD_SIZE) });
    mm.map(base + PMD_SIZE - 4 * P, { count: 8, entry: { kind: 'present', number: 0x2000 } });
    mm.map(base + 2 * PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 0x4000 } });
    const r = referenceWalk(e, mm, vma, folioKey(small));
    expect(addrs(r)).toEqual(Array.from({ length: 8 }, (_, k) => base + PMD_SIZE - 4 * P + k * P));
    expect(r.matches.slice(4).every((m) => m.flags === PVMW_PGTABLE_CROSSED)).toBe(true);
    expect(Object.keys(r.counters.entriesRead)).toEqual(['pgd', 'p4d', 'pud', 'pmd', 'pte']);
    expect(r.counters.entriesRead.p4d).toBe(2);
    const t = referenceWalk(e, mm, vma, folioKey(thp));
    expect(t.matches).toEqual([{ address: base + 2 * PMD_SIZE, level: 'pmd', raw: entryAt(mm, base + 2 * PMD_SIZE), lock: { kind: 'pmd', table: tableOf(mm, base, 'pmd') }, flags: 0 }]);
  });
});

describe('§1.5 step 5e: PMD-mapped THPs and PMD migration entries', () => {
  function thpSpace(e: Engine) {
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const thp = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { level: 'pmd', entry: { kind: 'present', number: 0x1000, write: true } });
    return { mm, vma, thp };
  }

  it('§1.5 step 5e, step 1: a PMD-mapped THP is one \'pmd\' match under the PMD lock; the next call is not_found', () => {
    const e = engine();
    const { mm, vma, thp } = thpSpace(e);
    const r = referenceWalk(e, mm, vma, folioKey(thp));
    expect(r.matches).toEqual([{ address: 0x400000, level: 'pmd', raw: entryAt(mm, 0x400000), lock: { kind: 'pmd', table: tableOf(mm, 0x400000, 'pmd') }, flags: 0 }]);
    expect(r.counters).toEqual({ entriesRead: { pgd: 1, pud: 1, pmd: 2, pte: 0 }, memmapLookups: 0, matches: 1, restarts: 0, tablesCrossed: 0 });
    // check_pmd: any overlap with the 512-page block, e.g. one page of it (page_mapped_in_vma's key).
    const one = referenceWalk(e, mm, vma, folioKey(thp, 0, 'identity', 100));
    expect(one.matches).toEqual([{ ...r.matches[0], address: 0x400000 + 100 * P }]);
    expect(one.counters.memmapLookups).toBe(1);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x1000 + 511, 1, linearPageIndex(vma, 0x400000) + 511)))).toEqual([0x400000 + 511 * P]);
  });

  it('§1.5 step 5e: PVMW_MIGRATION on a present huge PMD is not_found', () => {
    const e = engine();
    const { mm, vma, thp } = thpSpace(e);
    const r = referenceWalk(e, mm, vma, folioKey(thp, PVMW_MIGRATION));
    expect(r.matches).toEqual([]);
    expect(r.counters.entriesRead.pmd).toBe(2); // the lockless read and the re-read under the lock
  });

  it('§1.5 step 5e, §2: a PMD migration entry matches only with PVMW_MIGRATION', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const thp = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x600000) });
    mm.map(0x600000, { level: 'pmd', entry: { kind: 'migration-write', number: 0x1000, young: true } });
    expect(referenceWalk(e, mm, vma, folioKey(thp)).matches).toEqual([]);
    const r = referenceWalk(e, mm, vma, folioKey(thp, PVMW_MIGRATION | PVMW_SYNC));
    expect(r.matches).toEqual([{ address: 0x600000, level: 'pmd', raw: entryAt(mm, 0x600000), lock: { kind: 'pmd', table: tableOf(mm, 0x600000, 'pmd') }, flags: PVMW_MIGRATION | PVMW_SYNC }]);
  });

  it('§1.5 step 5e / §1.5 consequences: a non-matching PMD leaf ends the walk (not_found), skipping later matches', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x200000, 0x600000);
    const a = e.createFolio({ number: 0x4000, order: 9, index: linearPageIndex(vma, 0x200000) });
    e.createFolio({ number: 0x6000, order: 9, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x200000, { level: 'pmd', entry: { kind: 'present', number: 0x4000 } });
    mm.map(0x400000, { count: 512, entry: { kind: 'present', number: 0x6000 } });
    // A raw range [0x5e00, 0x61ff] from the VMA's first offset: the THP at 0x200000 does not overlap it.
    const key = pfnKey(0x5e00, 1024, vma.pgoff);
    expect(referenceWalk(e, mm, vma, key)).toMatchObject({ start: 0x200000, matches: [] });
    expect(referenceWalk(e, mm, vma, key, { address: 0x400000 }).matches).toHaveLength(512);
    // With the PMD none instead, the walk steps over it (step 5f) and finds the 512 PTEs.
    mm.clear(0x200000, 0x400000);
    expect(referenceWalk(e, mm, vma, key).matches).toHaveLength(512);
    void a;
  });

  it('§1.5 step 5f: PVMW_SYNC on an empty PMD where a THP could be does the lock dance invisibly (same result)', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const thp = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x400000) });
    const plain = referenceWalk(e, mm, vma, folioKey(thp));
    const sync = referenceWalk(e, mm, vma, folioKey(thp, PVMW_SYNC));
    expect([plain.matches, sync.matches]).toEqual([[], []]);
    expect(sync.counters).toEqual(plain.counters);
  });
});

describe('§1.4 check_pte / §2: migration, device-private and device-exclusive entries (D1)', () => {
  it('§2: PVMW_MIGRATION finds migration entries (all three kinds) and not present ones', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x10000, 0x30000);
    const A = 0x20000;
    const f = e.createFolio({ number: 0x100, order: 2, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'present', number: 0x100 } });
    mm.map(A + P, { entry: { kind: 'migration-write', number: 0x101, dirty: true } });
    mm.map(A + 2 * P, { entry: { kind: 'migration-read-exclusive', number: 0x102 } });
    mm.map(A + 3 * P, { entry: { kind: 'migration-read', number: 0x103, young: true } });
    for (const flags of [0, PVMW_SYNC]) {
      expect(addrs(referenceWalk(e, mm, vma, folioKey(f, flags)))).toEqual([A]);
      const mig = referenceWalk(e, mm, vma, folioKey(f, flags | PVMW_MIGRATION));
      expect(addrs(mig)).toEqual([A + P, A + 2 * P, A + 3 * P]);
      expect(mig.matches.map((m) => m.raw)).toEqual([1, 2, 3].map((k) => entryAt(mm, A + k * P)));
    }
  });

  it('§2, D1: device-exclusive entries match without PVMW_MIGRATION; only v6.14 also matches them with it', () => {
    for (const semantics of ['newest', 'series', 'v6.14'] as const) {
      const e = engine({ semantics });
      const { mm, vma } = space(e, 0x10000, 0x20000);
      const f = e.createFolio({ number: 0x40, index: linearPageIndex(vma, 0x11000) });
      mm.map(0x11000, { entry: { kind: 'device-exclusive', number: 0x40 } });
      expect(addrs(referenceWalk(e, mm, vma, folioKey(f))), semantics).toEqual([0x11000]);
      for (const flags of [PVMW_MIGRATION, PVMW_MIGRATION | PVMW_SYNC]) {
        expect(addrs(referenceWalk(e, mm, vma, folioKey(f, flags))), semantics).toEqual(semantics === 'v6.14' ? [0x11000] : []);
      }
      // Series: device-exclusive entries are not device-private (§1.4 step 5).
      if (semantics === 'series') expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x40, 1, linearPageIndex(vma, 0x11000), PVMW_DEVICE_PRIVATE)))).toEqual([]);
    }
  });

  for (const deviceModel of ['pfn', 'offset'] as const) {
    it(`§2, D1: device-private PTE and PMD entries (${deviceModel} model) match without PVMW_MIGRATION`, () => {
      const semantics = deviceModel === 'offset' ? 'series' : 'newest'; // folio keys need namespaces (D2)
      const e = engine({ deviceModel, semantics });
      const dev = e.addDeviceMemory();
      const ns = deviceModel === 'pfn' ? 'pfn' : 'device-private';
      const { mm, vma } = space(e, 0x200000, 0x800000);
      const small = e.createFolio({ namespace: ns, number: dev.base + 8, order: 2, index: linearPageIndex(vma, 0x300000) });
      const dthp = e.createFolio({ namespace: ns, number: dev.base + 512, order: 9, index: linearPageIndex(vma, 0x400000) });
      mm.map(0x300000, { count: 2, entry: { kind: 'device-private-write', number: dev.base + 8 } });
      mm.map(0x302000, { count: 2, entry: { kind: 'device-private-read', number: dev.base + 10 } });
      mm.map(0x400000, { level: 'pmd', entry: { kind: 'device-private-write', number: dev.base + 512 } });
      const dp = semantics === 'series' ? PVMW_DEVICE_PRIVATE : 0;
      for (const key of [folioKey(small), folioKey(small, 0, 'identity'), pfnKey(dev.base + 8, 4, linearPageIndex(vma, 0x300000), dp)]) {
        expect(addrs(referenceWalk(e, mm, vma, key))).toEqual([0x300000, 0x301000, 0x302000, 0x303000]);
      }
      // §1.5 step 5f (NEWEST): the device-private PMD is revalidated under the PMD lock, then check_pmd.
      const r = referenceWalk(e, mm, vma, folioKey(dthp));
      expect(r.matches).toEqual([{ address: 0x400000, level: 'pmd', raw: entryAt(mm, 0x400000), lock: { kind: 'pmd', table: tableOf(mm, 0x400000, 'pmd') }, flags: 0 }]);
      expect(r.counters.entriesRead.pmd).toBe(2);
      expect(addrs(referenceWalk(e, mm, vma, pfnKey(dev.base + 512 + 7, 1, linearPageIndex(vma, 0x400000) + 7, dp)))).toEqual([0x407000]);
      // With PVMW_MIGRATION the device-private PMD is not_found and the PTEs do not match.
      expect(referenceWalk(e, mm, vma, folioKey(dthp, PVMW_MIGRATION)).matches).toEqual([]);
      expect(referenceWalk(e, mm, vma, folioKey(small, PVMW_MIGRATION)).matches).toEqual([]);
      // check_pmd compares numbers (fixed in NEWEST; 7.0 returned true unconditionally): another device THP's
      // walk does not match this PMD.
      const other = e.createFolio({ namespace: ns, number: dev.base + 1024, order: 9, index: linearPageIndex(vma, 0x400000) });
      expect(referenceWalk(e, mm, vma, folioKey(other)).matches).toEqual([]);
    });
  }

  it('§1.4 step 5 (SERIES), D3: the namespace rule for PTEs, PMDs and device-private migration entries', () => {
    const e = engine({ semantics: 'series', deviceModel: 'offset' });
    const dev = e.addDeviceMemory();
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const N = 0x200; // a RAM pfn and a device-private offset at once
    const devSmall = e.createFolio({ namespace: 'device-private', number: N, order: 1, index: linearPageIndex(vma, 0x300000) });
    const dthp = e.createFolio({ namespace: 'device-private', number: 0x400, order: 9, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x300000, { entry: { kind: 'device-private-write', number: N } });
    mm.map(0x301000, { entry: { kind: 'migration-device-private-write', number: N + 1 } });
    mm.map(0x400000, { level: 'pmd', entry: { kind: 'migration-device-private-read', number: 0x400 } });
    const at = linearPageIndex(vma, 0x300000);
    // pfn-keyed: with the flag only device-private entries match; without it none of these do.
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(N, 2, at, PVMW_DEVICE_PRIVATE)))).toEqual([0x300000]);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(N, 2, at, PVMW_DEVICE_PRIVATE | PVMW_MIGRATION)))).toEqual([0x301000]);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(N, 2, at)))).toEqual([]);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(N, 2, at, PVMW_MIGRATION)))).toEqual([]);
    // D3: the PMD migration entry of a device THP is device-private.
    const pmdAt = linearPageIndex(vma, 0x400000);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x400, 512, pmdAt, PVMW_MIGRATION | PVMW_DEVICE_PRIVATE)))).toEqual([0x400000]);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x400, 512, pmdAt, PVMW_MIGRATION)))).toEqual([]);
    // Folio keys carry the namespace themselves.
    for (const strategy of ['range', 'identity'] as const) {
      expect(addrs(referenceWalk(e, mm, vma, folioKey(devSmall, 0, strategy)))).toEqual([0x300000]);
      expect(addrs(referenceWalk(e, mm, vma, folioKey(devSmall, PVMW_MIGRATION, strategy)))).toEqual([0x301000]);
      expect(addrs(referenceWalk(e, mm, vma, folioKey(dthp, PVMW_MIGRATION, strategy)))).toEqual([0x400000]);
    }
    void dev;
  });

  it('D1 newest × offset aliasing: a device-private offset equal to a pfn matches a newest pfn-keyed walk, not series or folio-keyed walks', () => {
    const N = 0x600;
    function build(semantics: 'newest' | 'series') {
      const e = engine({ semantics, deviceModel: 'offset' });
      e.addDeviceMemory();
      // Two mms (parent and child, say) with the same anon VMA: the parent maps the RAM folio at pfn N, the child a
      // device folio at offset N at the same address (both folios have the same index).
      const parent = space(e, 0x10000, 0x20000);
      const child = space(e, 0x10000, 0x20000);
      const index = linearPageIndex(parent.vma, 0x14000);
      const ram = e.createFolio({ number: N, index });
      const dev = e.createFolio({ namespace: 'device-private', number: N, index });
      parent.mm.map(0x14000, { entry: { kind: 'present', number: N } });
      child.mm.map(0x14000, { entry: { kind: 'device-private-write', number: N } });
      return { e, parent, child, ram, dev, key: pfnKey(N, 1, index) };
    }
    const newest = build('newest');
    expect(addrs(referenceWalk(newest.e, newest.parent.mm, newest.parent.vma, newest.key))).toEqual([0x14000]);
    expect(addrs(referenceWalk(newest.e, newest.child.mm, newest.child.vma, newest.key))).toEqual([0x14000]); // the false match
    expectPvmwError(() => referenceWalk(newest.e, newest.child.mm, newest.child.vma, folioKey(newest.ram)), 'BAD_SETTING', 'offset');

    const series = build('series');
    expect(addrs(referenceWalk(series.e, series.parent.mm, series.parent.vma, series.key))).toEqual([0x14000]);
    expect(addrs(referenceWalk(series.e, series.child.mm, series.child.vma, series.key))).toEqual([]);
    const devKey = { ...series.key, flags: PVMW_DEVICE_PRIVATE } as WalkKey;
    expect(addrs(referenceWalk(series.e, series.child.mm, series.child.vma, devKey))).toEqual([0x14000]);
    expect(addrs(referenceWalk(series.e, series.parent.mm, series.parent.vma, devKey))).toEqual([]);
    for (const strategy of ['range', 'identity'] as const) {
      expect(addrs(referenceWalk(series.e, series.child.mm, series.child.vma, folioKey(series.ram, 0, strategy)))).toEqual([]);
      expect(addrs(referenceWalk(series.e, series.parent.mm, series.parent.vma, folioKey(series.ram, 0, strategy)))).toEqual([0x14000]);
      expect(addrs(referenceWalk(series.e, series.child.mm, series.child.vma, folioKey(series.dev, 0, strategy)))).toEqual([0x14000]);
    }
  });
});

describe('§1.5 step 2: hugetlb VMAs', () => {
  it('§1.5 step 2, §1.4 check_pte pte_nr: a 2M hugetlb page matches once at PMD level under the PMD table\'s lock', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x1000000, 0x1400000, { hugetlb: '2M' });
    const h = e.createFolio({ number: 1024, hugetlb: '2M', index: linearPageIndex(vma, 0x1200000) });
    mm.map(0x1200000, { level: 'pmd', entry: { kind: 'present', number: 1024 } });
    const r = referenceWalk(e, mm, vma, folioKey(h));
    const lock = { kind: 'hugetlb', table: tableOf(mm, 0x1200000, 'pmd') };
    expect(r.matches).toEqual([{ address: 0x1200000, level: 'pmd', raw: entryAt(mm, 0x1200000), lock, flags: 0 }]);
    expect(r.counters).toEqual({ entriesRead: { pgd: 1, pud: 1, pmd: 1, pte: 0 }, memmapLookups: 0, matches: 1, restarts: 0, tablesCrossed: 0 });
    // A one-page key for a page inside the huge page overlaps it (pte_nr = 512): the match is at that page's address.
    expect(referenceWalk(e, mm, vma, folioKey(h, 0, 'identity', 300)).matches).toEqual([{ ...r.matches[0], address: 0x1200000 + 300 * P }]);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(1024 + 5, 1, linearPageIndex(vma, 0x1200000) + 5)))).toEqual([0x1205000]);
    // The one address examined is empty (the slot exists) → no match; PVMW_MIGRATION on a present leaf → none.
    expect(referenceWalk(e, mm, vma, pfnKey(1024, 512, linearPageIndex(vma, 0x1000000))).matches).toEqual([]);
    expect(referenceWalk(e, mm, vma, folioKey(h, PVMW_MIGRATION)).matches).toEqual([]);
  });

  it('§1.5 step 2: a hugetlb migration entry matches under PVMW_MIGRATION; no table on the path → false', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x40000000, 0x40800000, { hugetlb: '2M' });
    const h = e.createFolio({ number: 2048, hugetlb: '2M', index: linearPageIndex(vma, 0x40200000) });
    expect(referenceWalk(e, mm, vma, folioKey(h))).toMatchObject({ matches: [], counters: { entriesRead: { pgd: 1, pud: 0 } } });
    mm.map(0x40200000, { level: 'pmd', entry: { kind: 'migration-read', number: 2048 } });
    expect(referenceWalk(e, mm, vma, folioKey(h)).matches).toEqual([]);
    expect(referenceWalk(e, mm, vma, folioKey(h, PVMW_MIGRATION)).matches.map((m) => [m.address, m.level])).toEqual([[0x40200000, 'pmd']]);
  });

  it('§1.5 step 2: a 1G hugetlb page matches at PUD level under mm->page_table_lock (the root)', () => {
    const e = engine();
    const { mm, vma } = space(e, PUD_SIZE, 3 * PUD_SIZE, { hugetlb: '1G' });
    const h = e.createFolio({ number: 2 ** 18, hugetlb: '1G', index: linearPageIndex(vma, 2 * PUD_SIZE) });
    mm.map(2 * PUD_SIZE, { level: 'pud', entry: { kind: 'present', number: 2 ** 18 } });
    const r = referenceWalk(e, mm, vma, folioKey(h));
    expect(r.matches).toEqual([{ address: 2 * PUD_SIZE, level: 'pud', raw: entryAt(mm, 2 * PUD_SIZE), lock: { kind: 'hugetlb', table: mm.root }, flags: 0 }]);
    expect(r.counters.entriesRead).toEqual({ pgd: 1, pud: 1, pmd: 0, pte: 0 });
    const page = 123_456;
    for (const strategy of ['range', 'identity'] as const) {
      expect(addrs(referenceWalk(e, mm, vma, folioKey(h, PVMW_SYNC, strategy, page)))).toEqual([2 * PUD_SIZE + page * P]);
    }
    expect(referenceWalk(e, mm, vma, pfnKey(2 ** 18, 2 ** 18, linearPageIndex(vma, PUD_SIZE))).matches).toEqual([]);
  });
});

describe('D2: folio-keyed walks, PVMW_SYNC', () => {
  it('D2: range and identity strategies give the same matches; identity counts one memmap lookup per candidate', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x100000, 0x600000);
    const f = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x100000) });
    mm.map(0x100000, { count: 100, entry: { kind: 'present', number: 0x1000 } });
    mm.map(0x100000 + 100 * P, { count: 100, entry: { kind: 'migration-read', number: 0x1000 + 100 } });
    mm.map(0x100000 + 300 * P, { count: 212, entry: { kind: 'present', number: 0x1000 + 300 } });
    for (const flags of [0, PVMW_SYNC, PVMW_MIGRATION, PVMW_MIGRATION | PVMW_SYNC]) {
      const range = referenceWalk(e, mm, vma, folioKey(f, flags, 'range'));
      const identity = referenceWalk(e, mm, vma, folioKey(f, flags, 'identity'));
      expect(identity.matches).toEqual(range.matches);
      expect(range.matches).toHaveLength(flags & PVMW_MIGRATION ? 100 : 312);
      expect(range.counters.memmapLookups).toBe(0);
      expect(identity.counters.memmapLookups).toBe(range.matches.length); // every candidate here is a match
      expect({ ...identity.counters, memmapLookups: 0 }).toEqual(range.counters);
      const pfn = referenceWalk(e, mm, vma, pfnKey(0x1000, 512, linearPageIndex(vma, 0x100000), flags));
      expect(pfn.matches).toEqual(range.matches);
    }
  });

  it('D2: with a page given, only that page matches, even when an explicit address points at a sibling page', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x10000, 0x30000);
    const f = e.createFolio({ number: 0x100, order: 4, index: linearPageIndex(vma, 0x20000) });
    mm.map(0x20000, { count: 16, entry: { kind: 'present', number: 0x100 } });
    for (const strategy of ['range', 'identity'] as const) {
      expect(addrs(referenceWalk(e, mm, vma, folioKey(f, 0, strategy, 3)))).toEqual([0x23000]);
      expect(addrs(referenceWalk(e, mm, vma, folioKey(f, 0, strategy, 3), { address: 0x25000 }))).toEqual([]);
      expect(addrs(referenceWalk(e, mm, vma, folioKey(f, 0, strategy), { address: 0x25000 }))).toHaveLength(11);
    }
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x103, 1, 0), { address: 0x25000 }))).toEqual([]);
    expect(addrs(referenceWalk(e, mm, vma, pfnKey(0x105, 1, 0), { address: 0x25000 }))).toEqual([0x25000]);
  });

  it('§1.2 PVMW_SYNC: the same matches with and without it; only the reads differ', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x100000, 0x600000);
    const f = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x100000) });
    for (let k = 0; k < 512; k += 3) mm.map(0x100000 + k * P, { entry: { kind: 'present', number: 0x1000 + k } });
    const plain = referenceWalk(e, mm, vma, folioKey(f));
    const sync = referenceWalk(e, mm, vma, folioKey(f, PVMW_SYNC));
    expect(shape(sync.matches)).toEqual(shape(plain.matches));
    expect(plain.matches).toHaveLength(171);
    expect(sync.counters.entriesRead.pte).toBeLessThan(plain.counters.entriesRead.pte);
  });

  it('§1.6 page_mapped_in_vma: the address of a mapped page, else EFAULT', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x10000, 0x30000);
    const f = e.createFolio({ number: 0x100, order: 4, index: linearPageIndex(vma, 0x20000) });
    mm.map(0x20000 + 2 * P, { count: 3, entry: { kind: 'present', number: 0x102 } });
    mm.map(0x20000 + 8 * P, { entry: { kind: 'migration-write', number: 0x108 } });
    const page = (p: number) => referencePageMappedInVma(e, mm, vma, folioKey(f, 0, 'range', p));
    expect([0, 2, 3, 4, 5, 8].map(page)).toEqual([EFAULT, 0x22000, 0x23000, 0x24000, EFAULT, EFAULT]);
    expect(referencePageMappedInVma(e, mm, vma, folioKey(f, PVMW_MIGRATION, 'identity', 3))).toBe(0x23000); // flags → PVMW_SYNC
    expect(referencePageMappedInVma(e, mm, vma, folioKey(f))).toBe(EFAULT); // default: the first page
    expect(referencePageMappedInVma(e, mm, vma, pfnKey(0x104, 1, linearPageIndex(vma, 0x24000)))).toBe(0x24000);
    // A page outside the VMA: vma_address is -EFAULT.
    const outside = space(e, 0x40000, 0x41000);
    expect(referencePageMappedInVma(e, outside.mm, outside.vma, folioKey(f, 0, 'range', 2))).toBe(EFAULT);
    expectPvmwError(() => referencePageMappedInVma(e, mm, vma, pfnKey(0x104, 2, linearPageIndex(vma, 0x24000))), 'BAD_RANGE', 'nrPages');
  });
});

describe('D4: injected races take the kernel\'s re-check branches', () => {
  const hooks = (mm: Mm) => typeof (mm as unknown as { splitPmd?: unknown }).splitPmd === 'function';
  const run = (e: Engine, mm: Mm, vma: Vma, key: WalkKey, inject: Injection[]) => referenceWalk(e, mm, vma, key, { inject });

  /** A fresh engine with an order-4 folio PTE-mapped at 0x400000 (its pages from `first` on). */
  function ptes(first = 0) {
    const e = engine();
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const f = e.createFolio({ number: 0x2000, order: 4, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000 + first * P, { count: 16 - first, entry: { kind: 'present', number: 0x2000 + first } });
    return { e, mm, vma, f };
  }

  it.runIf(hooks(engine().createMm()))('§1.5 step 5e: a huge PMD split between the lockless read and the lock → PTE level', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const thp = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { level: 'pmd', entry: { kind: 'present', number: 0x1000 } });
    const r = run(e, mm, vma, folioKey(thp), [{ point: 'pmd-huge-read', change: 'split-pmd' }]);
    expect(r.matches).toHaveLength(512);
    expect(r.matches.every((m, k) => m.level === 'pte' && m.address === 0x400000 + k * P && m.lock.kind === 'pte' && m.lock.table === tableOf(mm, 0x400000, 'pte'))).toBe(true);
    expect(r.counters.restarts).toBe(0);
    // A PMD migration entry split under us becomes 512 migration PTEs.
    const mig = e.createFolio({ number: 0x1200, order: 9, index: linearPageIndex(vma, 0x600000) });
    mm.map(0x600000, { level: 'pmd', entry: { kind: 'migration-write', number: 0x1200 } });
    expect(run(e, mm, vma, folioKey(mig, PVMW_MIGRATION), [{ point: 'pmd-huge-read', change: 'split-pmd' }]).matches.map((m) => m.level))
      .toEqual(new Array(512).fill('pte'));
  });

  it.runIf(hooks(engine().createMm()))('§1.5 step 5f: a device-private PMD split before the lock → device-private PTEs', () => {
    const e = engine();
    const dev = e.addDeviceMemory();
    const { mm, vma } = space(e, 0x200000, 0x800000);
    const dthp = e.createFolio({ number: dev.base + 512, order: 9, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { level: 'pmd', entry: { kind: 'device-private-write', number: dev.base + 512 } });
    const r = run(e, mm, vma, folioKey(dthp, PVMW_SYNC), [{ point: 'pmd-device-read', change: 'split-pmd' }]);
    expect(r.matches).toHaveLength(512);
    expect(r.matches.every((m) => m.level === 'pte' && m.lock.kind === 'pte')).toBe(true);
  });

  it.runIf(hooks(engine().createMm()))('§1.5 step 5g: the PTE table freed before map_pte → restart, none PMD; replaced → the new table', () => {
    for (const flags of [0, PVMW_SYNC]) {
      const freed = ptes();
      const r = run(freed.e, freed.mm, freed.vma, folioKey(freed.f, flags), [{ point: 'map-pte', change: 'free-pte-table' }]);
      expect(r.matches).toEqual([]);
      expect(r.counters.restarts).toBe(1);
      const moved = ptes();
      const old = tableOf(moved.mm, 0x400000, 'pte');
      const m = run(moved.e, moved.mm, moved.vma, folioKey(moved.f, flags), [{ point: 'map-pte', change: 'replace-pte-table' }]);
      expect(m.matches).toHaveLength(16);
      expect(m.matches.every((x) => x.lock.table === tableOf(moved.mm, 0x400000, 'pte'))).toBe(true);
      expect(tableOf(moved.mm, 0x400000, 'pte')).not.toBe(old);
      expect(m.counters.restarts).toBe(0);
    }
  });

  it.runIf(hooks(engine().createMm()))('§1.4 map_pte step 4: the PMD changed before the lock → map again (or restart if the table is gone)', () => {
    const freed = ptes();
    const r = run(freed.e, freed.mm, freed.vma, folioKey(freed.f), [{ point: 'map-pte-lock', change: 'free-pte-table' }]);
    expect(r).toMatchObject({ matches: [], counters: { restarts: 1 } });
    const moved = ptes();
    const m = run(moved.e, moved.mm, moved.vma, folioKey(moved.f), [{ point: 'map-pte-lock', change: 'replace-pte-table' }]);
    expect(m.matches).toHaveLength(16);
    expect(m.matches[0].lock.table).toBe(tableOf(moved.mm, 0x400000, 'pte'));
    expect(m.counters.restarts).toBe(0);
    // With PVMW_SYNC there is no lockless step: the injection point is never reached.
    const sync = ptes();
    const before = tableOf(sync.mm, 0x400000, 'pte');
    expect(run(sync.e, sync.mm, sync.vma, folioKey(sync.f, PVMW_SYNC), [{ point: 'map-pte-lock', change: 'free-pte-table' }]).matches).toHaveLength(16);
    expect(tableOf(sync.mm, 0x400000, 'pte')).toBe(before);
  });

  it.runIf(hooks(engine().createMm()))('§1.5 step 9.iv: the PMD changed before next_pte takes the lock → restart', () => {
    // Page 0 is unmapped: map_pte's pre-filter fails without locking, next_pte finds page 1 and locks lazily.
    const freed = ptes(1);
    const r = run(freed.e, freed.mm, freed.vma, folioKey(freed.f), [{ point: 'next-pte-lock', change: 'free-pte-table' }]);
    expect(r).toMatchObject({ matches: [], counters: { restarts: 1 } });
    const moved = ptes(1);
    const m = run(moved.e, moved.mm, moved.vma, folioKey(moved.f), [{ point: 'next-pte-lock', change: 'replace-pte-table' }]);
    expect(addrs(m)).toEqual(Array.from({ length: 15 }, (_, k) => 0x401000 + k * P));
    expect(m.matches[0].lock.table).toBe(tableOf(moved.mm, 0x400000, 'pte'));
    expect(m.counters.restarts).toBe(1);
    // Without the race the same walk locks once and matches the same 15 PTEs.
    const calm = ptes(1);
    expect(addrs(referenceWalk(calm.e, calm.mm, calm.vma, folioKey(calm.f)))).toEqual(addrs(m));
  });

  it.runIf(hooks(engine().createMm()))('D4 nth: the second arrival at map_pte (after a table crossing) replaces the second table', () => {
    const e = engine();
    const { mm, vma } = space(e, 0x100000, 0x600000);
    const f = e.createFolio({ number: 0x1000, order: 9, index: linearPageIndex(vma, 0x100000) });
    mm.map(0x100000, { count: 512, entry: { kind: 'present', number: 0x1000 } });
    const first = tableOf(mm, 0x100000, 'pte');
    const second = tableOf(mm, 0x200000, 'pte');
    const r = run(e, mm, vma, folioKey(f), [{ point: 'map-pte', change: 'replace-pte-table', nth: 2 }]);
    expect(r.matches).toHaveLength(512);
    expect(tableOf(mm, 0x100000, 'pte')).toBe(first);
    expect(tableOf(mm, 0x200000, 'pte')).not.toBe(second);
    expect(r.matches[255].lock.table).toBe(first);
    expect(r.matches[256].lock.table).toBe(tableOf(mm, 0x200000, 'pte'));
  });
});

describe('Bad input: PvmwError, engine unchanged', () => {
  function world() {
    const e = engine();
    const dev = e.addDeviceMemory();
    const { mm, vma } = space(e, 0x10000, 0x30000);
    const f = e.createFolio({ number: 0x100, order: 4, index: linearPageIndex(vma, 0x20000) });
    mm.map(0x20000, { count: 16, entry: { kind: 'present', number: 0x100 } });
    const other = space(e, 0x10000, 0x30000);
    return { e, mm, vma, f, other, dev };
  }
  const state = (w: ReturnType<typeof world>) => JSON.stringify([w.mm.stats(), w.e.memoryUsage().tables, w.mm.translate(0x20000).steps, w.e.folio(w.f)]);

  const cases: [string, (w: ReturnType<typeof world>) => unknown, string, ...string[]][] = [
    ['a VMA of another mm', (w) => referenceWalk(w.e, w.mm, w.other.vma, folioKey(w.f)), 'NO_VMA'],
    ['a copy of the VMA', (w) => referenceWalk(w.e, w.mm, { ...w.vma }, folioKey(w.f)), 'NO_VMA'],
    ['a removed VMA', (w) => { const v = w.mm.addVma({ start: 0x40000, end: 0x50000 }); w.mm.removeVma(v); return referenceWalk(w.e, w.mm, v, folioKey(w.f)); }, 'NO_VMA'],
    ['nrPages 0', (w) => referenceWalk(w.e, w.mm, w.vma, pfnKey(0x100, 0, 0x20)), 'BAD_RANGE', 'nrPages'],
    ['nrPages 1.5', (w) => referenceWalk(w.e, w.mm, w.vma, pfnKey(0x100, 1.5, 0x20)), 'BAD_RANGE', '1.5'],
    ['a negative number', (w) => referenceWalk(w.e, w.mm, w.vma, pfnKey(-1, 1, 0x20)), 'BAD_RANGE', '-1'],
    ['flag bit 0x8', (w) => referenceWalk(w.e, w.mm, w.vma, pfnKey(0x100, 1, 0x20, 0x8)), 'BAD_SETTING', '0x8'],
    ['PVMW_PGTABLE_CROSSED as input', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f, PVMW_PGTABLE_CROSSED | PVMW_SYNC)), 'BAD_SETTING', '0x10000'],
    ['PVMW_DEVICE_PRIVATE on newest', (w) => referenceWalk(w.e, w.mm, w.vma, pfnKey(0x100, 1, 0x20, PVMW_DEVICE_PRIVATE)), 'BAD_SETTING', 'series'],
    ['PVMW_DEVICE_PRIVATE on a folio key', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f, PVMW_DEVICE_PRIVATE)), 'BAD_SETTING', 'folio'],
    ['page 16 of an order-4 folio', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f, 0, 'range', 16)), 'BAD_RANGE', '16'],
    ['page -1', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f, 0, 'identity', -1)), 'BAD_RANGE', '-1'],
    ['an address below the VMA', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f), { address: 0xf000 }), 'BAD_ADDRESS', '0xf000'],
    ['an address at the VMA end', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f), { address: 0x30000 }), 'BAD_ADDRESS', '0x30000'],
    ['an unaligned address', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f), { address: 0x20010 }), 'BAD_ADDRESS', '0x20010'],
    ['a folio that does not exist', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(0x777)), 'NO_FOLIO', '0x777'],
    ['an unknown strategy', (w) => referenceWalk(w.e, w.mm, w.vma, { kind: 'folio', folio: w.f, strategy: 'guess' as never, flags: 0 }), 'BAD_SETTING', 'guess'],
    ['an unknown key kind', (w) => referenceWalk(w.e, w.mm, w.vma, { kind: 'page' } as never), 'BAD_SETTING', 'page'],
    ['a change a point does not take', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f), { inject: [{ point: 'map-pte', change: 'split-pmd' }] }), 'BAD_SETTING', 'split-pmd'],
    ['an unknown injection point', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f), { inject: [{ point: 'later' as never, change: 'split-pmd' }] }), 'BAD_SETTING', 'later'],
    ['nth 0', (w) => referenceWalk(w.e, w.mm, w.vma, folioKey(w.f), { inject: [{ point: 'map-pte', change: 'free-pte-table', nth: 0 }] }), 'BAD_SETTING', 'nth'],
    ['page_mapped_in_vma on a VMA of another mm', (w) => referencePageMappedInVma(w.e, w.mm, w.other.vma, folioKey(w.f, 0, 'range', 1)), 'NO_VMA'],
  ];
  for (const [what, f, code, ...inMessage] of cases) {
    it(`bad input: ${what} → ${code}`, () => {
      const w = world();
      const before = state(w);
      expectPvmwError(() => f(w), code as never, ...inMessage);
      expect(state(w)).toBe(before);
      expect(referenceWalk(w.e, w.mm, w.vma, folioKey(w.f)).matches).toHaveLength(16); // still answers correctly
    });
  }

  it('D2: a folio-keyed walk on newest or v6.14 in the offset model refuses (BAD_SETTING), in the pfn model runs', () => {
    for (const semantics of ['newest', 'v6.14', 'series'] as const) {
      for (const deviceModel of ['pfn', 'offset'] as const) {
        const e = engine({ semantics, deviceModel });
        const { mm, vma } = space(e, 0x10000, 0x20000);
        const f = e.createFolio({ number: 5, index: linearPageIndex(vma, 0x10000) });
        mm.map(0x10000, { entry: { kind: 'present', number: 5 } });
        for (const strategy of ['range', 'identity'] as const) {
          const walk = () => referenceWalk(e, mm, vma, folioKey(f, 0, strategy));
          if (semantics !== 'series' && deviceModel === 'offset') expectPvmwError(walk, 'BAD_SETTING', semantics, 'offset');
          else expect(addrs(walk())).toEqual([0x10000]);
        }
        // pfn-keyed walks run everywhere.
        expect(addrs(referenceWalk(e, mm, vma, pfnKey(5, 1, linearPageIndex(vma, 0x10000))))).toEqual([0x10000]);
      }
    }
  });
});

describe('D2 property: folio range = folio identity = the pfn-keyed walk (series: with PVMW_DEVICE_PRIVATE) = an oracle', () => {
  // Random layouts of RAM and device-private folios in one anon VMA, PTE-mapped (with gaps that make them cross
  // PMD boundaries, pages in any entry kind) or PMD-mapped. Each folio's range holds only its own entries, so the
  // oracle is simply: the folio's pages whose entry kind matches the flags (§2), in address order.
  type Item = { device: boolean; order: number; pmd: boolean; skip: number; kinds: number[] };
  const RAM_KINDS = ['none', 'present', 'migration-read', 'migration-write', 'device-exclusive', 'protnone'] as const;
  const DEV_KINDS = ['none', 'device-private-read', 'device-private-write', 'migration-device-private-read', 'migration-device-private-write'] as const;
  const item: fc.Arbitrary<Item> = fc.record({
    device: fc.boolean(),
    order: fc.integer({ min: 0, max: 9 }),
    pmd: fc.boolean(),
    skip: fc.integer({ min: 0, max: 600 }),
    kinds: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 512, maxLength: 512 }),
  });
  const settings = fc.constantFrom(
    { semantics: 'series', deviceModel: 'offset' },
    { semantics: 'series', deviceModel: 'pfn' },
    { semantics: 'newest', deviceModel: 'pfn' },
  ) as fc.Arbitrary<{ semantics: 'series' | 'newest'; deviceModel: 'offset' | 'pfn' }>;

  it('D2, §1.4, §2: every folio, every page key, flags 0 / SYNC / MIGRATION / both', () => {
    fc.assert(
      fc.property(settings, fc.array(item, { minLength: 1, maxLength: 6 }), ({ semantics, deviceModel }, items) => {
        const e = engine({ semantics, deviceModel, deviceChunkPages: 8192 });
        const dev = e.addDeviceMemory();
        const ns = deviceModel === 'offset' ? 'device-private' : 'pfn';
        const base = 0x40000000;
        const { mm, vma } = space(e, base, base + 64 * 2 ** 20);
        let cursor = base;
        let ram = 0x10000;
        let devNext = dev.base;
        const placed: { id: number; addr: number; pmd: boolean; nr: number; number: number; device: boolean; kinds: string[] }[] = [];
        for (const it of items) {
          const pmd = it.pmd && it.order === 9;
          const nr = 2 ** it.order;
          cursor = pmd ? Math.ceil((cursor + it.skip * P) / PMD_SIZE) * PMD_SIZE : cursor + it.skip * P;
          const align = (n: number) => Math.ceil(n / nr) * nr;
          const number = it.device ? align(devNext) : align(ram);
          if (it.device) devNext = number + nr;
          else ram = number + nr;
          const id = e.createFolio({ namespace: it.device ? ns : 'pfn', number, order: it.order, index: linearPageIndex(vma, cursor) });
          const table = it.device ? DEV_KINDS : RAM_KINDS;
          let kinds = it.kinds.slice(0, pmd ? 1 : nr).map((k) => table[k % table.length] as string);
          if (pmd) kinds = [kinds[0] === 'none' || kinds[0] === 'device-exclusive' || kinds[0] === 'protnone' || kinds[0] === 'device-private-read' ? (it.device ? 'device-private-write' : 'present') : kinds[0]];
          if (semantics === 'newest') kinds = kinds.map((k) => k.replace('migration-device-private', 'migration'));
          for (const [k, kind] of kinds.entries()) {
            if (kind === 'none') continue;
            const n = number + k;
            const entry: EntrySpec = kind === 'present' ? { kind: 'present', number: n }
              : kind === 'protnone' ? { kind: 'present', number: n, protnone: true }
              : { kind: kind as never, number: n };
            mm.map(cursor + k * P, pmd ? { level: 'pmd', entry } : { entry });
          }
          placed.push({ id, addr: cursor, pmd, nr, number, device: it.device, kinds });
          cursor += nr * P;
        }
        const matchesKind = (kind: string, flags: number) =>
          flags & PVMW_MIGRATION ? kind.startsWith('migration')
            : ['present', 'protnone', 'device-exclusive', 'device-private-read', 'device-private-write'].includes(kind);
        for (const f of placed) {
          const dp = semantics === 'series' && f.device ? PVMW_DEVICE_PRIVATE : 0;
          for (const flags of [0, PVMW_SYNC, PVMW_MIGRATION, PVMW_MIGRATION | PVMW_SYNC]) {
            const want = f.pmd ? (matchesKind(f.kinds[0], flags) ? [f.addr] : [])
              : f.kinds.flatMap((k, i) => (matchesKind(k, flags) ? [f.addr + i * P] : []));
            const range = referenceWalk(e, mm, vma, folioKey(f.id, flags, 'range'));
            const identity = referenceWalk(e, mm, vma, folioKey(f.id, flags, 'identity'));
            const pfn = referenceWalk(e, mm, vma, pfnKey(f.number, f.nr, linearPageIndex(vma, f.addr), flags | dp));
            expect(addrs(range)).toEqual(want);
            expect(identity.matches).toEqual(range.matches);
            expect(pfn.matches.map((m) => ({ ...m, flags: m.flags & ~PVMW_DEVICE_PRIVATE }))).toEqual(range.matches);
            if (range.matches.length > 0) expect(range.matches.every((m) => m.level === (f.pmd ? 'pmd' : 'pte'))).toBe(true);
            // Page keys (the page_mapped_in_vma case): three pages of the folio.
            for (const p of new Set([0, f.nr >> 1, f.nr - 1])) {
              const kind = f.pmd ? f.kinds[0] : f.kinds[p];
              const pageWant = matchesKind(kind, flags) ? [f.addr + p * P] : [];
              expect(addrs(referenceWalk(e, mm, vma, folioKey(f.id, flags, 'range', p)))).toEqual(pageWant);
              expect(addrs(referenceWalk(e, mm, vma, folioKey(f.id, flags, 'identity', p)))).toEqual(pageWant);
              expect(addrs(referenceWalk(e, mm, vma, pfnKey(f.number + p, 1, linearPageIndex(vma, f.addr) + p, flags | dp)))).toEqual(pageWant);
            }
          }
          const pmiv = referencePageMappedInVma(e, mm, vma, folioKey(f.id, 0, 'range', 0));
          expect(pmiv).toBe(matchesKind(f.kinds[0], 0) ? f.addr : EFAULT);
        }
      }),
      { numRuns: 40 },
    );
  });
});
