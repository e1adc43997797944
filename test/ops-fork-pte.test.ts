// fork at the PTE level (kernel-operations.md §1.4 copy_present_ptes / copy_nonpresent_pte, one test per row;
// §1.3 which VMAs are copied): entries in parent and child, mapcounts, AnonExclusive, pinned-page eager copies,
// swap counts, tags (§12.2) and rmap reachability; a failed fork leaves the parent exactly as it was.
import { describe, expect, it } from 'vitest';
import { linearPageIndex } from '../src/index.js';
import { dupMmap } from '../src/mm/fork.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { A, PAGE, PMD, anonFolio, engine, expectReachable, fork, page, pin, setup } from './ops-fork-helpers.js';
import { engineSnapshot, expectClean, leafAt as at } from './ops-helpers.js';

describe('§1.4 PTE level: one test per row', () => {
  it('§1.4 NONE: the child gets none where the parent has none', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    const c = fork(e, p);
    expect(at(e, c, A + PAGE)).toBeUndefined();
    expect(c.entryAt(A + PAGE).entry.kind).toBe('none');
    expect(leavesIn(e, c, v.start, v.end)).toHaveLength(1);
  });

  it('§1.4 P anon not pinned, COW: both read-only, child old, dirty kept as saved dirty, AnonExclusive cleared, tag unchanged', () => {
    const { e, p, v, av } = setup();
    const f = anonFolio(e, v, A);
    e.folios.setTag(f, 0, 1, 0xa1);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true, young: true, dirty: true, softDirty: true, uffdWp: true } });
    const c = fork(e, p);
    const cv = c.vmas.find(A)!;
    const pl = at(e, p, A)!;
    const cl = at(e, c, A)!;
    expect([pl.kind, cl.kind]).toEqual(['P', 'P']);
    expect(pl.entry.bits).toMatchObject({ write: false, young: true, dirty: true, softDirty: true, uffdWp: true });
    expect(pl.entry.present).toMatchObject({ dirty: false, savedDirty: true });
    expect(cl.entry.number).toBe(pl.entry.number);
    expect(cl.entry.bits).toMatchObject({ write: false, young: false, dirty: true, softDirty: true, uffdWp: false });
    expect(e.folio(f).mapcount).toBe(2);
    expect(page(e, f)).toMatchObject({ mapcount: 2, anonExclusive: false, tag: 0xa1 });
    expect(c.translate(A).page?.tag).toBe(0xa1);
    expect(e.folio(f).anonVma).toBe(av.id); // mapping and index unchanged
    expect(e.rmap.anon.linked(cv, av)).toBe(true);
    expectReachable(e, f, [v, cv], A);
  });

  it('§1.4 PL: every page of a large folio is dup\'d (batched), each page mapcount 2', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 4);
    p.map(A, { count: 16, entry: { kind: 'present', number: e.folio(f).number, write: true, user: true, young: true } });
    const c = fork(e, p);
    const cv = c.vmas.find(A)!;
    expect(leavesIn(e, c, A, A + 16 * PAGE).map((l) => l.kind)).toEqual(Array(16).fill('PL'));
    expect(leavesIn(e, p, A, A + 16 * PAGE).every((l) => !l.entry.bits.write)).toBe(true);
    expect(e.folio(f).mapcount).toBe(32);
    for (let i = 0; i < 16; i++) expect(page(e, f, i)).toMatchObject({ mapcount: 2, anonExclusive: false });
    expectReachable(e, f, [v, cv], A);
  });

  it('§1.4 P pinned exclusive (parent has pinned): eager copy into a new exclusive order-0 folio with the tag; parent untouched', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    e.folios.setTag(f, 0, 1, 0xbeef);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true, young: true, dirty: true } });
    pin(e, p, f);
    const before = at(e, p, A)!.raw;
    const c = fork(e, p);
    const cv = c.vmas.find(A)!;
    expect(at(e, p, A)!.raw).toEqual(before);
    expect(page(e, f)).toMatchObject({ mapcount: 1, anonExclusive: true });
    const cl = at(e, c, A)!;
    expect(cl.kind).toBe('P');
    expect(cl.entry.number).not.toBe(e.folio(f).number);
    expect(cl.entry.bits).toMatchObject({ write: true, dirty: true, young: true });
    const nf = cl.folio!;
    expect(nf.anonVma).toBe(e.rmap.anon.of(cv)!.id); // new-anon-rmap(child VMA, exclusive)
    expect(nf.index).toBe(linearPageIndex(cv, A));
    expect(page(e, nf.id)).toMatchObject({ mapcount: 1, anonExclusive: true, tag: 0xbeef });
    expect(opsState(e).everPinned.has(c.id)).toBe(false); // the child has pinned nothing
    expectReachable(e, nf.id, [cv], A);
  });

  it('§1.4 PL pinned: only the AnonExclusive pages are copied, one small folio each; the others are shared', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 2);
    e.folios.setAnonExclusive(f, 2, 2, false);
    for (let i = 0; i < 4; i++) e.folios.setTag(f, i, 1, 0x10 + i);
    p.map(A, { count: 4, entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    pin(e, p, f);
    const c = fork(e, p);
    const cl = leavesIn(e, c, A, A + 4 * PAGE);
    expect(cl.map((l) => l.kind)).toEqual(['P', 'P', 'PL', 'PL']);
    expect(cl.map((l) => l.entry.bits.write)).toEqual([true, true, false, false]);
    expect(cl.map((l) => c.translate(l.va).page!.tag)).toEqual([0x10, 0x11, 0x12, 0x13]);
    expect(leavesIn(e, p, A, A + 4 * PAGE).map((l) => l.entry.bits.write)).toEqual([true, true, false, false]);
    expect([0, 1, 2, 3].map((i) => page(e, f, i).mapcount)).toEqual([1, 1, 2, 2]);
  });

  it('§1.4 P pinned but the parent mm never pinned: an ordinary dup', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    opsState(e).pins.set(f, 1);
    const c = fork(e, p);
    expect(at(e, c, A)!.entry.number).toBe(e.folio(f).number);
    expect(page(e, f)).toMatchObject({ mapcount: 2, anonExclusive: false });
  });

  it('§1.4 P pinned with a hwpoisoned source page: the copy fails, fork ENOMEM, parent unchanged', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    pin(e, p, f);
    e.wasmInstance().exports.pageSetFlags(f, 1, 1 << 8, 0); // PG_hwpoison
    const before = engineSnapshot(e);
    const mms = e.allMms().length;
    expect(dupMmap(e, p)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(e.allMms()).toHaveLength(mms);
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§1.4 P of a page-cache folio in a private file VMA: both keep it read-only, child old, file mapcount 2', () => {
    const e = engine();
    const p = e.createMm();
    const v = p.addVma({ start: A, end: A + PMD, file: 7, pgoff: 0, flags: { write: true } });
    e.rmap.anon.prepare(v); // a COWed page once made it an anon_vma
    const f = e.createFolio({ number: 0x3000, file: 7, index: 5 });
    e.folios.setTag(f, 0, 1, 0x77);
    p.map(A + 5 * PAGE, { entry: { kind: 'present', number: 0x3000, user: true, young: true, dirty: true } });
    const c = fork(e, p);
    const cl = at(e, c, A + 5 * PAGE)!;
    expect(cl.kind).toBe('P');
    expect(cl.entry.bits).toMatchObject({ write: false, young: false, dirty: true });
    expect(at(e, p, A + 5 * PAGE)!.entry.bits).toMatchObject({ write: false, young: true });
    expect(e.folio(f).mapcount).toBe(2);
    expect(page(e, f).tag).toBe(0x77);
    expectReachable(e, f, [v, c.vmas.find(A)!], A + 5 * PAGE);
  });

  it('§1.4 P of a page-cache folio in a VM_SHARED VMA (copied: it holds a guard marker, §1.3 VM_MAYBE_GUARD): writable kept, child clean and old', () => {
    const e = engine();
    const p = e.createMm();
    const v = p.addVma({ start: A, end: A + PMD, file: 7, pgoff: 0, flags: { shared: true } });
    const f = e.createFolio({ number: 0x3000, file: 7, index: 0 });
    p.map(A, { entry: { kind: 'present', number: 0x3000, write: true, user: true, young: true, dirty: true } });
    p.map(A + PAGE, { entry: { kind: 'marker', guard: true } });
    const c = fork(e, p);
    expect(at(e, p, A)!.entry.bits).toMatchObject({ write: true, dirty: true, young: true });
    expect(at(e, c, A)!.entry.bits).toMatchObject({ write: true, dirty: false, young: false });
    expect(at(e, c, A + PAGE)!.kind).toBe('MK-GRD');
    expect(e.folio(f).mapcount).toBe(2);
    expectReachable(e, f, [v, c.vmas.find(A)!], A);
  });

  it('§1.3 a shared file VMA without anon_vma or guard is not copied: the child VMA is empty and refaults', () => {
    const e = engine();
    const p = e.createMm();
    p.addVma({ start: A, end: A + PMD, file: 7, pgoff: 0, flags: { shared: true } });
    const f = e.createFolio({ number: 0x3000, file: 7, index: 0 });
    p.map(A, { entry: { kind: 'present', number: 0x3000, write: true, user: true } });
    const c = fork(e, p);
    expect(c.vmas.find(A)).toMatchObject({ start: A, end: A + PMD, file: 7, pgoff: 0 });
    expect(leavesIn(e, c, A, A + PMD)).toEqual([]);
    expect(e.folio(f).mapcount).toBe(1);
  });

  it('§1.4 ZP: the zero page is copied (old), no mapcount', () => {
    const { e, p } = setup();
    const z = zeroPages(e);
    p.map(A, { entry: { kind: 'present', number: z.zeroPfn, special: true, user: true, young: true } });
    const c = fork(e, p);
    const cl = at(e, c, A)!;
    expect(cl.kind).toBe('ZP');
    expect(cl.entry.bits).toMatchObject({ write: false, young: false });
    expect(e.folio(z.zero).mapcount).toBe(0);
    expect(c.translate(A).page?.tag).toBe(0);
  });

  it('§1.4 PN: a protnone entry is copied as PN, dup\'d like P', () => {
    const { e, p, v } = setup({}, { read: false, write: false });
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, protnone: true, user: true, young: true } });
    const c = fork(e, p);
    expect([at(e, p, A)!.kind, at(e, c, A)!.kind]).toEqual(['PN', 'PN']);
    expect(at(e, c, A)!.entry.bits.young).toBe(false);
    expect(page(e, f)).toMatchObject({ mapcount: 2, anonExclusive: false });
  });

  it('§1.4 SWAP: exclusive bit cleared in the parent, child the same entry without it, swap count + 1', () => {
    const { e, p } = setup();
    const swap = opsState(e).swap;
    const off = swap.alloc(0x55);
    p.map(A, { entry: { kind: 'swap', swapType: 0, offset: off, flags: { exclusive: true, softDirty: true } } });
    const c = fork(e, p);
    const pl = at(e, p, A)!;
    const cl = at(e, c, A)!;
    expect([pl.kind, cl.kind]).toEqual(['SWAP', 'SWAP']);
    expect(pl.entry.bits).toMatchObject({ exclusive: false, softDirty: true });
    expect(cl.raw).toEqual(pl.raw);
    expect(swap.count(off)).toBe(2);
    expect(swap.tag(off)).toBe(0x55);
  });

  it('§1.4 MIG-W in a COW VMA: both MIG-R, young/dirty/soft-dirty kept, uffd-wp kept in the parent only; no mapcount', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    const n = e.folio(f).number;
    p.map(A, { entry: { kind: 'migration-write', number: n, young: true, dirty: true, flags: { softDirty: true, uffdWp: true } } });
    const c = fork(e, p);
    const pl = at(e, p, A)!;
    const cl = at(e, c, A)!;
    expect([pl.kind, cl.kind]).toEqual(['MIG-R', 'MIG-R']);
    expect(pl.entry.bits).toMatchObject({ young: true, dirty: true, softDirty: true, uffdWp: true, write: false });
    expect(cl.entry.bits).toMatchObject({ young: true, dirty: true, softDirty: true, uffdWp: false });
    expect(cl.entry.number).toBe(n);
    expect(e.folio(f).mapcount).toBe(0);
    expectReachable(e, f, [v, c.vmas.find(A)!]);
  });

  it('§1.4 MIG-W of a device-private page (series, offset model): both become the device-private MIG-R', () => {
    const { e, p, v, av } = setup({ deviceModel: 'offset', semantics: 'series' });
    const dev = e.addDeviceMemory();
    const d = e.createFolio({ namespace: dev.namespace, number: dev.base + 9, anonVma: av.id, index: linearPageIndex(v, A) });
    p.map(A, { entry: { kind: 'migration-device-private-write', number: dev.base + 9 } });
    const c = fork(e, p);
    for (const mm of [p, c]) expect(at(e, mm, A)!.entry).toMatchObject({ kind: 'migration-device-private-read', namespace: 'device-private', number: dev.base + 9 });
    expect(e.folio(d).mapcount).toBe(0);
    expectReachable(e, d, [v, c.vmas.find(A)!]);
  });

  it('§1.4 MIG-RX in a COW VMA: both MIG-R', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'migration-read-exclusive', number: e.folio(f).number } });
    const c = fork(e, p);
    expect([at(e, p, A)!.kind, at(e, c, A)!.kind]).toEqual(['MIG-R', 'MIG-R']);
  });

  it('§1.4 MIG-W in a non-COW (shared) VMA: unchanged in both', () => {
    const e = engine();
    const p = e.createMm();
    p.addVma({ start: A, end: A + PMD, file: 7, pgoff: 0, flags: { shared: true } });
    e.createFolio({ number: 0x3000, file: 7, index: 0 });
    p.map(A, { entry: { kind: 'migration-write', number: 0x3000, young: true } });
    p.map(A + PAGE, { entry: { kind: 'marker', guard: true } }); // makes the VMA copied (§1.3)
    const before = at(e, p, A)!.raw;
    const c = fork(e, p);
    expect(at(e, p, A)!.raw).toEqual(before);
    expect(at(e, c, A)!.raw).toEqual(before);
    expect(at(e, c, A)!.kind).toBe('MIG-W');
  });

  it('§1.4 MIG-R: unchanged, the child gets MIG-R', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'migration-read', number: e.folio(f).number, dirty: true } });
    const before = at(e, p, A)!.raw;
    const c = fork(e, p);
    expect(at(e, p, A)!.raw).toEqual(before);
    expect(at(e, c, A)!.raw).toEqual(before);
  });

  for (const deviceModel of ['pfn', 'offset'] as const) {
    it(`§1.4 DP-W in a COW VMA (${deviceModel} model): DP-R in both, soft-dirty dropped, uffd-wp kept in the parent, mapcount 2, AnonExclusive cleared even if pinned`, () => {
      const { e, p, v, av } = setup({ deviceModel });
      const dev = e.addDeviceMemory();
      const d = e.createFolio({ namespace: dev.namespace, number: dev.base + 3, anonVma: av.id, index: linearPageIndex(v, A) });
      e.folios.setAnonExclusive(d, 0, 1, true);
      e.folios.setTag(d, 0, 1, 0xd0);
      p.map(A, { entry: { kind: 'device-private-write', number: dev.base + 3, flags: { softDirty: true, uffdWp: true } } });
      pin(e, p, d); // device pages are not pinnable: try-dup never fails
      const c = fork(e, p);
      const pl = at(e, p, A)!;
      const cl = at(e, c, A)!;
      expect([pl.kind, cl.kind]).toEqual(['DP-R', 'DP-R']);
      expect(pl.entry.bits).toMatchObject({ softDirty: false, uffdWp: true });
      expect(cl.entry.bits).toMatchObject({ softDirty: false, uffdWp: false });
      expect(cl.entry.number).toBe(dev.base + 3);
      expect(page(e, d)).toMatchObject({ mapcount: 2, anonExclusive: false, tag: 0xd0 });
      expectReachable(e, d, [v, c.vmas.find(A)!], A);
    });
  }

  it('§1.4 DP-R: unchanged, child DP-R, mapcount 2', () => {
    const { e, p, v, av } = setup();
    const dev = e.addDeviceMemory();
    const d = e.createFolio({ namespace: dev.namespace, number: dev.base, anonVma: av.id, index: linearPageIndex(v, A) });
    p.map(A, { entry: { kind: 'device-private-read', number: dev.base, flags: { softDirty: true } } });
    const before = at(e, p, A)!.raw;
    const c = fork(e, p);
    expect(at(e, p, A)!.raw).toEqual(before);
    expect(at(e, c, A)!.kind).toBe('DP-R');
    expect(at(e, c, A)!.entry.bits.softDirty).toBe(true);
    expect(e.folio(d).mapcount).toBe(2);
  });

  it('§1.4 DX: restored to a present PTE first, then copied like P: both read-only, non-exclusive, mapcount 2', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    e.folios.setFlags(f, { dirty: true });
    p.map(A, { entry: { kind: 'device-exclusive', number: e.folio(f).number, flags: { softDirty: true } } });
    const c = fork(e, p);
    const pl = at(e, p, A)!;
    const cl = at(e, c, A)!;
    expect([pl.kind, cl.kind]).toEqual(['P', 'P']);
    expect(pl.entry.bits).toMatchObject({ write: false, young: false, dirty: true, softDirty: true });
    expect(cl.entry.bits).toMatchObject({ write: false, young: false, softDirty: true });
    expect(page(e, f)).toMatchObject({ mapcount: 2, anonExclusive: false });
    expectReachable(e, f, [v, c.vmas.find(A)!], A);
  });

  it('§1.4 DX of a pinned exclusive page: the parent is restored writable, the child gets an eager copy', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    e.folios.setTag(f, 0, 1, 0x42);
    p.map(A, { entry: { kind: 'device-exclusive', number: e.folio(f).number } });
    pin(e, p, f);
    const c = fork(e, p);
    expect(at(e, p, A)!).toMatchObject({ kind: 'P', entry: { bits: { write: true } } });
    expect(page(e, f)).toMatchObject({ mapcount: 1, anonExclusive: true });
    const cl = at(e, c, A)!;
    expect(cl.entry.number).not.toBe(e.folio(f).number);
    expect(c.translate(A).page).toMatchObject({ tag: 0x42, anonExclusive: true });
  });

  it('§1.4 DX whose folio lock is busy: fork fails with ENOMEM, the parent is exactly as before and the child freed', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    const g = anonFolio(e, v, A + PAGE);
    p.map(A, { entry: { kind: 'device-exclusive', number: e.folio(f).number } });
    p.map(A + PAGE, { entry: { kind: 'present', number: e.folio(g).number, write: true, user: true } });
    e.folios.setFlags(f, { locked: true });
    const before = engineSnapshot(e);
    const ids = e.allMms().map((m) => m.id);
    expect(dupMmap(e, p)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(engineSnapshot(e)).toBe(before);
    expect(e.allMms().map((m) => m.id)).toEqual(ids);
    expectClean(e);
  });

  it('§1.4 HWP: copied verbatim, uffd-wp dropped in the child; no mapcount', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'hwpoison', number: e.folio(f).number, flags: { uffdWp: true } } });
    const c = fork(e, p);
    const cl = at(e, c, A)!;
    expect(cl.kind).toBe('HWP');
    expect(cl.entry.number).toBe(e.folio(f).number);
    expect(cl.entry.bits.uffdWp).toBe(false);
    expect(at(e, p, A)!.entry.bits.uffdWp).toBe(true);
    expect(e.folio(f).mapcount).toBe(0);
  });

  it('§1.4 MK-GRD and MK-PSN are copied; MK-UW becomes none (the child VMA is not uffd-wp registered)', () => {
    const { e, p } = setup();
    p.map(A, { entry: { kind: 'marker', guard: true } });
    p.map(A + PAGE, { entry: { kind: 'marker', poisoned: true } });
    p.map(A + 2 * PAGE, { entry: { kind: 'marker', uffdWp: true } });
    const c = fork(e, p);
    expect(leavesIn(e, c, A, A + 3 * PAGE).map((l) => l.kind)).toEqual(['MK-GRD', 'MK-PSN']);
    expect(leavesIn(e, p, A, A + 3 * PAGE).map((l) => l.kind)).toEqual(['MK-GRD', 'MK-PSN', 'MK-UW']);
  });
});
