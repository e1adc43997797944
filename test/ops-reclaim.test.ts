// The reclaim-side callers of page_vma_mapped_walk (spec §5 rows folio_referenced_one, page_mkclean_one /
// folio_mkclean, mapping_wrprotect_range_one, pfn_mkclean_range, try_to_unmap_one, page_idle_clear_pte_refs_one,
// damon_folio_mkold_one / damon_folio_young_one; §6 rmap_walk) and what they do to entries, mapcounts, swap slots
// and tags (kernel-operations.md §2.4, §7.3, §12.2), through each walk interface (D2).
import { describe, expect, it } from 'vitest';
import { Engine, Mm, linearPageIndex, type PresentSpec, type VmaSpec } from '../src/index.js';
import { leavesIn, presentRaw, writeLeaves } from '../src/mm/leaf.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { TTU_IGNORE_MLOCK, TTU_SPLIT_HUGE_PMD, TTU_SYNC, tryToUnmap } from '../src/mm/try-to-unmap.js';
import { folioReferenced } from '../src/mm/folio-referenced.js';
import { folioMkclean, mappingWrprotectRange, pfnMkcleanRange } from '../src/mm/mkclean.js';
import { damonFolioMkold, damonFolioYoung, folioAge, pageIdleClearPteRefs, pageIdleMark, pageIdleRead } from '../src/mm/page-idle.js';
import type { WalkInterface } from '../src/rmap/rmap-walk.js';
import { expectPvmwError } from './helpers.js';

type Iface = WalkInterface;
const IFACES: Iface[] = ['pfn', 'folio-range', 'folio-identity'];
const P = 0x1000;
const FILE = 7;

function engine(iface: Iface = 'pfn'): Engine {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  setOpsPolicy(e, { walkInterface: iface });
  return e;
}

const pte = (number: number, bits: Omit<PresentSpec, 'kind' | 'number'> = {}) => ({ entry: { kind: 'present' as const, number, user: true, ...bits } });

/** An anon folio as a fault makes it (new-anon-rmap marks it swapbacked, §0.4); createFolio leaves it clear. */
function anon(e: Engine, spec: { number: number; order?: number; index: number }, swapbacked = true): number {
  return e.createFolio({ ...spec, anonVma: 1, flags: { swapbacked } });
}

/** One mm with one VMA [0x400000, 0x800000) (anon unless the spec names a file). */
function solo(spec: Partial<VmaSpec> = {}) {
  const e = engine();
  const mm = e.createMm();
  const vma = mm.addVma({ start: 0x400000, end: 0x800000, ...spec });
  return { e, mm, vma };
}

function ok(e: Engine): void {
  expect(e.checkInvariants().problems).toEqual([]);
}

/** Every entry of every mm, every folio (info and pages), the swap slots and the idle/young flags. */
function snapshot(e: Engine): string {
  const entries = e.allMms().map((mm) => leavesIn(e, mm, 0, e.geometry.taskSize).map((l) => [mm.id, l.va, l.level, l.raw.lo, l.raw.hi]));
  const age = folioAge(e);
  const folios = [...e.folios.all()].map((id) => {
    const f = e.folio(id);
    const pages = Array.from({ length: f.nrPages }, (_, p) => e.page(f.namespace, f.number + p));
    return { f, pages, idle: age.isIdle(id), young: age.isYoung(id) };
  });
  const swap = opsState(e).swap;
  const slots = Array.from({ length: 64 }, (_, i) => (swap.has(i + 1) ? [i + 1, swap.tag(i + 1), swap.count(i + 1)] : null)).filter(Boolean);
  return JSON.stringify({ entries, folios, slots });
}

/** The swap entry at addr: its offset and flags (fails the test if it is no swap entry). */
function swapAt(mm: Mm, addr: number) {
  const d = mm.entryAt(addr).entry;
  expect(d.kind).toBe('swap');
  return { offset: d.swap!.offset, exclusive: d.bits.exclusive, softDirty: d.bits.softDirty, uffdWp: d.bits.uffdWp };
}

/**
 * A space with a bit of everything (the three-interface tests run every caller on it):
 * - mm a, anon VMA [0x400000, 0x800000): an order-2 folio F at 0x400000 (pages 0-1 shared with mm b as after
 *   fork, read-only; pages 2-3 AnonExclusive, writable, dirty, young), a PMD-mapped THP T at 0x600000 (young,
 *   dirty, exclusive), an order-0 lazyfree folio L at 0x500000 (clean);
 * - mm b, anon VMA at the same place (pages 0-1 of F, young);
 * - file 7: an order-2 folio C at index 0, mapped in a shared VMA of a (writable, dirty, young) and a private
 *   VMA of b (read-only, young).
 */
function space(iface: Iface = 'pfn') {
  const e = engine(iface);
  const a = e.createMm();
  const b = e.createMm();
  const va = a.addVma({ start: 0x400000, end: 0x800000 });
  b.addVma({ start: 0x400000, end: 0x800000 });
  const F = anon(e, { number: 0x1000, order: 2, index: linearPageIndex(va, 0x400000) });
  e.folios.setTag(F, 0, 4, 0xa0);
  e.folios.setTag(F, 3, 1, 0xa3);
  a.map(0x400000, { count: 2, ...pte(0x1000, { young: true }) });
  a.map(0x402000, { count: 2, ...pte(0x1002, { write: true, dirty: true, young: true, softDirty: true }) });
  e.folios.setAnonExclusive(F, 2, 2, true);
  b.map(0x400000, { count: 2, ...pte(0x1000, { young: true }) });
  const T = e.createFolio({ number: 0x2000, order: 9, anonVma: 1, index: linearPageIndex(va, 0x600000) });
  e.folios.setTag(T, 0, 512, 0xb0);
  a.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty: true, young: true }) });
  e.folios.setAnonExclusive(T, 0, 512, true);
  const L = e.createFolio({ number: 0x3000, anonVma: 1, index: linearPageIndex(va, 0x500000), flags: { swapbacked: false } });
  a.map(0x500000, pte(0x3000, { young: true }));
  a.addVma({ start: 0x10000000, end: 0x10100000, file: FILE, flags: { shared: true } });
  b.addVma({ start: 0x20000000, end: 0x20100000, file: FILE });
  const C = e.createFolio({ number: 0x4000, order: 2, file: FILE, index: 0 });
  a.map(0x10000000, { count: 4, ...pte(0x4000, { write: true, dirty: true, young: true }) });
  b.map(0x20000000, { count: 4, ...pte(0x4000, { young: true }) });
  for (const id of [F, T, C]) e.folios.setFlags(id, { swapbacked: e.folio(id).anon, dirty: false });
  return { e, a, b, F, T, L, C };
}

describe('§5 try_to_unmap_one: anon folios go to swap (kernel-operations §12.2)', () => {
  it('§12.2 an order-0 AnonExclusive page becomes an exclusive swap entry whose slot holds the page tag; the folio is freed', () => {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, index: linearPageIndex(vma, 0x401000) });
    e.folios.setTag(f, 0, 1, 0xabc);
    e.folios.setAnonExclusive(f, 0, 1, true);
    mm.map(0x401000, pte(0x1000, { write: true, dirty: true, softDirty: true, uffdWp: false }));
    expect(tryToUnmap(e, f)).toBe(true);
    const s = swapAt(mm, 0x401000);
    expect(s).toMatchObject({ exclusive: true, softDirty: true, uffdWp: false });
    expect(opsState(e).swap.tag(s.offset)).toBe(0xabc);
    expect(opsState(e).swap.count(s.offset)).toBe(1);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§5 a page shared after fork: one slot per page, its count one per PTE, no exclusive bit; both mms swap', () => {
    const { e, a, b, F } = space();
    expect(tryToUnmap(e, F)).toBe(true);
    const offs = [0, 1, 2, 3].map((i) => swapAt(a, 0x400000 + i * P));
    expect(new Set(offs.map((o) => o.offset)).size).toBe(4);
    expect(offs.map((o) => o.exclusive)).toEqual([false, false, true, true]);
    expect(offs.map((o) => o.softDirty)).toEqual([false, false, true, true]);
    expect([0, 1].map((i) => swapAt(b, 0x400000 + i * P).offset)).toEqual([offs[0].offset, offs[1].offset]);
    const swap = opsState(e).swap;
    expect(offs.map((o) => [swap.tag(o.offset), swap.count(o.offset)])).toEqual([[0xa0, 2], [0xa0, 2], [0xa0, 1], [0xa3, 1]]);
    expect(e.folios.exists(F)).toBe(false);
    ok(e);
  });

  it('§5/§6.1 a PMD-mapped THP is split with TTU_SPLIT_HUGE_PMD, then every PTE gets an exclusive swap entry', () => {
    const { e, a, T } = space();
    expect(tryToUnmap(e, T, { flags: TTU_SPLIT_HUGE_PMD | TTU_SYNC })).toBe(true);
    const leaves = leavesIn(e, a, 0x600000, 0x800000);
    expect(leaves).toHaveLength(512);
    expect(leaves.every((l) => l.level === 'pte' && l.kind === 'SWAP' && l.entry.bits.exclusive)).toBe(true);
    expect(opsState(e).swap.tag(leaves[511].entry.swap!.offset)).toBe(0xb0);
    expect(e.folios.exists(T)).toBe(false);
    ok(e);
  });

  it('§5 without TTU_SPLIT_HUGE_PMD a PMD match aborts: nothing changes and the folio stays mapped', () => {
    const { e, T } = space();
    const before = snapshot(e);
    expect(tryToUnmap(e, T)).toBe(false);
    expect(snapshot(e)).toBe(before);
    ok(e);
  });

  it('§0.4 try-share: a pinned AnonExclusive page aborts the unmap; its entry and AnonExclusive stay, no slot is left', () => {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, pte(0x1000, { write: true }));
    e.folios.setAnonExclusive(f, 0, 1, true);
    opsState(e).pins.set(f, 1);
    const before = snapshot(e);
    expect(tryToUnmap(e, f)).toBe(false);
    expect(snapshot(e)).toBe(before);
    expect(opsState(e).swap.used).toBe(0);
    ok(e);
  });

  it('§0.2 DX: a device-exclusive entry of an anon page is cleared and becomes a swap entry like a present one', () => {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, index: linearPageIndex(vma, 0x400000) });
    e.folios.setTag(f, 0, 1, 0x77);
    mm.map(0x400000, { entry: { kind: 'device-exclusive', number: 0x1000 } });
    expect(e.folio(f).mapcount).toBe(1);
    expect(tryToUnmap(e, f)).toBe(true);
    expect(opsState(e).swap.tag(swapAt(mm, 0x400000).offset)).toBe(0x77);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§0.2 DP-W: a device-private entry is cleared, then the anon tail applies (slot := the device page tag)', () => {
    const e = engine();
    const dev = e.addDeviceMemory();
    const mm = e.createMm();
    const vma = mm.addVma({ start: 0x400000, end: 0x500000 });
    const f = anon(e, { number: dev.base, index: linearPageIndex(vma, 0x400000) });
    e.folios.setTag(f, 0, 1, 0x55);
    mm.map(0x400000, { entry: { kind: 'device-private-write', number: dev.base } });
    expect(tryToUnmap(e, f)).toBe(true);
    expect(opsState(e).swap.tag(swapAt(mm, 0x400000).offset)).toBe(0x55);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('PvmwError: unknown try_to_unmap flag bits are refused and nothing changes', () => {
    const { e, F } = space();
    const before = snapshot(e);
    expectPvmwError(() => tryToUnmap(e, F, { flags: 0x1 }), 'BAD_SETTING', '0x1');
    expect(snapshot(e)).toBe(before);
  });
});

describe('§5 try_to_unmap_one: lazyfree (MADV_FREE) folios (kernel-operations §7.3)', () => {
  function lazy(order: number, ptes: { write?: boolean; dirty?: boolean }[]) {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, order, index: linearPageIndex(vma, 0x400000) }, false);
    ptes.forEach((b, i) => mm.map(0x400000 + i * P, pte(0x1000 + i, { ...b, young: true })));
    return { e, mm, f };
  }

  it('§7.3 a clean lazyfree page with no extra reference is discarded: no entry, no swap slot, the folio freed', () => {
    const { e, mm, f } = lazy(0, [{ write: true }]);
    expect(tryToUnmap(e, f)).toBe(true);
    expect(mm.entryAt(0x400000).entry.kind).toBe('none');
    expect(opsState(e).swap.used).toBe(0);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§7.3 written after MADV_FREE (dirty PTE): the folio is swapbacked (and dirty) again and kept, its entry unchanged', () => {
    const { e, mm, f } = lazy(0, [{ write: true, dirty: true }]);
    const raw = mm.entryAt(0x400000).raw;
    expect(tryToUnmap(e, f)).toBe(false);
    expect(mm.entryAt(0x400000).raw).toEqual(raw);
    expect(e.folio(f).flags).toMatchObject({ swapbacked: true, dirty: true });
    expect(e.folio(f).mapcount).toBe(1);
    expect(opsState(e).swap.used).toBe(0);
    ok(e);
  });

  it('§7.3 an extra reference (pin) keeps a clean lazyfree folio as it is (still lazyfree)', () => {
    const { e, mm, f } = lazy(0, [{}]);
    opsState(e).pins.set(f, 1);
    const raw = mm.entryAt(0x400000).raw;
    expect(tryToUnmap(e, f)).toBe(false);
    expect(mm.entryAt(0x400000).raw).toEqual(raw);
    expect(e.folio(f).flags.swapbacked).toBe(false);
    ok(e);
  });

  it('§5 folio_unmap_pte_batch: a clean batch is discarded, a batch with a dirty PTE is kept whole and the folio swapbacked', () => {
    // PTEs 0-1 read-only and clean, 2-3 writable with 3 dirty: two batches (write is respected).
    const { e, mm, f } = lazy(2, [{}, {}, { write: true }, { write: true, dirty: true }]);
    expect(tryToUnmap(e, f)).toBe(false);
    expect([0, 1, 2, 3].map((i) => mm.entryAt(0x400000 + i * P).entry.kind)).toEqual(['none', 'none', 'present', 'present']);
    expect(mm.entryAt(0x402000).entry.bits.dirty).toBe(false);
    expect(e.folio(f)).toMatchObject({ mapcount: 2, flags: { swapbacked: true, dirty: true } });
    ok(e);
  });

  it('§7.3 PMD: a clean lazyfree THP is discarded whole; a dirty PMD makes it swapbacked and keeps it', () => {
    for (const dirty of [false, true]) {
      const { e, mm, vma } = solo({ flags: { thp: true } });
      const f = anon(e, { number: 0x2000, order: 9, index: linearPageIndex(vma, 0x600000) }, false);
      mm.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty }) });
      expect(tryToUnmap(e, f, { flags: TTU_SPLIT_HUGE_PMD })).toBe(!dirty);
      if (dirty) {
        expect(mm.entryAt(0x600000).level).toBe('pmd');
        expect(e.folio(f)).toMatchObject({ entireMapcount: 1, flags: { swapbacked: true, dirty: true } });
      } else {
        expect(mm.entryAt(0x600000).entry.kind).toBe('none');
        expect(e.folios.exists(f)).toBe(false);
      }
      expect(opsState(e).swap.used).toBe(0);
      ok(e);
    }
  });
});

describe('§5 try_to_unmap_one: file folios and mlock (kernel-operations §2.4)', () => {
  it('§2.4 file: every mapping is dropped, the folio marked dirty by a dirty PTE, and kept (the page cache holds it)', () => {
    const { e, a, b, C } = space();
    expect(e.folio(C).flags.dirty).toBe(false);
    expect(tryToUnmap(e, C)).toBe(true);
    expect(leavesIn(e, a, 0x10000000, 0x10100000)).toEqual([]);
    expect(leavesIn(e, b, 0x20000000, 0x20100000)).toEqual([]);
    expect(e.folio(C)).toMatchObject({ mapcount: 0, flags: { dirty: true } });
    expect(opsState(e).swap.used).toBe(0);
    ok(e);
  });

  it('§5 a file THP PMD with TTU_SPLIT_HUGE_PMD is cleared (file split), the dirty bit passed to the folio', () => {
    const { e, mm } = solo({ file: FILE, pgoff: 0, flags: { shared: true, thp: true } });
    const f = e.createFolio({ number: 0x2000, order: 9, file: FILE, index: 0x200 });
    mm.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty: true }) });
    expect(tryToUnmap(e, f, { flags: TTU_SPLIT_HUGE_PMD })).toBe(true);
    expect(mm.entryAt(0x600000).entry.kind).toBe('none');
    expect(e.folio(f)).toMatchObject({ mapcount: 0, flags: { dirty: true } });
    ok(e);
  });

  it('§5 mlock: a fully mapped folio in a VM_LOCKED VMA aborts the unmap there and is mlocked again; earlier VMAs are unmapped', () => {
    const e = engine();
    const a = e.createMm();
    const b = e.createMm();
    const va = a.addVma({ start: 0x400000, end: 0x500000 });
    b.addVma({ start: 0x400000, end: 0x500000, flags: { locked: true } });
    const f = anon(e, { number: 0x1000, order: 1, index: linearPageIndex(va, 0x400000) });
    a.map(0x400000, { count: 2, ...pte(0x1000) });
    b.map(0x400000, { count: 2, ...pte(0x1000) });
    expect(tryToUnmap(e, f)).toBe(false);
    expect(a.entryAt(0x400000).entry.kind).toBe('swap');
    expect(b.entryAt(0x400000).entry.kind).toBe('present');
    expect(e.folio(f)).toMatchObject({ mapcount: 2, flags: { mlocked: true } });
    ok(e);
    // TTU_IGNORE_MLOCK (or ignoreMlock) unmaps the locked VMA too.
    expect(tryToUnmap(e, f, { ignoreMlock: true })).toBe(true);
    expect(b.entryAt(0x401000).entry.kind).toBe('swap');
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§5 mlock: a partly mapped folio in a VM_LOCKED VMA aborts but is not mlocked', () => {
    const { e, mm, vma } = solo({ flags: { locked: true } });
    const f = anon(e, { number: 0x1000, order: 2, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { count: 3, ...pte(0x1000) });
    const before = snapshot(e);
    expect(tryToUnmap(e, f)).toBe(false);
    expect(snapshot(e)).toBe(before);
    expect(e.folio(f).flags.mlocked).toBe(false);
    expect(tryToUnmap(e, f, { flags: TTU_IGNORE_MLOCK })).toBe(true);
    ok(e);
  });
});

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
    ok(e);
  });

  it('§5 a PMD mapping: young cleared on the PMD', () => {
    const { e, a, T } = space();
    expect(folioReferenced(e, T).referenced).toBe(1);
    expect(a.entryAt(0x600000).entry.bits).toMatchObject({ young: false, dirty: true, write: true });
    ok(e);
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
    ok(e);
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
    ok(e);
  });

  it('§2 notes: device-exclusive entries count as mappings but are old', () => {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { entry: { kind: 'device-exclusive', number: 0x1000 } });
    const raw = mm.entryAt(0x400000).raw;
    expect(folioReferenced(e, f).referenced).toBe(0);
    expect(mm.entryAt(0x400000).raw).toEqual(raw);
    ok(e);
  });

  it('§5 PG_young left by page_idle counts once (and is cleared); PG_idle is cleared when a PTE was young', () => {
    const { e, F } = space();
    pageIdleMark(e, F); // the young PTEs are made old: PG_young and PG_idle set
    expect(folioAge(e).isYoung(F)).toBe(true);
    expect(folioReferenced(e, F).referenced).toBe(1);
    expect(folioAge(e).isYoung(F)).toBe(false);
    expect(folioReferenced(e, F).referenced).toBe(0);
    ok(e);
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
    ok(e);
  });

  it('§5 folio_mkclean: an anon folio has no folio_mapping and gives 0; a device-exclusive entry is skipped', () => {
    const { e, F } = space();
    const before = snapshot(e);
    expect(folioMkclean(e, F)).toBe(0);
    expect(snapshot(e)).toBe(before);
    const mm = e.createMm();
    mm.addVma({ start: 0x400000, end: 0x500000, file: 9, flags: { shared: true } });
    const f = e.createFolio({ number: 0x5000, file: 9, index: 0 });
    mm.map(0x400000, { entry: { kind: 'device-exclusive', number: 0x5000 } });
    expect(folioMkclean(e, f)).toBe(0);
    ok(e);
  });

  it('§5 folio_mkclean on a shared file THP cleans the PMD', () => {
    const { e, mm } = solo({ file: FILE, flags: { shared: true, thp: true } });
    const f = e.createFolio({ number: 0x2000, order: 9, file: FILE, index: 0x200 });
    mm.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty: true }) });
    expect(folioMkclean(e, f)).toBe(1);
    expect(mm.entryAt(0x600000)).toMatchObject({ level: 'pmd', entry: { bits: { write: false, dirty: false } } });
    ok(e);
  });

  it('§5 pfn_mkclean_range: a raw pfn range in one shared VMA; only entries of the range change; a private VMA gives 0', () => {
    const { e, a, b } = space();
    const vmaA = a.vmas.find(0x10000000)!;
    expect(pfnMkcleanRange(e, a, vmaA, 0x4001, 2, 1)).toBe(2);
    expect([0, 1, 2, 3].map((i) => a.entryAt(0x10000000 + i * P).entry.bits.write)).toEqual([true, false, false, true]);
    const before = snapshot(e);
    expect(pfnMkcleanRange(e, b, b.vmas.find(0x20000000)!, 0x4000, 4, 0)).toBe(0);
    expect(snapshot(e)).toBe(before);
    expectPvmwError(() => pfnMkcleanRange(e, a, vmaA, 0x4000, 4, 0x1000), 'BAD_RANGE', 'pfn_mkclean_range');
    expect(snapshot(e)).toBe(before);
    ok(e);
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
    ok(e);
  });
});

describe('§5 page_idle_clear_pte_refs_one, damon_folio_mkold_one / damon_folio_young_one', () => {
  /** Make the PTE at addr young again (a CPU access). */
  function touch(e: Engine, mm: Mm, addr: number): void {
    const d = mm.entryAt(addr).entry;
    writeLeaves(e, mm, [{ va: addr, level: 'pte', raw: presentRaw('pte', d.number!, { ...d.present!, young: true }) }]);
  }

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
    ok(e);
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
    ok(e);
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
    ok(e);
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
        ok(s.e);
        return { value: JSON.stringify(value), state: snapshot(s.e) };
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
      ok(e);
      return snapshot(e);
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
    ok(e);
  });
});
