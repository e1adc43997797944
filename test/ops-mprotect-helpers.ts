// Fixtures of the mprotect tests (ops-mprotect.test.ts, ops-change-protection.test.ts; kernel-operations.md §3):
// the one-VMA space, protections as flags, and anon folios with a chosen number of AnonExclusive pages.
import { linearPageIndex, type Engine, type Vma } from '../src/index.js';
import { ONE_VMA_END, ONE_VMA_START, oneVmaSetup } from './ops-helpers.js';

export const P = 4096;
export const A = ONE_VMA_START;
export const END = ONE_VMA_END;
export const RW = { read: true, write: true };
export const R = { read: true };
export const NONE = {};

/** One mm with one VMA [A, END), THP allowed unless flags say otherwise. */
export const setup = oneVmaSetup;

/** An anon folio of `order` at `addr` of `vma` (index = linear page index), `exclusive` pages from 0. */
export function anon(e: Engine, vma: Vma, addr: number, number: number, order = 0, exclusive = 1 << order): number {
  const av = e.rmap.anon.prepare(vma);
  const f = e.createFolio({ number, order, anonVma: av.id, index: linearPageIndex(vma, addr) });
  if (exclusive > 0) e.folios.setAnonExclusive(f, 0, exclusive, true);
  return f;
}
