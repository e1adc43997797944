// try_to_unmap_one (spec §5) and what it does to entries, mapcounts, swap slots and tags: anon folios to swap
// (kernel-operations.md §12.2), lazyfree discard (§7.3), file folios and mlock (§2.4).
import { describe, expect, it } from 'vitest';
import { linearPageIndex } from '../src/index.js';
import { leavesIn } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { TTU_IGNORE_MLOCK, TTU_SPLIT_HUGE_PMD, TTU_SYNC, tryToUnmap } from '../src/mm/try-to-unmap.js';
import { expectPvmwError } from './helpers.js';
import { engineSnapshot, expectClean } from './ops-helpers.js';
import { FILE, P, anon, engine, pte, solo, space, swapAt } from './ops-reclaim-helpers.js';

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
    expectClean(e);
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
    expectClean(e);
  });

  it('§5/§6.1 a PMD-mapped THP is split with TTU_SPLIT_HUGE_PMD, then every PTE gets an exclusive swap entry', () => {
    const { e, a, T } = space();
    expect(tryToUnmap(e, T, { flags: TTU_SPLIT_HUGE_PMD | TTU_SYNC })).toBe(true);
    const leaves = leavesIn(e, a, 0x600000, 0x800000);
    expect(leaves).toHaveLength(512);
    expect(leaves.every((l) => l.level === 'pte' && l.kind === 'SWAP' && l.entry.bits.exclusive)).toBe(true);
    expect(opsState(e).swap.tag(leaves[511].entry.swap!.offset)).toBe(0xb0);
    expect(e.folios.exists(T)).toBe(false);
    expectClean(e);
  });

  it('§5 without TTU_SPLIT_HUGE_PMD a PMD match aborts: nothing changes and the folio stays mapped', () => {
    const { e, T } = space();
    const before = engineSnapshot(e);
    expect(tryToUnmap(e, T)).toBe(false);
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§0.4 try-share: a pinned AnonExclusive page aborts the unmap; its entry and AnonExclusive stay, no slot is left', () => {
    const { e, mm, vma } = solo();
    const f = anon(e, { number: 0x1000, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, pte(0x1000, { write: true }));
    e.folios.setAnonExclusive(f, 0, 1, true);
    opsState(e).pins.set(f, 1);
    const before = engineSnapshot(e);
    expect(tryToUnmap(e, f)).toBe(false);
    expect(engineSnapshot(e)).toBe(before);
    expect(opsState(e).swap.used).toBe(0);
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
  });

  it('PvmwError: unknown try_to_unmap flag bits are refused and nothing changes', () => {
    const { e, F } = space();
    const before = engineSnapshot(e);
    expectPvmwError(() => tryToUnmap(e, F, { flags: 0x1 }), 'BAD_SETTING', '0x1');
    expect(engineSnapshot(e)).toBe(before);
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
    expectClean(e);
  });

  it('§7.3 written after MADV_FREE (dirty PTE): the folio is swapbacked (and dirty) again and kept, its entry unchanged', () => {
    const { e, mm, f } = lazy(0, [{ write: true, dirty: true }]);
    const raw = mm.entryAt(0x400000).raw;
    expect(tryToUnmap(e, f)).toBe(false);
    expect(mm.entryAt(0x400000).raw).toEqual(raw);
    expect(e.folio(f).flags).toMatchObject({ swapbacked: true, dirty: true });
    expect(e.folio(f).mapcount).toBe(1);
    expect(opsState(e).swap.used).toBe(0);
    expectClean(e);
  });

  it('§7.3 an extra reference (pin) keeps a clean lazyfree folio as it is (still lazyfree)', () => {
    const { e, mm, f } = lazy(0, [{}]);
    opsState(e).pins.set(f, 1);
    const raw = mm.entryAt(0x400000).raw;
    expect(tryToUnmap(e, f)).toBe(false);
    expect(mm.entryAt(0x400000).raw).toEqual(raw);
    expect(e.folio(f).flags.swapbacked).toBe(false);
    expectClean(e);
  });

  it('§5 folio_unmap_pte_batch: a clean batch is discarded, a batch with a dirty PTE is kept whole and the folio swapbacked', () => {
    // PTEs 0-1 read-only and clean, 2-3 writable with 3 dirty: two batches (write is respected).
    const { e, mm, f } = lazy(2, [{}, {}, { write: true }, { write: true, dirty: true }]);
    expect(tryToUnmap(e, f)).toBe(false);
    expect([0, 1, 2, 3].map((i) => mm.entryAt(0x400000 + i * P).entry.kind)).toEqual(['none', 'none', 'present', 'present']);
    expect(mm.entryAt(0x402000).entry.bits.dirty).toBe(false);
    expect(e.folio(f)).toMatchObject({ mapcount: 2, flags: { swapbacked: true, dirty: true } });
    expectClean(e);
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
      expectClean(e);
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
    expectClean(e);
  });

  it('§5 a file THP PMD with TTU_SPLIT_HUGE_PMD is cleared (file split), the dirty bit passed to the folio', () => {
    const { e, mm } = solo({ file: FILE, pgoff: 0, flags: { shared: true, thp: true } });
    const f = e.createFolio({ number: 0x2000, order: 9, file: FILE, index: 0x200 });
    mm.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty: true }) });
    expect(tryToUnmap(e, f, { flags: TTU_SPLIT_HUGE_PMD })).toBe(true);
    expect(mm.entryAt(0x600000).entry.kind).toBe('none');
    expect(e.folio(f)).toMatchObject({ mapcount: 0, flags: { dirty: true } });
    expectClean(e);
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
    expectClean(e);
    // TTU_IGNORE_MLOCK (or ignoreMlock) unmaps the locked VMA too.
    expect(tryToUnmap(e, f, { ignoreMlock: true })).toBe(true);
    expect(b.entryAt(0x401000).entry.kind).toBe('swap');
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§5 mlock: a partly mapped folio in a VM_LOCKED VMA aborts but is not mlocked', () => {
    const { e, mm, vma } = solo({ flags: { locked: true } });
    const f = anon(e, { number: 0x1000, order: 2, index: linearPageIndex(vma, 0x400000) });
    mm.map(0x400000, { count: 3, ...pte(0x1000) });
    const before = engineSnapshot(e);
    expect(tryToUnmap(e, f)).toBe(false);
    expect(engineSnapshot(e)).toBe(before);
    expect(e.folio(f).flags.mlocked).toBe(false);
    expect(tryToUnmap(e, f, { flags: TTU_IGNORE_MLOCK })).toBe(true);
    expectClean(e);
  });
});
