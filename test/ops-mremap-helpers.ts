// Fixtures of the mremap tests (ops-mremap.test.ts, ops-mremap-move.test.ts; kernel-operations.md §4): the
// one-VMA space, a free 1 GiB-aligned target B, tagged anon folios, and the VMA list as [start, end, pgoff].
import { linearPageIndex, type Engine, type Mm, type Vma } from '../src/index.js';
import { ONE_VMA_END, ONE_VMA_START, oneVmaSetup } from './ops-helpers.js';

export const P = 4096;
export const A = ONE_VMA_START; // the VMA's start (1 GiB aligned)
export const END = ONE_VMA_END;
export const B = 0x8000_0000; // a free target, 1 GiB aligned
export const MOVE = { maymove: true, fixed: true, newAddr: B };

/** One mm with one VMA [A, END), THP allowed unless flags say otherwise. */
export const setup = oneVmaSetup;

/** An anon folio at `addr` of `vma` (index = linear page index), AnonExclusive, tagged 0x100 + page. */
export function anon(e: Engine, vma: Vma, addr: number, number: number, order = 0): number {
  const av = e.rmap.anon.prepare(vma);
  const f = e.createFolio({ number, order, anonVma: av.id, index: linearPageIndex(vma, addr) });
  e.folios.setAnonExclusive(f, 0, 1 << order, true);
  for (let i = 0; i < 1 << order; i++) e.folios.setTag(f, i, 1, 0x100 + i);
  return f;
}

export function vmas(mm: Mm) {
  return mm.vmas.all().map((v) => [v.start, v.end, v.pgoff]);
}
