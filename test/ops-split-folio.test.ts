// Folio split (kernel-operations.md §6.2 __folio_split, uniform): the precondition table, unmapping (anon:
// try_to_migrate with a freezing PMD split §6.1; file: try_to_unmap), the memmap split, remapping with the
// zero-page rule (§9.4 step 3, §12.2), page-cache slots; and the callers that now split: MADV_FREE (§7.3) and
// KSM (§8.3 step 1). The invariants hold after every step; a refused split leaves the engine exactly as it was.
import { describe, expect, it, vi } from 'vitest';
import { Engine, PvmwError, type FolioId, type Mm } from '../src/index.js';
import { dupMmap } from '../src/mm/fork.js';
import { ksmScan } from '../src/mm/ksm.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { madvise } from '../src/mm/madvise.js';
import { splitFolio } from '../src/mm/split-folio.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { engineSnapshot, expectClean, expectRejected, leafAt, oneVmaSetup, ONE_VMA_START as A, place, rmapFinds } from './ops-helpers.js';

const P = 4096;
const M2 = 0x200000;

function fork(e: Engine, mm: Mm): Mm {
  const r = dupMmap(e, mm);
  if (!r.ok) throw new Error(`fork failed: ${r.errno}`);
  return r.child;
}

/** A PMD-mapped anon THP at A: writable, dirty, young, head AnonExclusive; every page tagged `tag(i)`. */
function pmdThp(e: Engine, mm: Mm, tag: (i: number) => number = () => 0x99): FolioId {
  const f = place(e, mm, A, 0x2000, { kind: 'present', write: true, dirty: true, young: true }, 9, 'pmd');
  e.folios.setAnonExclusive(f, 0, 512, true);
  e.folios.setFlags(f, { dirty: true });
  for (let i = 0; i < 512; i++) if (tag(i) !== 0) e.folios.setTag(f, i, 1, tag(i));
  return f;
}

describe('§6.2 preconditions', () => {
  it('§6.2 EINVAL: target order ≥ order, anon to order 1, hugetlb, the huge zero folio, device-private; nothing changed', () => {
    const { e, mm } = oneVmaSetup();
    const small = place(e, mm, A, 0x1000, { kind: 'present', write: true });
    const mthp = place(e, mm, A + 16 * P, 0x1010, { kind: 'present', write: true }, 4);
    const huge = e.createFolio({ number: 0x4000, hugetlb: '2M' });
    const hzp = zeroPages(e).huge;
    const dev = e.addDeviceMemory();
    const dp = e.createFolio({ namespace: dev.namespace, number: dev.base, order: 2 });
    expectClean(e);
    expectRejected(e, () => splitFolio(e, small, 0), 'EINVAL');
    expectRejected(e, () => splitFolio(e, mthp, 4), 'EINVAL');
    expectRejected(e, () => splitFolio(e, mthp, 5), 'EINVAL');
    expectRejected(e, () => splitFolio(e, mthp, 1), 'EINVAL');
    expectRejected(e, () => splitFolio(e, huge, 0), 'EINVAL');
    expectRejected(e, () => splitFolio(e, hzp, 0), 'EINVAL');
    expectRejected(e, () => splitFolio(e, dp, 0), 'EINVAL');
    expect(() => splitFolio(e, mthp, 0.5)).toThrow(PvmwError);
  });

  it('§6.2 EBUSY: locked by someone else, anon folio no longer mapped, file folio truncated (not in the page cache)', () => {
    const { e, mm } = oneVmaSetup();
    const locked = place(e, mm, A, 0x1000, { kind: 'present', write: true }, 2);
    e.folios.setFlags(locked, { locked: true });
    const unmapped = e.createFolio({ number: 0x1010, order: 2, anonVma: e.rmap.anon.prepare(mm.vmas.find(A)!).id, index: 0 });
    const file = e.createFolio({ number: 0x1020, order: 2, file: 9, index: 0 });
    expectRejected(e, () => splitFolio(e, locked, 0), 'EBUSY');
    expectRejected(e, () => splitFolio(e, unmapped, 0), 'EBUSY');
    expectRejected(e, () => splitFolio(e, file, 0), 'EBUSY');
  });

  it('§6.2 EAGAIN: a pinned folio (extra references) is refused before unmapping; the engine is unchanged', () => {
    const { e, mm } = oneVmaSetup();
    const thp = pmdThp(e, mm);
    const mthp = place(e, mm, A + M2, 0x1010, { kind: 'present', write: true }, 4);
    opsState(e).pins.set(thp, 1);
    opsState(e).pins.set(mthp, 1);
    expectRejected(e, () => splitFolio(e, thp, 0), 'EAGAIN');
    expectRejected(e, () => splitFolio(e, mthp, 2), 'EAGAIN');
  });
});

describe('§6.2 anon split', () => {
  for (const iface of ['pfn', 'folio-range', 'folio-identity'] as const) {
    it(`§6.2 a PMD-mapped THP shared by fork → 512 order-0 folios PTE-mapped in both; ZERO pages → ZP, freed (${iface})`, () => {
      const { e, mm } = oneVmaSetup();
      setOpsPolicy(e, { walkInterface: iface });
      const zero = new Set([5, 300]);
      const f = pmdThp(e, mm, (i) => (zero.has(i) ? 0 : 0x100 + i));
      const before = e.folio(f);
      const child = fork(e, mm);
      expectClean(e);
      expect(splitFolio(e, f, 0)).toEqual({ ok: true, value: 512 });
      expectClean(e);
      const zp = zeroPages(e).zeroPfn;
      for (const m of [mm, child]) {
        const l = leavesIn(e, m, A, A + M2);
        expect(l).toHaveLength(512);
        l.forEach((x, i) => {
          expect(x.level).toBe('pte');
          if (zero.has(i)) expect([x.kind, x.entry.number, x.entry.bits.write]).toEqual(['ZP', zp, false]);
          else expect([x.kind, x.entry.number, x.entry.bits.write]).toEqual(['P', before.number + i, false]); // MIG-R: read-only
        });
      }
      for (let i = 0; i < 512; i++) {
        if (zero.has(i)) {
          expect(e.folios.exists(f + i)).toBe(false);
          continue;
        }
        expect(e.folio(f + i)).toMatchObject({ order: 0, anonVma: before.anonVma, index: before.index + i, mapcount: 2 });
        expect(e.folio(f + i).flags).toMatchObject({ locked: false, dirty: true, swapbacked: true });
        expect(e.page('pfn', before.number + i)).toMatchObject({ tag: 0x100 + i, anonExclusive: false });
      }
      expect(rmapFinds(e, f + 7)).toEqual([A + 7 * P, A + 7 * P]);
    });
  }

  it('§6.2/§9.4 an exclusive writable PMD THP: every piece comes back writable and AnonExclusive (MIG-W restored)', () => {
    const { e, mm } = oneVmaSetup();
    const f = pmdThp(e, mm);
    expect(splitFolio(e, f, 0).ok).toBe(true);
    expectClean(e);
    const l = leavesIn(e, mm, A, A + M2);
    expect(l.every((x) => x.kind === 'P' && x.entry.bits.write && x.entry.bits.dirty && x.entry.bits.young)).toBe(true);
    for (let i = 0; i < 512; i += 97) expect(e.page('pfn', 0x2000 + i)).toMatchObject({ anonExclusive: true, tag: 0x99, mapcount: 1 });
  });

  it('§6.2 a PTE-mapped mTHP split to order 2: 4 folios, index + offset, AnonExclusive per page kept, tags kept', () => {
    const { e, mm } = oneVmaSetup();
    const f = place(e, mm, A, 0x1000, { kind: 'present', write: true, dirty: true }, 4);
    for (let i = 0; i < 16; i++) e.folios.setTag(f, i, 1, 0x200 + i);
    e.folios.setAnonExclusive(f, 0, 8, true);
    // Pages 8-11 read-only and shared (MIG-R), 14-15 unmapped (page 15 keeps its AnonExclusive bit).
    mm.clear(A + 8 * P, A + 16 * P);
    mm.map(A + 8 * P, { count: 6, entry: { kind: 'present', number: 0x1008 } });
    e.folios.setAnonExclusive(f, 15, 1, true);
    const index = e.folio(f).index;
    expectClean(e);
    expect(splitFolio(e, f, 2)).toEqual({ ok: true, value: 4 });
    expectClean(e);
    expect([0, 1, 2, 3].map((k) => e.folio(f + 4 * k)).map((x) => [x.order, x.index, x.mapcount])).toEqual([
      [2, index, 4], [2, index + 4, 4], [2, index + 8, 4], [2, index + 12, 2],
    ]);
    for (let i = 0; i < 16; i++) {
      expect(e.page('pfn', 0x1000 + i)).toMatchObject({ tag: 0x200 + i, anonExclusive: i < 8 || i === 15 });
      if (i < 14) expect(leafAt(e, mm, A + i * P)!.entry.bits.write).toBe(i < 8);
    }
    expect(leafAt(e, mm, A + 14 * P)).toBeUndefined();
  });

  it('§6.2 step 6 on failure the original folio is remapped as PTEs (a frozen PMD does not come back as a PMD)', () => {
    const { e, mm } = oneVmaSetup();
    const f = pmdThp(e, mm);
    const spy = vi.spyOn(e.folios, 'split').mockImplementation(() => {
      throw new PvmwError('MEMORY_LIMIT', 'test');
    });
    expect(splitFolio(e, f, 0)).toEqual({ ok: false, errno: 'ENOMEM' });
    spy.mockRestore();
    expectClean(e);
    expect(e.folio(f)).toMatchObject({ order: 9, mapcount: 512, entireMapcount: 0 });
    expect(e.folio(f).flags.locked).toBe(false);
    const l = leavesIn(e, mm, A, A + M2);
    expect(l.every((x) => x.kind === 'PL' && x.entry.bits.write)).toBe(true);
    expect(e.page('pfn', 0x2000 + 3)!.anonExclusive).toBe(true);
  });
});

describe('§6.2 file split', () => {
  function fileSpace() {
    const { e, mm } = oneVmaSetup({ shared: true }, { file: 3, pgoff: 0 });
    const f = e.createFolio({ number: 0x2000, order: 9, file: 3, index: 0 });
    opsState(e).pageCache.insert(3, 0, 512, f);
    e.folios.setTag(f, 0, 512, 0x55);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true, dirty: true } });
    const other = e.createMm();
    other.addVma({ start: A, end: A + M2, file: 3, pgoff: 0, flags: { shared: true } });
    other.map(A, { count: 4, entry: { kind: 'present', number: 0x2000 } });
    expectClean(e);
    return { e, mm, other, f };
  }

  it('§6.2 a file THP: mappings dropped (they refault), page cache repointed to 512 order-0 folios, tags kept', () => {
    const { e, mm, other, f } = fileSpace();
    expect(splitFolio(e, f, 0)).toEqual({ ok: true, value: 512 });
    expectClean(e);
    expect(leavesIn(e, mm, A, A + M2)).toEqual([]);
    expect(leavesIn(e, other, A, A + M2)).toEqual([]);
    const cache = opsState(e).pageCache;
    for (let i = 0; i < 512; i++) {
      expect(cache.lookup(3, i)).toBe(f + i);
      expect(e.folio(f + i)).toMatchObject({ order: 0, file: 3, index: i, mapcount: 0 });
    }
    expect(e.folio(f + 200).flags).toMatchObject({ dirty: true, locked: false }); // the PMD's dirty bit
    expect(e.page('pfn', 0x2000 + 200)!.tag).toBe(0x55);
  });

  it('§6.2 a file folio may split to order 1 or 2 (only anon refuses order 1)', () => {
    const { e, f } = fileSpace();
    expect(splitFolio(e, f, 2)).toEqual({ ok: true, value: 128 });
    expect(opsState(e).pageCache.lookup(3, 5)).toBe(f + 4);
    expect(splitFolio(e, f + 4, 1)).toEqual({ ok: true, value: 2 });
    expect(opsState(e).pageCache.lookup(3, 7)).toBe(f + 6);
    expectClean(e);
  });
});

describe('§6.2 the memmap split (Folios.split)', () => {
  it('a mapped folio is FOLIO_BUSY, a bad order BAD_ORDER; pieces keep hwpoison; the folio count follows', () => {
    const { e, mm } = oneVmaSetup();
    const f = place(e, mm, A, 0x1000, { kind: 'present' }, 2);
    expect(() => e.folios.split(f, 0)).toThrow(/still mapped/);
    const g = e.createFolio({ number: 0x1100, order: 3, anonVma: 4, index: 0x10 });
    expect(() => e.folios.split(g, 3)).toThrow(PvmwError);
    e.wasmInstance().exports.pageSetFlags(g + 5, 1, 1 << 8, 0);
    const n = e.memoryUsage().folios;
    expect(e.folios.split(g, 0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => g + i));
    expect(e.memoryUsage().folios).toBe(n + 7);
    expect(e.page('pfn', 0x1105)!.hwpoison).toBe(true);
    expect(e.page('pfn', 0x1104)!.hwpoison).toBe(false);
    expect(e.folio(g + 6)).toMatchObject({ anonVma: 4, index: 0x16, order: 0 });
    for (let i = 0; i < 8; i++) e.freeFolio(g + i);
    expect(e.createFolio({ number: 0x1100, order: 3 })).toBe(g); // records and words returned cleanly
    expectClean(e);
  });
});

describe('§6.2 callers: MADV_FREE (§7.3) and KSM (§8.3 step 1)', () => {
  it('§7.3 MADV_FREE over half an mTHP splits it: the covered half lazyfree, the other half untouched', () => {
    const { e, mm } = oneVmaSetup();
    const f = place(e, mm, A, 0x1000, { kind: 'present', write: true, dirty: true }, 4);
    e.folios.setTag(f, 0, 16, 0x31);
    expect(madvise(e, mm, A, 8 * P, 'MADV_FREE')).toEqual({ ok: true, value: 0 });
    expectClean(e);
    for (let i = 0; i < 16; i++) {
      expect(e.folio(f + i).order).toBe(0);
      expect(e.folio(f + i).flags.swapbacked).toBe(i >= 8);
      expect(leafAt(e, mm, A + i * P)!.entry.bits.dirty).toBe(i >= 8);
    }
  });

  it('§7.3 MADV_FREE over half an mTHP another process maps too: skipped, the folio stays whole', () => {
    const { e, mm } = oneVmaSetup();
    const f = place(e, mm, A, 0x1000, { kind: 'present', write: true, dirty: true }, 4);
    e.folios.setTag(f, 0, 16, 0x31);
    fork(e, mm);
    const before = engineSnapshot(e);
    expect(madvise(e, mm, A, 8 * P, 'MADV_FREE')).toEqual({ ok: true, value: 0 });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§8.3 step 1 KSM splits a PMD-mapped THP when its pages merge: two KSM pages of 256 mappings each', () => {
    const { e, mm } = oneVmaSetup({ mergeable: true });
    const f = pmdThp(e, mm, (i) => 0x500 + (i % 2));
    const r = ksmScan(e, { rounds: 3 });
    expectClean(e);
    expect(r).toMatchObject({ scanned: 3 * 512, volatile: 512, merged: 512, skippedLarge: 0 });
    for (const k of [2, 3]) {
      expect(e.folio(f + k)).toMatchObject({ order: 0, mapcount: 256 });
      expect(e.folio(f + k).flags.ksm).toBe(true);
    }
    expect(leafAt(e, mm, A + 10 * P)!.entry).toMatchObject({ number: 0x2002 });
    expect(leafAt(e, mm, A + 11 * P)!.entry.bits.write).toBe(false);
  });

  it('§8.3 step 1 a pinned large folio cannot be split: its pages do not merge', () => {
    const { e, mm } = oneVmaSetup({ mergeable: true });
    const f = place(e, mm, A, 0x1000, { kind: 'present', write: true, dirty: true }, 2);
    e.folios.setTag(f, 0, 4, 0x77);
    opsState(e).pins.set(f, 1);
    const r = ksmScan(e, { rounds: 3 });
    expect(r.merged).toBe(0);
    expect(r.skippedLarge).toBeGreaterThan(0);
    expect(e.folio(f)).toMatchObject({ order: 2, mapcount: 4 });
    expectClean(e);
  });
});
