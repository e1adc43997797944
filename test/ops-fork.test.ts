// fork (kernel-operations.md §1): dup_mmap, anon_vma_fork and copy_page_range, one test per row of the §1.4 PTE
// and §1.5 PMD tables and per §1.6 hugetlb case, plus VM_DONTCOPY / VM_WIPEONFORK, pinned pages (eager copies,
// §12.2 tags), nested forks and the ENOMEM failure that leaves the parent exactly as it was.
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex, type EngineOptions } from '../src/index.js';
import type { Mm } from '../src/model/mm.js';
import type { Vma, VmaFlags } from '../src/model/vma.js';
import type { FolioId } from '../src/model/folio.js';
import { dupMmap } from '../src/mm/fork.js';
import { leavesIn, zeroPages, type LeafView } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { rmapCandidates, rmapWalk } from '../src/rmap/rmap-walk.js';

const PAGE = 4096;
const PMD = 2 ** 21;
const A = 0x40000000; // anon VMA start (1 GiB aligned)
const H = 0x80000000; // hugetlb VMA start

function engine(o: EngineOptions = {}): Engine {
  return new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096, ...o });
}

/** A parent mm with one anon VMA of 8 MiB at A (flags as given) that has an anon_vma. */
function setup(o: EngineOptions = {}, flags: Partial<VmaFlags> = {}) {
  const e = engine(o);
  const p = e.createMm();
  const v = p.addVma({ start: A, end: A + 4 * PMD, flags: { thp: true, ...flags } });
  const av = e.rmap.anon.prepare(v);
  zeroPages(e); // made on first use (the first present leaf viewed): before any snapshot or folio count
  return { e, p, v, av };
}

/** An anon folio of the VMA's anon_vma at `va`, AnonExclusive on every page (§0.4 new-anon-rmap), not mapped. */
function anonFolio(e: Engine, v: Vma, va: number, order = 0, exclusive = true): FolioId {
  const av = e.rmap.anon.prepare(v);
  const id = opsState(e).alloc.alloc({ order, anonVma: av.id, index: linearPageIndex(v, va) })!;
  e.folios.setAnonExclusive(id, 0, 2 ** order, exclusive);
  return id;
}

/** The leaf starting at va (undefined: none). */
function at(e: Engine, mm: Mm, va: number): LeafView | undefined {
  return leavesIn(e, mm, va, va + PAGE).find((l) => l.va === va);
}

function page(e: Engine, f: FolioId, i = 0) {
  const info = e.folio(f);
  return e.page(info.namespace, info.number + i)!;
}

function fork(e: Engine, p: Mm): Mm {
  const r = dupMmap(e, p);
  if (!r.ok) throw new Error(`fork failed: ${r.errno}`);
  expect(e.checkInvariants().problems).toEqual([]);
  return r.child;
}

/** rmap reaches the folio in both VMAs (§1.2 result) and the walk finds the mapping at va in each. */
function expectReachable(e: Engine, f: FolioId, vmas: Vma[], va?: number) {
  const ids = rmapCandidates(e, f).map((c) => c.vma.id);
  for (const v of vmas) expect(ids).toContain(v.id);
  if (va === undefined) return;
  const found = new Set<number>();
  rmapWalk(e, [f], { rmapOne: (c, m) => { if (m.some((x) => x.address === va)) found.add(c.vma.id); return true; } });
  for (const v of vmas) expect(found.has(v.id), `walk finds the mapping in VMA ${v.id}`).toBe(true);
}

/** Everything fork may touch: leaves, VMAs, anon_vma links, folios with their pages, swap, mms. */
function snapshot(e: Engine) {
  const mms = e.allMms().map((mm) => ({
    id: mm.id,
    leaves: leavesIn(e, mm, 0, e.geometry.taskSize).map((l) => [l.va, l.level, l.raw.lo, l.raw.hi]),
    vmas: mm.vmas.all().map((v) => ({ ...v, chain: e.rmap.anon.chain(v).map((c) => c.anonVma.id), own: e.rmap.anon.of(v)?.id })),
  }));
  const folios = [...e.folios.all()].map((id) => {
    const f = e.folio(id);
    return { f, pages: Array.from({ length: f.nrPages }, (_, i) => e.page(f.namespace, f.number + i)) };
  });
  return JSON.stringify({ mms, folios, swap: opsState(e).swap.used, anonVmas: e.rmap.anon.count });
}

function pin(e: Engine, mm: Mm, f: FolioId) {
  opsState(e).pins.set(f, 1);
  opsState(e).everPinned.add(mm.id);
}

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
    const before = snapshot(e);
    const mms = e.allMms().length;
    expect(dupMmap(e, p)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(e.allMms()).toHaveLength(mms);
    expect(snapshot(e)).toBe(before);
    expect(e.checkInvariants().ok).toBe(true);
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
    const before = snapshot(e);
    const ids = e.allMms().map((m) => m.id);
    expect(dupMmap(e, p)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(snapshot(e)).toBe(before);
    expect(e.allMms().map((m) => m.id)).toEqual(ids);
    expect(e.checkInvariants().ok).toBe(true);
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

describe('§1.1 dup_mmap and §1.2 anon_vma_fork', () => {
  it('§1.1 every VMA is copied with its bounds, pgoff, flags (VM_LOCKED cleared) and file, in order', () => {
    const e = engine();
    const p = e.createMm();
    p.addVma({ start: A, end: A + PMD, flags: { locked: true, mergeable: true } });
    p.addVma({ start: A + 2 * PMD, end: A + 3 * PMD, file: 9, pgoff: 0x40, flags: { write: false } });
    const c = fork(e, p);
    expect(c.vmas.all().map((v) => [v.start, v.end, v.pgoff, v.file, v.flags.locked, v.flags.mergeable, v.flags.write])).toEqual([
      [A, A + PMD, A / PAGE, null, false, true, true],
      [A + 2 * PMD, A + 3 * PMD, 0x40, 9, false, false, false],
    ]);
    expect(p.vmas.all()[0].flags.locked).toBe(true);
  });

  it('§1.1 VM_DONTCOPY leaves a hole; VM_WIPEONFORK gives a VMA with no anon_vma and no entries', () => {
    const e = engine();
    const p = e.createMm();
    const keep = p.addVma({ start: A, end: A + PMD });
    const dont = p.addVma({ start: A + PMD, end: A + 2 * PMD, flags: { dontcopy: true } });
    const wipe = p.addVma({ start: A + 2 * PMD, end: A + 3 * PMD, flags: { wipeonfork: true } });
    const folios = [keep, dont, wipe].map((v) => {
      const f = anonFolio(e, v, v.start);
      p.map(v.start, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
      return f;
    });
    const c = fork(e, p);
    expect(c.vmas.find(A + PMD)).toBeUndefined();
    const cw = c.vmas.find(A + 2 * PMD)!;
    expect(cw.flags.wipeonfork).toBe(true);
    expect(e.rmap.anon.of(cw)).toBeNull();
    expect(e.rmap.anon.chain(cw)).toEqual([]);
    expect(leavesIn(e, c, A + PMD, A + 3 * PMD)).toEqual([]);
    expect(folios.map((f) => e.folio(f).mapcount)).toEqual([2, 1, 1]);
    expect(page(e, folios[2]).anonExclusive).toBe(true);
  });

  it('§1.2 the child VMA gets AVCs to every anon_vma of the parent chain plus its own anon_vma under the parent\'s', () => {
    const { e, p, v, av } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    const c = fork(e, p);
    const cv = c.vmas.find(A)!;
    const own = e.rmap.anon.of(cv)!;
    expect(own).not.toBe(av);
    expect(own.parent).toBe(av);
    expect(own.root).toBe(av.root);
    expect(e.rmap.anon.chain(cv).map((x) => x.anonVma)).toEqual([av, own]);
    expect(av.numChildren).toBe(1);
  });

  it('§1.2 a fork of a fork (depth 3) keeps every folio reachable from its anon_vma in all four mms', () => {
    const { e, p, v } = setup();
    const small = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(small).number, write: true, user: true } });
    const big = anonFolio(e, v, A + PMD, 9);
    p.map(A + PMD, { level: 'pmd', entry: { kind: 'present', number: e.folio(big).number, write: true, user: true } });
    const mms = [p];
    for (let d = 0; d < 3; d++) mms.push(fork(e, mms[mms.length - 1]));
    const vmas = mms.map((m) => m.vmas.find(A)!);
    expectReachable(e, small, vmas, A);
    expectReachable(e, big, vmas, A + PMD);
    expect(e.folio(small).mapcount).toBe(4);
    expect(e.folio(big).entireMapcount).toBe(4);
    // Each generation's own anon_vma hangs under its parent's; all share the root.
    const owns = vmas.map((x) => e.rmap.anon.of(x)!);
    for (let d = 1; d < 4; d++) {
      expect(owns[d].parent).toBe(owns[d - 1]);
      expect(owns[d].root).toBe(owns[0]);
    }
    expect(e.checkInvariants().ok).toBe(true);
  });

  it('§1.1 step 4 ENOMEM: pinned pages need five eager copies and RAM has two pages left: the parent is unchanged, the child and the folios taken are freed', () => {
    const { e, p, v } = setup({ ramPages: 2048 });
    const f = anonFolio(e, v, A);
    const g = anonFolio(e, v, A + PAGE, 2);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    p.map(A + PAGE, { count: 4, entry: { kind: 'present', number: e.folio(g).number, write: true, user: true } });
    pin(e, p, f);
    pin(e, p, g); // five eager copies needed
    const alloc = opsState(e).alloc;
    const filler: number[] = [];
    for (let id = alloc.alloc({ order: 0 }); id !== null; id = alloc.alloc({ order: 0 })) filler.push(id);
    alloc.free(filler.pop()!);
    alloc.free(filler.pop()!); // two pages left: the first two allocations succeed and must be given back
    const before = snapshot(e);
    const ids = e.allMms().map((m) => m.id);
    const r = dupMmap(e, p);
    expect(r).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(snapshot(e)).toBe(before);
    expect(e.allMms().map((m) => m.id)).toEqual(ids);
    expect(page(e, g)).toMatchObject({ anonExclusive: true, mapcount: 1 });
    expect(e.checkInvariants().ok).toBe(true);
    expect(alloc.alloc({ order: 0 })).not.toBeNull(); // the two free pages are free again
    expect(alloc.alloc({ order: 0 })).not.toBeNull();
  });

  it('§12.2 fork copies no tags: every page the child maps is the parent\'s page with its tag', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 3);
    for (let i = 0; i < 8; i++) e.folios.setTag(f, i, 1, 0x100 + i);
    p.map(A, { count: 8, entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    const folios = [...e.folios.all()].length;
    const c = fork(e, p);
    expect([...e.folios.all()].length).toBe(folios);
    for (let i = 0; i < 8; i++) {
      expect(c.translate(A + i * PAGE).page).toEqual(p.translate(A + i * PAGE).page);
      expect(c.translate(A + i * PAGE).page!.tag).toBe(0x100 + i);
    }
  });
});
