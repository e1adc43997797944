// Fixtures of the fork tests (ops-fork*.test.ts; kernel-operations.md §1): a parent with one 8 MiB anon VMA,
// anon folios of its anon_vma, fork with the invariants checked, rmap reachability in parent and child, pins.
import { expect } from 'vitest';
import { Engine, linearPageIndex, type EngineOptions, type FolioId, type Mm, type Vma, type VmaFlags } from '../src/index.js';
import { dupMmap } from '../src/mm/fork.js';
import { zeroPages } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { rmapCandidates, rmapWalk } from '../src/rmap/rmap-walk.js';
import { expectClean } from './ops-helpers.js';

export const PAGE = 4096;
export const PMD = 2 ** 21;
export const A = 0x40000000; // anon VMA start (1 GiB aligned)
export const H = 0x80000000; // hugetlb VMA start

export function engine(o: EngineOptions = {}): Engine {
  return new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096, ...o });
}

/** A parent mm with one anon VMA of 8 MiB at A (flags as given) that has an anon_vma. */
export function setup(o: EngineOptions = {}, flags: Partial<VmaFlags> = {}) {
  const e = engine(o);
  const p = e.createMm();
  const v = p.addVma({ start: A, end: A + 4 * PMD, flags: { thp: true, ...flags } });
  const av = e.rmap.anon.prepare(v);
  zeroPages(e); // made on first use (the first present leaf viewed): before any snapshot or folio count
  return { e, p, v, av };
}

/** An anon folio of the VMA's anon_vma at `va`, AnonExclusive on every page (§0.4 new-anon-rmap), not mapped. */
export function anonFolio(e: Engine, v: Vma, va: number, order = 0, exclusive = true): FolioId {
  const av = e.rmap.anon.prepare(v);
  const id = opsState(e).alloc.alloc({ order, anonVma: av.id, index: linearPageIndex(v, va) })!;
  e.folios.setAnonExclusive(id, 0, 2 ** order, exclusive);
  return id;
}

export function page(e: Engine, f: FolioId, i = 0) {
  const info = e.folio(f);
  return e.page(info.namespace, info.number + i)!;
}

export function fork(e: Engine, p: Mm): Mm {
  const r = dupMmap(e, p);
  if (!r.ok) throw new Error(`fork failed: ${r.errno}`);
  expectClean(e);
  return r.child;
}

/** rmap reaches the folio in both VMAs (§1.2 result) and the walk finds the mapping at va in each. */
export function expectReachable(e: Engine, f: FolioId, vmas: Vma[], va?: number) {
  const ids = rmapCandidates(e, f).map((c) => c.vma.id);
  for (const v of vmas) expect(ids).toContain(v.id);
  if (va === undefined) return;
  const found = new Set<number>();
  rmapWalk(e, [f], { rmapOne: (c, m) => { if (m.some((x) => x.address === va)) found.add(c.vma.id); return true; } });
  for (const v of vmas) expect(found.has(v.id), `walk finds the mapping in VMA ${v.id}`).toBe(true);
}

export function pin(e: Engine, mm: Mm, f: FolioId) {
  opsState(e).pins.set(f, 1);
  opsState(e).everPinned.add(mm.id);
}
