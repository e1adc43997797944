// fork at the PMD level (kernel-operations.md §1.5 copy_huge_pmd, one test per row) and of hugetlb VMAs
// (§1.6 copy_hugetlb_page_range): entries, entire mapcounts, AnonExclusive, pinned THPs split or copied.
import { describe, expect, it } from 'vitest';
import { linearPageIndex, type Engine, type Mm, type Vma, type VmaFlags } from '../src/index.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { A, H, PAGE, PMD, anonFolio, engine, expectReachable, fork, page, pin, setup } from './ops-fork-helpers.js';
import { leafAt as at } from './ops-helpers.js';

describe('§1.5 PMD level: one test per row', () => {
  function thp(e: Engine, p: Mm, v: Vma, va = A) {
    const f = anonFolio(e, v, va, 9);
    e.folios.setTag(f, 0, 512, 0x99);
    p.map(va, { level: 'pmd', entry: { kind: 'present', number: e.folio(f).number, write: true, user: true, young: true, dirty: true, softDirty: true } });
    return f;
  }

  it('§1.5 PMD not pinned: both write-protected, child old; entire mapcount 2, head AnonExclusive cleared', () => {
    const { e, p, v } = setup();
    const f = thp(e, p, v);
    const c = fork(e, p);
    const pl = at(e, p, A)!;
    const cl = at(e, c, A)!;
    expect([pl.kind, cl.kind]).toEqual(['PMD', 'PMD']);
    expect(pl.entry.bits).toMatchObject({ write: false, young: true, dirty: true, softDirty: true });
    expect(cl.entry.bits).toMatchObject({ write: false, young: false, dirty: true, softDirty: true });
    expect(e.folio(f)).toMatchObject({ entireMapcount: 2, mapcount: 2 });
    expect(page(e, f, 0)).toMatchObject({ anonExclusive: false, tag: 0x99 });
    expectReachable(e, f, [v, c.vmas.find(A)!], A);
  });

  it('§1.5 PMD pinned exclusive: split into 512 PTEs, then every page copied eagerly (§1.4 row 3)', () => {
    const { e, p, v } = setup();
    const f = thp(e, p, v);
    pin(e, p, f);
    const c = fork(e, p);
    const pls = leavesIn(e, p, A, A + PMD);
    expect(pls).toHaveLength(512);
    expect(pls.every((l) => l.kind === 'PL' && l.entry.bits.write)).toBe(true);
    expect(e.folio(f)).toMatchObject({ entireMapcount: 0, mapcount: 512 });
    const cls = leavesIn(e, c, A, A + PMD);
    expect(cls).toHaveLength(512);
    expect(cls.every((l) => l.kind === 'P' && l.entry.bits.write && l.folio!.id !== f)).toBe(true);
    expect(new Set(cls.map((l) => l.folio!.id)).size).toBe(512);
    expect(c.translate(A + 77 * PAGE).page).toMatchObject({ tag: 0x99, anonExclusive: true, mapcount: 1 });
  });

  it('§1.5 HZP: unchanged, child HZP read-only', () => {
    const { e, p } = setup();
    const z = zeroPages(e);
    p.map(A, { level: 'pmd', entry: { kind: 'present', number: z.hugePfn, special: true, user: true } });
    const c = fork(e, p);
    expect([at(e, p, A)!.kind, at(e, c, A)!.kind]).toEqual(['HZP', 'HZP']);
    expect(at(e, c, A)!.entry.bits.write).toBe(false);
    expect(e.folio(z.huge).mapcount).toBe(0);
  });

  it('§1.5 PMD MIG-W: MIG-R in both, soft-dirty and uffd-wp kept in the parent', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 9);
    p.map(A, { level: 'pmd', entry: { kind: 'migration-write', number: e.folio(f).number, young: true, flags: { softDirty: true, uffdWp: true } } });
    const c = fork(e, p);
    expect([at(e, p, A)!.kind, at(e, c, A)!.kind]).toEqual(['MIG-R', 'MIG-R']);
    expect(at(e, p, A)!.entry.bits).toMatchObject({ softDirty: true, uffdWp: true, young: true });
    expect(at(e, c, A)!.entry.bits).toMatchObject({ softDirty: true, uffdWp: false });
    expect(e.folio(f).mapcount).toBe(0);
  });

  it('§1.5 PMD MIG-RX: MIG-R in both', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 9);
    p.map(A, { level: 'pmd', entry: { kind: 'migration-read-exclusive', number: e.folio(f).number } });
    const c = fork(e, p);
    expect([at(e, p, A)!.kind, at(e, c, A)!.kind]).toEqual(['MIG-R', 'MIG-R']);
  });

  it('§1.5 PMD MIG-R: unchanged, child MIG-R', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 9);
    p.map(A, { level: 'pmd', entry: { kind: 'migration-read', number: e.folio(f).number } });
    const before = at(e, p, A)!.raw;
    const c = fork(e, p);
    expect(at(e, p, A)!.raw).toEqual(before);
    expect(at(e, c, A)!.raw).toEqual(before);
  });

  it('§1.5 PMD DP-W: DP-R in both with soft-dirty kept; entire mapcount 2, AnonExclusive cleared', () => {
    const { e, p, v, av } = setup({ deviceModel: 'offset', semantics: 'series' });
    const dev = e.addDeviceMemory();
    const d = e.createFolio({ namespace: dev.namespace, number: dev.base + 512, order: 9, anonVma: av.id, index: linearPageIndex(v, A) });
    e.folios.setAnonExclusive(d, 0, 512, true);
    p.map(A, { level: 'pmd', entry: { kind: 'device-private-write', number: dev.base + 512, flags: { softDirty: true } } });
    const c = fork(e, p);
    expect([at(e, p, A)!.kind, at(e, c, A)!.kind]).toEqual(['DP-R', 'DP-R']);
    expect(at(e, p, A)!.entry.bits.softDirty).toBe(true);
    expect(at(e, c, A)!.entry.bits.softDirty).toBe(true);
    expect(e.folio(d)).toMatchObject({ entireMapcount: 2 });
    expect(page(e, d, 0).anonExclusive).toBe(false);
    expectReachable(e, d, [v, c.vmas.find(A)!], A);
  });

  it('§1.5 PMD DP-R: unchanged, child DP-R, entire mapcount 2', () => {
    const { e, p, v, av } = setup();
    const dev = e.addDeviceMemory();
    const d = e.createFolio({ namespace: dev.namespace, number: dev.base, order: 9, anonVma: av.id, index: linearPageIndex(v, A) });
    p.map(A, { level: 'pmd', entry: { kind: 'device-private-read', number: dev.base } });
    const before = at(e, p, A)!.raw;
    const c = fork(e, p);
    expect(at(e, p, A)!.raw).toEqual(before);
    expect(at(e, c, A)!.kind).toBe('DP-R');
    expect(e.folio(d).entireMapcount).toBe(2);
  });

  it('§1.5 a file THP PMD is skipped (the child refaults it); PTEs of the same VMA are copied', () => {
    const e = engine();
    const p = e.createMm();
    const v = p.addVma({ start: A, end: A + 2 * PMD, file: 7, pgoff: 0, flags: { thp: true } });
    e.rmap.anon.prepare(v); // private file VMA that COWed once: its tables are copied (§1.3)
    const thpF = e.createFolio({ number: 0x4000, order: 9, file: 7, index: 0 });
    p.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x4000, user: true } });
    const small = e.createFolio({ number: 0x5000, file: 7, index: 512 });
    p.map(A + PMD, { entry: { kind: 'present', number: 0x5000, user: true } });
    const c = fork(e, p);
    expect(at(e, c, A)).toBeUndefined();
    expect(at(e, p, A)!.kind).toBe('PMD');
    expect(e.folio(thpF).mapcount).toBe(1);
    expect(at(e, c, A + PMD)!.kind).toBe('P');
    expect(e.folio(small).mapcount).toBe(2);
  });
});

describe('§1.6 hugetlb', () => {
  function hugetlbSetup(flags: Partial<VmaFlags> = {}) {
    const e = engine();
    const p = e.createMm();
    const v = p.addVma({ start: H, end: H + 2 * PMD, flags: { hugetlb: '2M', ...flags } });
    const av = e.rmap.anon.prepare(v);
    const f = opsState(e).alloc.alloc({ hugetlb: '2M', anonVma: av.id, index: linearPageIndex(v, H) })!;
    e.folios.setAnonExclusive(f, 0, 512, true);
    e.folios.setTag(f, 0, 256, 0x31);
    e.folios.setTag(f, 256, 256, 0x32);
    p.map(H, { level: 'pmd', entry: { kind: 'present', number: e.folio(f).number, write: true, user: true, young: true, dirty: true } });
    return { e, p, v, av, f };
  }

  it('§1.6 present anon hugetlb page, COW: both write-protected (no mkold), try-dup clears AnonExclusive, mapcount 2', () => {
    const { e, p, v, f } = hugetlbSetup();
    const c = fork(e, p);
    const pl = at(e, p, H)!;
    const cl = at(e, c, H)!;
    expect([pl.kind, cl.kind]).toEqual(['HT', 'HT']);
    expect(pl.entry.bits).toMatchObject({ write: false, young: true, dirty: true });
    expect(cl.entry.bits).toMatchObject({ write: false, young: true, dirty: true });
    expect(e.folio(f)).toMatchObject({ mapcount: 2, entireMapcount: 2 });
    expect(page(e, f).anonExclusive).toBe(false);
    expectReachable(e, f, [v, c.vmas.find(H)!], H);
  });

  it('§1.6 pinned anon hugetlb page: a new huge page for the child with the tags; parent untouched', () => {
    const { e, p, f } = hugetlbSetup();
    pin(e, p, f);
    const before = at(e, p, H)!.raw;
    const c = fork(e, p);
    expect(at(e, p, H)!.raw).toEqual(before);
    const cl = at(e, c, H)!;
    expect(cl.kind).toBe('HT');
    expect(cl.folio!.id).not.toBe(f);
    expect(cl.folio!.hugetlb).toBe('2M');
    expect(cl.entry.bits).toMatchObject({ write: true, dirty: true });
    expect([c.translate(H).page!.tag, c.translate(H + 300 * PAGE).page!.tag]).toEqual([0x31, 0x32]);
    expect(e.folio(cl.folio!.id).anonVma).toBe(e.rmap.anon.of(c.vmas.find(H)!)!.id);
    expect(e.folio(f).mapcount).toBe(1);
  });

  it('§1.6 migration entry other than MIG-R in a COW hugetlb VMA: MIG-R in parent and child; HWP copied', () => {
    const { e, p, v } = hugetlbSetup();
    const g = opsState(e).alloc.alloc({ hugetlb: '2M', anonVma: e.rmap.anon.of(v)!.id, index: linearPageIndex(v, H + PMD) })!;
    p.map(H + PMD, { level: 'pmd', entry: { kind: 'migration-write', number: e.folio(g).number, dirty: true } });
    const c = fork(e, p);
    expect([at(e, p, H + PMD)!.kind, at(e, c, H + PMD)!.kind]).toEqual(['MIG-R', 'MIG-R']);
    expect(at(e, c, H + PMD)!.entry.bits.dirty).toBe(true);
  });

  it('§1.6 HWP in a hugetlb VMA is copied', () => {
    const { e, p, v } = hugetlbSetup();
    const g = opsState(e).alloc.alloc({ hugetlb: '2M', anonVma: e.rmap.anon.of(v)!.id, index: linearPageIndex(v, H + PMD) })!;
    p.map(H + PMD, { level: 'pmd', entry: { kind: 'hwpoison', number: e.folio(g).number } });
    const c = fork(e, p);
    expect(at(e, c, H + PMD)!.kind).toBe('HWP');
  });

  it('§1.6 a shared hugetlb file VMA without anon_vma is not copied', () => {
    const e = engine();
    const p = e.createMm();
    p.addVma({ start: H, end: H + PMD, file: 3, pgoff: 0, flags: { hugetlb: '2M', shared: true } });
    const f = e.createFolio({ number: 0x8000, hugetlb: '2M', file: 3, index: 0 });
    p.map(H, { level: 'pmd', entry: { kind: 'present', number: 0x8000, write: true, user: true } });
    const c = fork(e, p);
    expect(at(e, c, H)).toBeUndefined();
    expect(e.folio(f).mapcount).toBe(1);
  });
});
