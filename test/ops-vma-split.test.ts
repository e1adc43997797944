// VMA split and merge (kernel-operations.md §2.2): pgoff of both halves, anon_vma links cloned, i_mmap
// membership, a straddling THP PMD split first, hugetlb refusing unaligned splits, merging only compatible
// neighbours; folios stay reachable by rmap through every change.
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex, type Mm, type Vma } from '../src/index.js';
import { zeroPages } from '../src/mm/leaf.js';
import { isolateRange, replaceVma, splitVma, vmaMergeAround } from '../src/mm/vma-split.js';
import { rmapCandidates, rmapWalk } from '../src/rmap/rmap-walk.js';
import { expectClean } from './ops-helpers.js';

function space() {
  const e = new Engine({ ramPages: 1 << 16 });
  zeroPages(e);
  const mm = e.createMm();
  return { e, mm };
}

/** An anon folio of `order` at pfn `number`, PTE-mapped at `addr` (or PMD-mapped for order 9 with pmd). */
function anonFolio(e: Engine, mm: Mm, addr: number, number: number, order = 0, pmd = false): number {
  const vma = mm.vmas.find(addr)!;
  const av = e.rmap.anon.prepare(vma);
  const id = e.createFolio({ number, order, anonVma: av.id, index: linearPageIndex(vma, addr) });
  if (pmd) mm.map(addr, { level: 'pmd', entry: { kind: 'present', number, write: true, dirty: true } });
  else mm.map(addr, { count: 2 ** order, entry: { kind: 'present', number, write: true } });
  return id;
}

/** The addresses at which rmap_walk finds `folio` mapped, per VMA start. */
function found(e: Engine, folio: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  rmapWalk(e, [folio], {
    rmapOne(c, matches) {
      out[c.vma.start.toString(16)] = matches.map((m) => m.address);
      return true;
    },
  });
  return out;
}

describe('§2.2 splitVma', () => {
  it('§2.2 rule 1: the low part keeps pgoff, the high part gets pgoff + (a − s)/4096 (anon)', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000 });
    const [low, high] = splitVma(e, mm, v, 0x500000)!;
    expect([low.start, low.end, low.pgoff]).toEqual([0x400000, 0x500000, 0x400]);
    expect([high.start, high.end, high.pgoff]).toEqual([0x500000, 0x800000, 0x500]);
    expect(mm.vmas.all()).toEqual([low, high]);
    expectClean(e);
  });

  it('§2.2 rule 1: a file VMA with pgoff 0x10 split at +0x3000: high pgoff 0x13, both in i_mmap', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x410000, file: 7, pgoff: 0x10, flags: { shared: true } });
    const [low, high] = splitVma(e, mm, v, 0x403000)!;
    expect([low.pgoff, high.pgoff]).toEqual([0x10, 0x13]);
    expect(e.rmap.iMmap.has(low)).toBe(true);
    expect(e.rmap.iMmap.has(high)).toBe(true);
    expect(e.rmap.iMmap.has(v)).toBe(false);
    expectClean(e);
  });

  it('§2.2 rule 2: both halves keep the anon_vma; the new VMA gets a copy of every AVC', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000 });
    const f = anonFolio(e, mm, 0x600000, 0x1000);
    const av = e.rmap.anon.of(v)!;
    const active = av.numActiveVmas;
    const [low, high] = splitVma(e, mm, v, 0x500000)!;
    expect(e.rmap.anon.of(low)).toBe(av);
    expect(e.rmap.anon.of(high)).toBe(av);
    expect(e.rmap.anon.linked(low, av)).toBe(true);
    expect(e.rmap.anon.linked(high, av)).toBe(true);
    expect(e.rmap.anon.chain(high).length).toBe(e.rmap.anon.chain(low).length);
    expect(av.numActiveVmas).toBe(active + 1);
    expect(e.folio(f).mapcount).toBe(1);
    expectClean(e);
  });

  it('§2.2 a folio mapped in the high half stays reachable by rmapCandidates and rmap_walk after the split', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000 });
    const hi = anonFolio(e, mm, 0x600000, 0x1010, 2);
    const lo = anonFolio(e, mm, 0x401000, 0x1000);
    splitVma(e, mm, v, 0x500000);
    const c = rmapCandidates(e, hi).map((x) => [x.vma.start, x.address]);
    expect(c).toEqual([[0x500000, 0x600000]]);
    expect(found(e, hi)).toEqual({ '500000': [0x600000, 0x601000, 0x602000, 0x603000] });
    expect(found(e, lo)).toEqual({ '400000': [0x401000] });
    expectClean(e);
  });

  it('§2.2 a file folio in each half is found through i_mmap in its own half', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000, file: 3, pgoff: 0 });
    const a = e.createFolio({ number: 0x1000, file: 3, index: 1 });
    const b = e.createFolio({ number: 0x1001, file: 3, index: 0x300 });
    mm.map(0x401000, { entry: { kind: 'present', number: 0x1000 } });
    mm.map(0x700000, { entry: { kind: 'present', number: 0x1001 } });
    splitVma(e, mm, v, 0x500000);
    expect(rmapCandidates(e, a).map((c) => [c.vma.start, c.address])).toEqual([[0x400000, 0x401000]]);
    expect(rmapCandidates(e, b).map((c) => [c.vma.start, c.address])).toEqual([[0x500000, 0x700000]]);
    expect(found(e, b)).toEqual({ '500000': [0x700000] });
    expectClean(e);
  });

  it('§2.2 rule 3: a THP PMD straddling the split point becomes 512 PTEs (PTE-mapped THP), AnonExclusive carried', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000, flags: { thp: true } });
    const thp = anonFolio(e, mm, 0x600000, 0x2000, 9, true);
    e.folios.setAnonExclusive(thp, 0, 1, true);
    const [low, high] = splitVma(e, mm, v, 0x680000)!;
    expect(low.end).toBe(0x680000);
    expect(mm.entryAt(0x600000).level).toBe('pte');
    expect(mm.entryAt(0x7ff000).entry.number).toBe(0x2000 + 511);
    const f = e.folio(thp);
    expect([f.order, f.entireMapcount, f.mapcount]).toEqual([9, 0, 512]);
    expect(e.page('pfn', 0x2000 + 300)!.mapcount).toBe(1);
    expect(e.page('pfn', 0x2000 + 300)!.anonExclusive).toBe(true);
    // Each half's pages are found in that half.
    const w = found(e, thp);
    expect(w['400000']).toHaveLength(128);
    expect(w['680000']).toHaveLength(384);
    expect(high.pgoff).toBe(0x680);
    expectClean(e);
  });

  it('§2.2 rule 3: a split at a 2 MiB boundary leaves PMDs whole', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000, flags: { thp: true } });
    anonFolio(e, mm, 0x600000, 0x2000, 9, true);
    splitVma(e, mm, v, 0x600000);
    expect(mm.entryAt(0x600000).level).toBe('pmd');
    expectClean(e);
  });

  it('§2.1 last row: a hugetlb VMA refuses a split not aligned to its page size (null, nothing changed)', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x1000000, flags: { hugetlb: '2M' } });
    expect(splitVma(e, mm, v, 0x500000)).toBeNull();
    expect(mm.vmas.all()).toEqual([v]);
    const [low, high] = splitVma(e, mm, v, 0x600000)!;
    expect([low.end, high.start, high.pgoff]).toEqual([0x600000, 0x600000, 0x600]);
    expectClean(e);
  });
});

describe('§2.2 isolateRange', () => {
  it('§2.2 splits both ends and returns the VMAs inside', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x400000, end: 0x600000 });
    mm.addVma({ start: 0x600000, end: 0x800000, file: 2 });
    const inside = isolateRange(e, mm, 0x500000, 0x700000)!;
    expect(inside.map((v: Vma) => [v.start, v.end, v.pgoff])).toEqual([[0x500000, 0x600000, 0x500], [0x600000, 0x700000, 0]]);
    expect(mm.vmas.all().map((v) => v.start)).toEqual([0x400000, 0x500000, 0x600000, 0x700000]);
    expect(mm.vmas.find(0x700000)!.pgoff).toBe(0x100);
    expectClean(e);
  });

  it('§2.1 last row: a refused split at the far end changes nothing, not even the near end', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x400000, end: 0x600000 });
    mm.addVma({ start: 0x600000, end: 0xa00000, flags: { hugetlb: '2M' } });
    const before = mm.vmas.all().map((v) => [v.id, v.start, v.end]);
    expect(isolateRange(e, mm, 0x500000, 0x700000)).toBeNull();
    expect(mm.vmas.all().map((v) => [v.id, v.start, v.end])).toEqual(before);
    expectClean(e);
  });
});

describe('§2.2 vmaMergeAround', () => {
  it('§2.2 merging: split halves with equal flags and the same anon_vma merge back; the folios stay reachable', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x400000, end: 0x800000 });
    const f = anonFolio(e, mm, 0x700000, 0x1000);
    const [low] = splitVma(e, mm, v, 0x500000)!;
    const merged = vmaMergeAround(e, mm, low);
    expect([merged.start, merged.end, merged.pgoff]).toEqual([0x400000, 0x800000, 0x400]);
    expect(mm.vmas.all()).toEqual([merged]);
    expect(e.rmap.anon.of(merged)).not.toBeNull();
    expect(found(e, f)).toEqual({ '400000': [0x700000] });
    expectClean(e);
  });

  it('§2.2 merging: an unfaulted neighbour (no anon_vma) merges with a faulted one and takes its anon_vma', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x400000, end: 0x500000 });
    mm.addVma({ start: 0x500000, end: 0x600000 });
    const f = anonFolio(e, mm, 0x400000, 0x1000);
    const merged = vmaMergeAround(e, mm, mm.vmas.find(0x500000)!);
    expect([merged.start, merged.end]).toEqual([0x400000, 0x600000]);
    expect(found(e, f)).toEqual({ '400000': [0x400000] });
    expectClean(e);
  });

  it('§2.2 merging: different flags, anon_vmas, files or non-contiguous pgoff do not merge', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x400000, end: 0x500000 });
    const b = mm.addVma({ start: 0x500000, end: 0x600000, flags: { thp: true } });
    expect(vmaMergeAround(e, mm, b)).toBe(b);
    // Two separately faulted anon VMAs: two anon_vmas.
    mm.addVma({ start: 0x600000, end: 0x700000 });
    const d = mm.addVma({ start: 0x700000, end: 0x800000 });
    anonFolio(e, mm, 0x600000, 0x1000);
    anonFolio(e, mm, 0x700000, 0x1001);
    expect(vmaMergeAround(e, mm, d)).toBe(d);
    // Files: different file, or a pgoff gap.
    mm.addVma({ start: 0x800000, end: 0x900000, file: 1, pgoff: 0 });
    const f2 = mm.addVma({ start: 0x900000, end: 0xa00000, file: 2, pgoff: 0x100 });
    expect(vmaMergeAround(e, mm, f2)).toBe(f2);
    mm.addVma({ start: 0xa00000, end: 0xb00000, file: 2, pgoff: 0x300 });
    expect(vmaMergeAround(e, mm, f2)).toBe(f2);
    expect(mm.vmas.size).toBe(7);
    // The same file with contiguous pgoff merges.
    const f3 = mm.addVma({ start: 0xb00000, end: 0xc00000, file: 2, pgoff: 0x400 });
    const m = vmaMergeAround(e, mm, f3);
    expect([m.start, m.end, m.pgoff]).toEqual([0xa00000, 0xc00000, 0x300]);
    expect(e.rmap.iMmap.has(m)).toBe(true);
    expectClean(e);
  });
});

describe('replaceVma refusing', () => {
  it('a change that would overlap a neighbour throws VMA_OVERLAP and leaves the very same VMA objects in place, still in rmap', () => {
    const e = new Engine({ ramPages: 1 << 12 });
    const mm = e.createMm();
    const a = mm.addVma({ start: 0x100000, end: 0x200000, file: 4, pgoff: 0 });
    const b = mm.addVma({ start: 0x300000, end: 0x400000 });
    e.rmap.anon.prepare(b);
    const folio = e.createFolio({ number: 0x10, file: 4, index: 0 });
    mm.map(0x100000, { entry: { kind: 'present', number: 0x10 } });
    expect(() => replaceVma(e, mm, a, { end: 0x380000 })).toThrow(/overlaps VMA \[0x300000, 0x400000\)/);
    expect(mm.vmas.all()).toEqual([a, b]);
    expect(e.rmap.iMmap.has(a)).toBe(true);
    expect(rmapCandidates(e, folio).map((c) => c.vma)).toEqual([a]);
    expectClean(e);
  });
});
