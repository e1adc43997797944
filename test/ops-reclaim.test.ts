// The other reclaim-side callers of page_vma_mapped_walk (spec §5: folio_referenced_one, page_mkclean_one /
// folio_mkclean, mapping_wrprotect_range_one, pfn_mkclean_range, page_idle_clear_pte_refs_one, damon_folio_mkold /
// young_one), and every caller incl. try_to_unmap through each walk interface (D2) and on pfn aliases (D1).
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex, type Mm } from '../src/index.js';
import { leavesIn, presentRaw, writeLeaves } from '../src/mm/leaf.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { TTU_SPLIT_HUGE_PMD, TTU_SYNC, tryToUnmap } from '../src/mm/try-to-unmap.js';
import { folioReferenced } from '../src/mm/folio-referenced.js';
import { folioMkclean, mappingWrprotectRange, pfnMkcleanRange } from '../src/mm/mkclean.js';
import { damonFolioMkold, damonFolioYoung, pageIdleClearPteRefs, pageIdleMark, pageIdleRead } from '../src/mm/page-idle.js';
import { folioAge } from '../src/mm/folio-age.js';
import { expectPvmwError } from './helpers.js';
import { engineSnapshot, expectClean } from './ops-helpers.js';
import { FILE, IFACES, P, anon, engine, pte, solo, space, swapAt, type Iface } from './ops-reclaim-helpers.js';

describe('§5 folio_referenced_one', () => {
  it('§5 young bits are cleared in every VMA; referenced counts the VMAs; vm_flags are OR-ed; a second look finds nothing', () => {
    const { e, a, b, F } = space();
    const r = folioReferenced(e, F);
    expect(r.referenced).toBe(2);
    expect(r.mlocked).toBe(false);
    expect(r.vmFlags).toMatchObject({ read: true, write: true, shared: false, locked: false });
    for (const mm of [a, b]) for (const l of leavesIn(e, mm, 0x400000, 0x404000)) expect(l.entry.bits.young).toBe(false);
    // Dirty and write bits stay.
    expect(a.entryAt(0x403000).entry.bits).toMatchObject({ write: true, dirty: true });
    expect(e.folio(F).mapcount).toBe(6);
    expect(folioReferenced(e, F).referenced).toBe(0);
    expectClean(e);
  });

  it('§5 a PMD mapping: young cleared on the PMD', () => {
    const { e, a, T } = space();
    expect(folioReferenced(e, T).referenced).toBe(1);
    expect(a.entryAt(0x600000).entry.bits).toMatchObject({ young: false, dirty: true, write: true });
    expectClean(e);
  });

  it('§5 VM_LOCKED: a fully mapped folio is mlocked again, nothing cleared, VM_LOCKED reported and the walk stops', () => {
    const e = engine();
    const a = e.createMm();
    const b = e.createMm();
    const va = a.addVma({ start: 0x400000, end: 0x500000, flags: { locked: true } });
    b.addVma({ start: 0x400000, end: 0x500000 });
    const f = anon(e, { number: 0x1000, order: 1, index: linearPageIndex(va, 0x400000) });
    a.map(0x400000, { count: 2, ...pte(0x1000, { young: true }) });
    b.map(0x400000, { count: 2, ...pte(0x1000, { young: true }) });
    const r = folioReferenced(e, f);
    expect(r).toMatchObject({ referenced: 0, mlocked: true, vmFlags: { locked: true } });
    expect(e.folio(f).flags.mlocked).toBe(true);
    // Neither the locked VMA nor the later one (the walk stopped) had young cleared.
    expect(a.entryAt(0x400000).entry.bits.young).toBe(true);
    expect(b.entryAt(0x400000).entry.bits.young).toBe(true);
    expectClean(e);
  });

  it('§1.2 PVMW_PGTABLE_CROSSED: a folio whose PTEs span two PTE tables in a VM_LOCKED VMA is not mlocked', () => {
    const { e, mm, vma } = solo({ flags: { locked: true } });
    const f = anon(e, { number: 0x1000, order: 2, index: linearPageIndex(vma, 0x5fe000) });
    mm.map(0x5fe000, { count: 4, ...pte(0x1000, { young: true }) });
    expect(folioReferenced(e, f)).toMatchObject({ referenced: 0, mlocked: false });
    expect(e.folio(f).flags.mlocked).toBe(false);
    // The same folio within one table is mlocked.
    const g = anon(e, { number: 0x1004, order: 2, index: linearPageIndex(vma, 0x700000) });
    mm.map(0x700000, { count: 4, ...pte(0x1004) });
    expect(folioReferenced(e, g).mlocked).toBe(true);
    expectClean(e);
  });

  it('§2 notes: device-exclusive entries count as mappings but are old', () => {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { entry: { kind: 'device-exclusive', number: 0x1000 } });
    const raw = mm.entryAt(0x400000).raw;
    expect(folioReferenced(e, f).referenced).toBe(0);
    expect(mm.entryAt(0x400000).raw).toEqual(raw);
    expectClean(e);
  });

  it('§5 PG_young left by page_idle counts once (and is cleared); PG_idle is cleared when a PTE was young', () => {
    const { e, F } = space();
    pageIdleMark(e, F); // the young PTEs are made old: PG_young and PG_idle set
    expect(folioAge(e).isYoung(F)).toBe(true);
    expect(folioReferenced(e, F).referenced).toBe(1);
    expect(folioAge(e).isYoung(F)).toBe(false);
    expect(folioReferenced(e, F).referenced).toBe(0);
    expectClean(e);
  });
});

describe('§5 page_mkclean_one / folio_mkclean, pfn_mkclean_range, mapping_wrprotect_range_one', () => {
  it('§5 folio_mkclean cleans and write-protects only mappings in VM_SHARED VMAs and returns how many', () => {
    const { e, a, b, C } = space();
    const privateBefore = leavesIn(e, b, 0x20000000, 0x20004000).map((l) => l.raw);
    expect(folioMkclean(e, C)).toBe(4);
    for (const l of leavesIn(e, a, 0x10000000, 0x10004000)) expect(l.entry.bits).toMatchObject({ write: false, dirty: false, young: true });
    expect(leavesIn(e, b, 0x20000000, 0x20004000).map((l) => l.raw)).toEqual(privateBefore);
    expect(e.folio(C).mapcount).toBe(8);
    expect(folioMkclean(e, C)).toBe(0);
    expectClean(e);
  });

  it('§5 folio_mkclean: an anon folio has no folio_mapping and gives 0; a device-exclusive entry is skipped', () => {
    const { e, F } = space();
    const before = engineSnapshot(e);
    expect(folioMkclean(e, F)).toBe(0);
    expect(engineSnapshot(e)).toBe(before);
    const mm = e.createMm();
    mm.addVma({ start: 0x400000, end: 0x500000, file: 9, flags: { shared: true } });
    const f = e.createFolio({ number: 0x5000, file: 9, index: 0 });
    mm.map(0x400000, { entry: { kind: 'device-exclusive', number: 0x5000 } });
    expect(folioMkclean(e, f)).toBe(0);
    expectClean(e);
  });

  it('§5 folio_mkclean on a shared file THP cleans the PMD', () => {
    const { e, mm } = solo({ file: FILE, flags: { shared: true, thp: true } });
    const f = e.createFolio({ number: 0x2000, order: 9, file: FILE, index: 0x200 });
    mm.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty: true }) });
    expect(folioMkclean(e, f)).toBe(1);
    expect(mm.entryAt(0x600000)).toMatchObject({ level: 'pmd', entry: { bits: { write: false, dirty: false } } });
    expectClean(e);
  });

  it('§5 pfn_mkclean_range: a raw pfn range in one shared VMA; only entries of the range change; a private VMA gives 0', () => {
    const { e, a, b } = space();
    const vmaA = a.vmas.find(0x10000000)!;
    expect(pfnMkcleanRange(e, a, vmaA, 0x4001, 2, 1)).toBe(2);
    expect([0, 1, 2, 3].map((i) => a.entryAt(0x10000000 + i * P).entry.bits.write)).toEqual([true, false, false, true]);
    const before = engineSnapshot(e);
    expect(pfnMkcleanRange(e, b, b.vmas.find(0x20000000)!, 0x4000, 4, 0)).toBe(0);
    expect(engineSnapshot(e)).toBe(before);
    expectPvmwError(() => pfnMkcleanRange(e, a, vmaA, 0x4000, 4, 0x1000), 'BAD_RANGE', 'pfn_mkclean_range');
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§5 mapping_wrprotect_range: the raw range over the file\'s i_mmap (no folio), every shared VMA, one count', () => {
    const { e, a, b } = space();
    const c = e.createMm();
    c.addVma({ start: 0x30000000, end: 0x30100000, file: FILE, flags: { shared: true } });
    c.map(0x30000000, { count: 4, ...pte(0x4000, { write: true }) });
    const privateBefore = leavesIn(e, b, 0x20000000, 0x20004000).map((l) => l.raw);
    expect(mappingWrprotectRange(e, FILE, 0, 3, 0x4000)).toBe(6);
    expect([0, 1, 2, 3].map((i) => a.entryAt(0x10000000 + i * P).entry.bits.write)).toEqual([false, false, false, true]);
    expect([0, 1, 2, 3].map((i) => c.entryAt(0x30000000 + i * P).entry.bits.write)).toEqual([false, false, false, true]);
    expect(leavesIn(e, b, 0x20000000, 0x20004000).map((l) => l.raw)).toEqual(privateBefore);
    expect(mappingWrprotectRange(e, FILE, 0, 3, 0x4000)).toBe(0);
    expect(mappingWrprotectRange(e, 99, 0, 3, 0x4000)).toBe(0);
    expectClean(e);
  });
});

describe('§5 page_idle_clear_pte_refs_one, damon_folio_mkold_one / damon_folio_young_one', () => {
  /** Make the PTE at addr young again (a CPU access). */
  function touch(e: Engine, mm: Mm, addr: number): void {
    const d = mm.entryAt(addr).entry;
    writeLeaves(e, mm, [{ va: addr, level: 'pte', raw: presentRaw('pte', d.number!, { ...d.present!, young: true }) }]);
  }

  it('PG_idle / PG_young do not outlive the folio: the allocator clears them when it frees it (a new folio at that pfn starts clear)', () => {
    const e = new Engine({ ramPages: 1 << 12 });
    const alloc = opsState(e).alloc;
    const id = alloc.alloc({ order: 0, anonVma: 0 })!;
    folioAge(e).setIdle(id);
    folioAge(e).setYoung(id);
    alloc.free(id);
    const again = alloc.alloc({ order: 0, anonVma: 0 })!;
    expect(again).toBe(id); // the freed block is reused first
    expect([folioAge(e).isIdle(again), folioAge(e).isYoung(again)]).toEqual([false, false]);
  });

  it('§5 page_idle: marking clears young bits (folio young, then idle); an access makes the read say not idle', () => {
    const { e, a, b, F } = space();
    expect(pageIdleClearPteRefs(e, F)).toBe(true);
    expect(folioAge(e).isYoung(F)).toBe(true);
    pageIdleMark(e, F);
    expect(folioAge(e).isIdle(F)).toBe(true);
    for (const mm of [a, b]) for (const l of leavesIn(e, mm, 0x400000, 0x404000)) expect(l.entry.bits.young).toBe(false);
    expect(pageIdleRead(e, F)).toBe(true);
    touch(e, b, 0x401000);
    expect(pageIdleRead(e, F)).toBe(false);
    expect(folioAge(e).isIdle(F)).toBe(false);
    expect(b.entryAt(0x401000).entry.bits.young).toBe(false);
    expectClean(e);
  });

  it('§5 DAMON: mkold clears young and marks the folio young (it was) and idle; young reports later accesses', () => {
    const { e, a, T } = space();
    damonFolioMkold(e, T);
    expect(a.entryAt(0x600000).entry.bits.young).toBe(false);
    expect([folioAge(e).isIdle(T), folioAge(e).isYoung(T)]).toEqual([true, true]);
    expect(damonFolioYoung(e, T)).toBe(false);
    const d = a.entryAt(0x600000).entry;
    writeLeaves(e, a, [{ va: 0x600000, level: 'pmd', raw: presentRaw('pmd', d.number!, { ...d.present!, young: true }) }]);
    expect(damonFolioYoung(e, T)).toBe(true);
    // Not idle counts as accessed too.
    damonFolioMkold(e, T);
    folioAge(e).setIdle(T, false);
    expect(damonFolioYoung(e, T)).toBe(true);
    expectClean(e);
  });

  it('§5 DAMON: an unmapped folio is only marked idle; device-exclusive entries are old; a locked file folio is skipped', () => {
    const { e, mm, vma } = solo();
    const free = anon(e, { number: 0x1000, index: 0 });
    expect(damonFolioYoung(e, free)).toBe(true);
    damonFolioMkold(e, free);
    expect(damonFolioYoung(e, free)).toBe(false);
    const dx = anon(e, { number: 0x1001, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { entry: { kind: 'device-exclusive', number: 0x1001 } });
    damonFolioMkold(e, dx);
    expect([folioAge(e).isIdle(dx), folioAge(e).isYoung(dx)]).toEqual([true, false]);
    expect(damonFolioYoung(e, dx)).toBe(false);
    mm.addVma({ start: 0x800000, end: 0x900000, file: FILE });
    const file = e.createFolio({ number: 0x1002, file: FILE, index: 0, flags: { locked: true } });
    mm.map(0x800000, pte(0x1002, { young: true }));
    damonFolioMkold(e, file);
    expect(mm.entryAt(0x800000).entry.bits.young).toBe(true);
    expect(folioAge(e).isIdle(file)).toBe(false);
    expect(pageIdleClearPteRefs(e, file)).toBe(false);
    expectClean(e);
  });
});

describe('D2: every caller gives the same end state through each walk interface', () => {
  const callers: [string, (s: ReturnType<typeof space>) => unknown][] = [
    ['try_to_unmap anon', (s) => tryToUnmap(s.e, s.F, { flags: TTU_SYNC })],
    ['try_to_unmap THP', (s) => tryToUnmap(s.e, s.T, { flags: TTU_SPLIT_HUGE_PMD })],
    ['try_to_unmap lazyfree', (s) => tryToUnmap(s.e, s.L)],
    ['try_to_unmap file', (s) => tryToUnmap(s.e, s.C)],
    ['folio_referenced', (s) => [s.F, s.T, s.L, s.C].map((f) => folioReferenced(s.e, f))],
    ['folio_mkclean', (s) => folioMkclean(s.e, s.C)],
    ['page_idle', (s) => [s.F, s.T, s.C].map((f) => (pageIdleMark(s.e, f), pageIdleRead(s.e, f)))],
    ['damon', (s) => [s.F, s.T, s.C].map((f) => (damonFolioMkold(s.e, f), damonFolioYoung(s.e, f)))],
  ];
  for (const [name, run] of callers) {
    it(`§5 ${name}: pfn, folio-range and folio-identity agree`, () => {
      const results = IFACES.map((iface) => {
        const s = space(iface);
        const value = run(s);
        expectClean(s.e);
        return { value: JSON.stringify(value), state: engineSnapshot(s.e) };
      });
      expect(results[1]).toEqual(results[0]);
      expect(results[2]).toEqual(results[0]);
    });
  }
});

describe('D1/D2: a RAM folio and a device-private folio with the same number (offset model)', () => {
  /** Child (visited first) maps device offset N by a DP-W entry where the parent maps RAM pfn N. */
  function alias(semantics: 'newest' | 'series', iface: Iface) {
    const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096, deviceModel: 'offset', semantics });
    setOpsPolicy(e, { walkInterface: iface });
    e.addDeviceMemory();
    const N = 0x200;
    const child = e.createMm();
    const parent = e.createMm();
    const cv = child.addVma({ start: 0x400000, end: 0x500000 });
    parent.addVma({ start: 0x400000, end: 0x500000 });
    const index = linearPageIndex(cv, 0x450000);
    const dev = e.createFolio({ namespace: 'device-private', number: N, anonVma: 1, index, flags: { swapbacked: true } });
    const ram = anon(e, { number: N, index });
    e.folios.setTag(ram, 0, 1, 0x1111);
    child.map(0x450000, { entry: { kind: 'device-private-write', number: N } });
    parent.map(0x450000, pte(N, { write: true }));
    return { e, child, parent, dev, ram };
  }

  it('series: every interface swaps out only the RAM folio\'s mapping and leaves the device entry alone', () => {
    const states = IFACES.map((iface) => {
      const { e, child, parent, dev, ram } = alias('series', iface);
      expect(tryToUnmap(e, ram)).toBe(true);
      expect(child.entryAt(0x450000).entry.kind).toBe('device-private-write');
      expect(opsState(e).swap.tag(swapAt(parent, 0x450000).offset)).toBe(0x1111);
      expect(e.folio(dev).mapcount).toBe(1);
      expectClean(e);
      return engineSnapshot(e);
    });
    expect(states[1]).toBe(states[0]);
    expect(states[2]).toBe(states[0]);
  });

  it('newest, pfn-keyed: the walk for pfn N also matches the child\'s device entry of offset N, and try_to_unmap takes it (the D1 hazard)', () => {
    const { e, child, parent, dev, ram } = alias('newest', 'pfn');
    expect(tryToUnmap(e, ram)).toBe(false);
    // The false match was "unmapped": the device folio lost its mapping, the RAM folio kept its own.
    expect(child.entryAt(0x450000).entry.kind).toBe('swap');
    expect(e.folio(dev).mapcount).toBe(0);
    expect(parent.entryAt(0x450000).entry.kind).toBe('present');
    expectClean(e);
  });
});
