// zap per entry kind (kernel-operations.md §2.4 every PTE kind, §2.5 every PMD kind), through munmap and
// zapPageRange: entries cleared or kept (markers), mapcounts, folios freed or kept, swap counts, tags (§12.2).
import { describe, expect, it } from 'vitest';
import { linearPageIndex } from '../src/index.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { munmap } from '../src/mm/munmap.js';
import { opsState } from '../src/mm/state.js';
import { zapPageRange } from '../src/mm/zap.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { expectClean, kindAt, place } from './ops-helpers.js';
import { ANON, FILE, M2, P, space } from './ops-munmap-helpers.js';

describe('§2.4 zap per PTE entry kind', () => {
  it('§2.4 NONE: skipped (an empty VMA unmaps)', () => {
    const { e, mm } = space();
    expect(munmap(e, mm, ANON, 4 * M2).ok).toBe(true);
    expect(mm.vmas.size).toBe(1);
    expectClean(e);
  });

  it('§2.4 P anon: cleared, mapcount 0, folio freed', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', write: true, dirty: true });
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§2.4 P anon mapped by another mm too: mapcount 2 → 1, the folio stays and rmap still finds the other', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present' });
    const child = e.createMm();
    const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
    e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
    child.map(ANON, { entry: { kind: 'present', number: 0x1000 } });
    expect(e.folio(f).mapcount).toBe(2);
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(e.folio(f).mapcount).toBe(1);
    expect(rmapCandidates(e, f).map((c) => c.mm.id)).toEqual([child.id]);
    expectClean(e);
  });

  it('§2.4 PL anon: a partly unmapped mTHP keeps its other pages mapped; the last unmap frees it', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', write: true }, 2);
    expect(munmap(e, mm, ANON, 2 * P).ok).toBe(true);
    expect([e.folio(f).mapcount, e.page('pfn', 0x1000)!.mapcount, e.page('pfn', 0x1003)!.mapcount]).toEqual([2, 0, 1]);
    expect(munmap(e, mm, ANON + 2 * P, 2 * P).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§2.4 P/PL file: cleared, mapcount 0, the page-cache folio stays; a dirty PTE marks the folio dirty (§12.2 tag kept)', () => {
    const { e, mm } = space();
    const clean = place(e, mm, FILE, 0x1000, { kind: 'present' });
    const dirty = place(e, mm, FILE + 4 * P, 0x1004, { kind: 'present', write: true, dirty: true }, 2);
    e.folios.setTag(dirty, 0, 4, 0xabc);
    expect(munmap(e, mm, FILE, 8 * P).ok).toBe(true);
    expect(e.folio(clean)).toMatchObject({ mapcount: 0 });
    expect(e.folio(clean).flags.dirty).toBe(false);
    expect(e.folio(dirty)).toMatchObject({ mapcount: 0 });
    expect(e.folio(dirty).flags.dirty).toBe(true);
    expect(e.page('pfn', 0x1006)!.tag).toBe(0xabc);
    expectClean(e);
  });

  it('§2.4 note: a uffd-wp PTE zapped in a file VMA leaves a MK-UW marker unless markers are dropped', () => {
    const { e, mm } = space();
    place(e, mm, FILE, 0x1000, { kind: 'present', uffdWp: true });
    place(e, mm, FILE + P, 0x1001, { kind: 'present', uffdWp: true });
    const vma = mm.vmas.find(FILE)!;
    zapPageRange(e, mm, vma, FILE, FILE + P, { dropMarkers: false });
    expect(kindAt(e, mm, FILE)).toBe('MK-UW');
    zapPageRange(e, mm, vma, FILE + P, FILE + 2 * P, { dropMarkers: true });
    expect(kindAt(e, mm, FILE + P)).toBe('NONE');
    expectClean(e);
  });

  it('§2.4 ZP: cleared, the zero page untouched', () => {
    const { e, mm } = space();
    const z = zeroPages(e);
    for (const a of [ANON, ANON + P, ANON + 2 * P]) mm.map(a, { entry: { kind: 'present', number: z.zeroPfn, special: true } });
    expect(kindAt(e, mm, ANON + P)).toBe('ZP');
    expect(munmap(e, mm, ANON, 2 * P).ok).toBe(true);
    expect(kindAt(e, mm, ANON + P)).toBe('NONE');
    expect(kindAt(e, mm, ANON + 2 * P)).toBe('ZP');
    expect(e.folios.exists(z.zero)).toBe(true);
    expectClean(e);
  });

  it('§2.4 PN: like P (the anon folio is freed)', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', protnone: true });
    expect(kindAt(e, mm, ANON)).toBe('PN');
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  for (const kind of ['device-private-read', 'device-private-write'] as const) {
    it(`§2.4 ${kind === 'device-private-read' ? 'DP-R' : 'DP-W'}: cleared, reference dropped: the device page is freed; kept while mapped elsewhere`, () => {
      const { e, mm } = space();
      const dev = e.addDeviceMemory();
      const f = place(e, mm, ANON, dev.base, { kind });
      const g = place(e, mm, ANON + P, dev.base + 1, { kind });
      const child = e.createMm();
      const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
      e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
      child.map(ANON + P, { entry: { kind, number: dev.base + 1 } });
      expect(munmap(e, mm, ANON, 2 * P).ok).toBe(true);
      expect(e.folios.exists(f)).toBe(false);
      expect(e.folio(g)).toMatchObject({ mapcount: 1, devicePrivate: true });
      expectClean(e);
    });
  }

  it('§2.4 DX: cleared, mapcount dropped, folio freed', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'device-exclusive' });
    expect(e.folio(f).mapcount).toBe(1);
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§2.4 SWAP: cleared, swap count −1; the slot is freed when its last entry goes', () => {
    const { e, mm } = space();
    const swap = opsState(e).swap;
    const slot = swap.alloc(0x55);
    swap.dup(slot);
    mm.map(ANON, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    mm.map(ANON + M2, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(swap.count(slot)).toBe(1);
    expect(munmap(e, mm, ANON + M2, P).ok).toBe(true);
    expect(swap.has(slot)).toBe(false);
    expectClean(e);
  });

  for (const kind of ['migration-read', 'migration-read-exclusive', 'migration-write'] as const) {
    it(`§2.4 ${kind}: cleared, no rmap change and no reference dropped (the folio is not freed here)`, () => {
      const { e, mm } = space();
      const f = place(e, mm, ANON, 0x1000, { kind });
      expect(e.folio(f).mapcount).toBe(0);
      expect(munmap(e, mm, ANON, P).ok).toBe(true);
      expect(kindAt(e, mm, ANON)).toBe('NONE');
      expect(e.folios.exists(f)).toBe(true);
      expectClean(e);
    });
  }

  it('§2.4 HWP and MK-PSN: cleared', () => {
    const { e, mm } = space();
    const f = e.createFolio({ number: 0x1000 });
    mm.map(ANON, { entry: { kind: 'hwpoison', number: 0x1000 } });
    mm.map(ANON + P, { entry: { kind: 'marker', poisoned: true } });
    expect([kindAt(e, mm, ANON), kindAt(e, mm, ANON + P)]).toEqual(['HWP', 'MK-PSN']);
    zapPageRange(e, mm, mm.vmas.find(ANON)!, ANON, ANON + 2 * P, { dropMarkers: false });
    expect(leavesIn(e, mm, ANON, ANON + 2 * P)).toEqual([]);
    expect(e.folios.exists(f)).toBe(true);
    expectClean(e);
  });

  it('§2.4 MK-UW: always cleared in an anon VMA; kept in a file VMA unless markers are dropped (munmap drops it)', () => {
    const { e, mm } = space();
    mm.map(ANON, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(FILE, { entry: { kind: 'marker', uffdWp: true } });
    zapPageRange(e, mm, mm.vmas.find(ANON)!, ANON, ANON + P, { dropMarkers: false });
    const r = zapPageRange(e, mm, mm.vmas.find(FILE)!, FILE, FILE + P, { dropMarkers: false });
    expect([kindAt(e, mm, ANON), kindAt(e, mm, FILE), r.kept]).toEqual(['NONE', 'MK-UW', 1]);
    expect(munmap(e, mm, FILE, P).ok).toBe(true);
    expect(kindAt(e, mm, FILE)).toBe('NONE');
    expectClean(e);
  });

  it('§2.4 MK-GRD: kept unless markers are dropped; munmap drops it', () => {
    const { e, mm } = space();
    mm.map(ANON, { entry: { kind: 'marker', guard: true } });
    zapPageRange(e, mm, mm.vmas.find(ANON)!, ANON, ANON + P, { dropMarkers: false });
    expect(kindAt(e, mm, ANON)).toBe('MK-GRD');
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expectClean(e);
  });
});

describe('§2.5 zap per PMD entry kind', () => {
  it('§2.5 PMD anon THP: cleared, entire mapcount −1, folio freed', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x2000, { kind: 'present', write: true }, 9, 'pmd');
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§2.5 PMD anon THP mapped in another mm too: entire mapcount 2 → 1, kept', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x2000, { kind: 'present' }, 9, 'pmd');
    const child = e.createMm();
    const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
    e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
    child.map(ANON, { level: 'pmd', entry: { kind: 'present', number: 0x2000 } });
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(e.folio(f)).toMatchObject({ entireMapcount: 1, mapcount: 1 });
    expectClean(e);
  });

  it('§2.5 PMD file THP: cleared, mapcount 0, the page-cache folio stays', () => {
    const { e, mm } = space();
    const f = place(e, mm, FILE, 0x2000, { kind: 'present' }, 9, 'pmd');
    expect(munmap(e, mm, FILE, M2).ok).toBe(true);
    expect(e.folio(f)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expectClean(e);
  });

  it('§2.5 HZP: cleared, the huge zero page untouched', () => {
    const { e, mm } = space();
    const z = zeroPages(e);
    mm.map(ANON, { level: 'pmd', entry: { kind: 'present', number: z.hugePfn, special: true } });
    expect(kindAt(e, mm, ANON)).toBe('HZP');
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(z.huge)).toBe(true);
    expectClean(e);
  });

  it('§2.5 PMD MIG-*: cleared, no rmap, the folio not put', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x2000, { kind: 'migration-write' }, 9, 'pmd');
    expect(kindAt(e, mm, ANON)).toBe('MIG-W');
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(true);
    expectClean(e);
  });

  it('§2.5 PMD DP-*: cleared, entire mapcount −1, the device THP freed', () => {
    const { e, mm } = space();
    const dev = e.addDeviceMemory();
    const f = place(e, mm, ANON, dev.base, { kind: 'device-private-write' }, 9, 'pmd');
    expect(e.folio(f).entireMapcount).toBe(1);
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§2.5 HT (hugetlb leaf): cleared; a private hugetlb folio is freed', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x2000000, end: 0x2400000, flags: { hugetlb: '2M' } });
    const f = e.createFolio({ number: 0x4000, hugetlb: '2M', anonVma: e.rmap.anon.prepare(v).id, index: linearPageIndex(v, 0x2000000) });
    mm.map(0x2000000, { level: 'pmd', entry: { kind: 'present', number: 0x4000, write: true } });
    expect(kindAt(e, mm, 0x2000000)).toBe('HT');
    expect(munmap(e, mm, 0x2000000, 2 * M2).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });
});
