// rmap_walk (spec §6.1–§6.3, D6): the anon_vma/AVC and i_mmap interval trees, the rmap_walk_control hooks, and
// the batched walks, which must equal page_vma_mapped_walk run one (folio, VMA) pair at a time.
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex, pageVmaMappedWalk, rmapCandidates, rmapWalk, folioWalkKey, type Mm } from '../src/index.js';
import { PgoffTree } from '../src/rmap/interval-tree.js';
import { dupMmap } from '../src/mm/fork.js';

const A = 0x10000000;

/** A parent with an anon VMA of 64 pages holding order-0 folios at pages 0..7 and an order-2 folio at 8..11. */
function forkTree(children: number) {
  const e = new Engine({ ramPages: 1 << 16 });
  const root = e.createMm();
  const vma = root.addVma({ start: A, end: A + 64 * 4096 });
  const small = e.createFolios({ number: 0x100, anonVma: 1, index: linearPageIndex(vma, A) }, 8);
  root.map(A, { count: 8, entry: { kind: 'present', number: 0x100, write: true } });
  const large = e.createFolio({ number: 0x200, order: 2, anonVma: 1, index: linearPageIndex(vma, A + 8 * 4096) });
  root.map(A + 8 * 4096, { count: 4, entry: { kind: 'present', number: 0x200, write: true } });
  const mms: Mm[] = [root];
  for (let i = 0; i < children; i++) {
    const r = dupMmap(e, mms[Math.floor(i / 2)]);
    if (!r.ok) throw new Error(r.errno);
    mms.push(r.child);
  }
  return { e, mms, small, large };
}

describe('§6.1 the interval trees', () => {
  it('D6: queries give items by first pgoff, equal firsts in insertion order, only overlapping ones', () => {
    const t = new PgoffTree<string>();
    t.insert('b1', 10, 19);
    t.insert('a', 0, 4);
    t.insert('b2', 10, 12);
    t.insert('c', 30, 40);
    t.insert('b3', 10, 50);
    expect([...t.query(11, 31)]).toEqual(['b1', 'b2', 'b3', 'c']);
    expect([...t.query(13, 29)]).toEqual(['b1', 'b3']);
    expect([...t.query(5, 9)]).toEqual([]);
    expect(t.remove('b2')).toBe(true);
    expect(t.remove('b2')).toBe(false);
    expect([...t.all()]).toEqual(['a', 'b1', 'b3', 'c']);
  });

  it('§1.2 anon_vma_fork: the child VMA is linked to every anon_vma of the parent chain plus its own, whose root and parent are the parent\'s', () => {
    const { e, mms } = forkTree(3);
    const [root, c1, c2, c3] = mms.map((m) => m.vmas.all()[0]);
    const av = (v: typeof root) => e.rmap.anon.of(v)!;
    expect(av(c1).root).toBe(av(root));
    expect(av(c1).parent).toBe(av(root));
    expect(av(c3).parent).toBe(av(c1)); // c3 was forked from c1
    expect(e.rmap.anon.chain(c3).map((c) => c.anonVma)).toEqual([av(root), av(c1), av(c3)]);
    expect(e.rmap.anon.chain(c2).map((c) => c.anonVma)).toEqual([av(root), av(c2)]);
    expect(av(root).numChildren).toBe(2);
  });

  it('§1.2 reuse: a fork under an anon_vma with no active VMAs and at most one child reuses it instead of making one', () => {
    const { e, mms } = forkTree(1);
    const child = mms[1];
    const cav = e.rmap.anon.of(child.vmas.all()[0])!;
    const grand = dupMmap(e, child);
    if (!grand.ok) throw new Error(grand.errno);
    e.freeMm(child.id); // child's anon_vma keeps its tree entry for the grandchild, but no active VMA
    expect(cav.numActiveVmas).toBe(0);
    const again = dupMmap(e, grand.child);
    if (!again.ok) throw new Error(again.errno);
    const reused = e.rmap.anon.of(again.child.vmas.all()[0]);
    expect(reused).toBe(cav);
    expect(cav.numActiveVmas).toBe(1);
  });

  it('unlink: freeing every mm frees every anon_vma', () => {
    const { e, mms } = forkTree(4);
    expect(e.rmap.anon.count).toBe(5);
    for (const m of mms.reverse()) e.freeMm(m.id);
    expect(e.rmap.anon.count).toBe(0);
  });
});

describe('§6.2/§6.3 rmap_walk', () => {
  it('finds the folio in every process of a fork tree, in tree order; the batched walks equal one-at-a-time walks in every interface', () => {
    const { e, mms, large } = forkTree(6);
    const cands = rmapCandidates(e, large);
    expect(cands.map((c) => c.mm.id)).toEqual(mms.map((m) => m.id));
    for (const iface of ['pfn', 'folio-range', 'folio-identity'] as const) {
      const got: string[] = [];
      rmapWalk(e, [large], { interface: iface, rmapOne: (c, m) => (got.push(`${c.mm.id}:${m.map((x) => x.address).join(',')}`), true) });
      const key = folioWalkKey(e, e.folio(large), 0, iface);
      const one = cands.map((c) => `${c.mm.id}:${pageVmaMappedWalk(e, { mm: c.mm, vma: c.vma, key }).matches.map((x) => x.address).join(',')}`);
      expect(got).toEqual(one);
      expect(got[0]).toBe(`${mms[0].id}:${[0, 1, 2, 3].map((i) => A + (8 + i) * 4096).join(',')}`);
    }
  });

  it('rmapOne returning false stops that folio\'s walk; done() stops it too; the next folio is still walked', () => {
    const { e, small } = forkTree(4);
    const seen: [number, number][] = [];
    rmapWalk(e, [small, small + 1], { rmapOne: (c) => (seen.push([c.folio, c.mm.id]), c.mm.id !== 2) });
    expect(seen.filter(([f]) => f === small).map(([, m]) => m)).toEqual([1, 2]);
    expect(seen.filter(([f]) => f === small + 1).map(([, m]) => m)).toEqual([1, 2]);
    const seen2: number[] = [];
    let calls = 0;
    rmapWalk(e, [small], { rmapOne: (c) => (seen2.push(c.mm.id), true), done: () => ++calls >= 3 });
    expect(seen2).toEqual([1, 2, 3]);
  });

  it('invalidVma skips a VMA (rmap_one is not called for it)', () => {
    const { e, mms, small } = forkTree(3);
    const seen: number[] = [];
    rmapWalk(e, [small], { invalidVma: (_v, mm) => mm.id === mms[1].id, rmapOne: (c) => (seen.push(c.mm.id), true) });
    expect(seen).toEqual([mms[0].id, mms[2].id, mms[3].id]);
  });

  it('file folios are found through i_mmap in every VMA of the file whose pgoff range holds them, with vma_address', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const a = e.createMm();
    const b = e.createMm();
    const va = a.addVma({ start: A, end: A + 16 * 4096, file: 5, pgoff: 0 });
    const vb = b.addVma({ start: 2 * A, end: 2 * A + 8 * 4096, file: 5, pgoff: 4 });
    b.addVma({ start: 3 * A, end: 3 * A + 4 * 4096, file: 5, pgoff: 100 }); // does not hold index 6
    const f = e.createFolio({ number: 0x40, file: 5, index: 6 });
    a.map(A + 6 * 4096, { entry: { kind: 'present', number: 0x40 } });
    b.map(2 * A + 2 * 4096, { entry: { kind: 'present', number: 0x40 } });
    expect(rmapCandidates(e, f).map((c) => [c.vma.id, c.address])).toEqual([[va.id, A + 6 * 4096], [vb.id, 2 * A + 2 * 4096]]);
    let n = 0;
    rmapWalk(e, [f], { rmapOne: (_c, m) => ((n += m.length), true) });
    expect(n).toBe(2);
  });

  it('a folio whose anon_vma is gone (unmapped everywhere) has no candidates', () => {
    const { e, mms, small } = forkTree(0);
    const vma = mms[0].vmas.all()[0];
    mms[0].removeVma(vma);
    expect(rmapCandidates(e, small)).toEqual([]);
    expect(rmapWalk(e, [small], { rmapOne: () => true })).toBe(0);
  });

  it('an unknown walk interface is refused with its name', () => {
    const { e, small } = forkTree(0);
    expect(() => rmapWalk(e, [small], { interface: 'folio' as never, rmapOne: () => true })).toThrow(/"folio"/);
  });
});
