// Migrating one folio (kernel-operations.md §9.2 unmap and move phases, §9.4 restore), the minimal migration
// the rmap selftest (spec §7.3) needs: every mapping found by rmap moves to the new pfn.
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex } from '../src/index.js';
import { migrateFolio } from '../src/mm/migrate-folio.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { expectClean } from './ops-helpers.js';

function space(iface: 'pfn' | 'folio-range' | 'folio-identity' = 'pfn') {
  const e = new Engine({ ramPages: 1 << 16 });
  setOpsPolicy(e, { walkInterface: iface });
  const a = e.createMm();
  const b = e.createMm();
  const va = a.addVma({ start: 0x400000, end: 0x800000 });
  const vb = b.addVma({ start: 0x400000, end: 0x800000 });
  const f = e.createFolio({ number: 0x1000, order: 2, anonVma: 1, index: linearPageIndex(va, 0x400000) });
  e.folios.setTag(f, 0, 4, 0xab);
  e.folios.setTag(f, 3, 1, 0xcd);
  // As after a fork and one COW reuse: pages 0-1 shared read-only with b, pages 2-3 exclusive and writable in a.
  a.map(0x400000, { count: 2, entry: { kind: 'present', number: 0x1000, dirty: true, young: true } });
  a.map(0x402000, { count: 2, entry: { kind: 'present', number: 0x1002, write: true, dirty: true, young: true } });
  e.folios.setAnonExclusive(f, 2, 2, true);
  b.map(0x400000, { count: 2, entry: { kind: 'present', number: 0x1000 } });
  const thp = e.createFolio({ number: 0x2000, order: 9, anonVma: 1, index: linearPageIndex(va, 0x600000) });
  a.map(0x600000, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true } });
  return { e, a, b, va, vb, f, thp };
}

describe('§9.2/§9.4 migrating one folio', () => {
  for (const iface of ['pfn', 'folio-range', 'folio-identity'] as const) {
    it(`every mapping moves to the new pfn, with tags, write state and AnonExclusive (${iface})`, () => {
      const { e, a, b, f } = space(iface);
      const r = migrateFolio(e, f);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      const dst = e.folio(r.value);
      expect(e.folios.exists(f)).toBe(false);
      expect(dst).toMatchObject({ order: 2, anon: true, anonVma: 1, index: 0x400, mapcount: 6 });
      expect(dst.number).not.toBe(0x1000);
      for (let i = 0; i < 4; i++) {
        const t = a.translate(0x400000 + i * 0x1000);
        expect(t.leaf.entry.number).toBe(dst.number + i);
        expect(t.page!.tag).toBe(i === 3 ? 0xcd : 0xab);
      }
      // Exclusive pages were MIG-W (writable) and come back writable and exclusive; shared ones MIG-R, read-only.
      expect(a.entryAt(0x403000).entry.bits.write).toBe(true);
      expect(e.page('pfn', dst.number + 3)!.anonExclusive).toBe(true);
      expect(b.entryAt(0x400000).entry.number).toBe(dst.number);
      expect(b.entryAt(0x400000).entry.bits.write).toBe(false);
      expect(e.page('pfn', dst.number)!.anonExclusive).toBe(false);
      expect(rmapCandidates(e, dst.id).map((c) => c.mm.id)).toEqual([a.id, b.id]);
      expectClean(e);
    });
  }

  it('§9.3 a PMD-mapped THP moves as one unit and comes back as a PMD', () => {
    const { e, a, thp } = space();
    const r = migrateFolio(e, thp);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const leaf = a.entryAt(0x600000);
    expect(leaf.level).toBe('pmd');
    expect(leaf.entry.number).toBe(e.folio(r.value).number);
    expect(e.folio(r.value).entireMapcount).toBe(1);
    expectClean(e);
  });

  it('§9.2 a pinned folio fails with EAGAIN and stays mapped exactly as before', () => {
    const { e, a, b, f } = space();
    opsState(e).pins.set(f, 1);
    const before = [a.entryAt(0x400000).raw, a.entryAt(0x403000).raw, b.entryAt(0x401000).raw];
    const r = migrateFolio(e, f);
    expect(r).toEqual({ ok: false, errno: 'EAGAIN' });
    expect([a.entryAt(0x400000).raw, a.entryAt(0x403000).raw, b.entryAt(0x401000).raw]).toEqual(before);
    expect(e.folio(f).mapcount).toBe(6);
    expectClean(e);
  });
});
