// Fixtures of the reclaim-side caller tests (ops-try-to-unmap.test.ts, ops-reclaim.test.ts; spec §5 callers of
// page_vma_mapped_walk, kernel-operations.md §2.4, §7.3, §12.2): engines per walk interface (D2), anon folios as
// a fault makes them, a one-VMA space, a space with a bit of everything, and the swap entry at an address.
import { expect } from 'vitest';
import { Engine, linearPageIndex, type Mm, type PresentSpec, type VmaSpec } from '../src/index.js';
import { setOpsPolicy } from '../src/mm/state.js';
import type { WalkInterface } from '../src/rmap/rmap-walk.js';

export type Iface = WalkInterface;
export const IFACES: Iface[] = ['pfn', 'folio-range', 'folio-identity'];
export const P = 0x1000;
export const FILE = 7;

export function engine(iface: Iface = 'pfn'): Engine {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  setOpsPolicy(e, { walkInterface: iface });
  return e;
}

export const pte = (number: number, bits: Omit<PresentSpec, 'kind' | 'number'> = {}) => ({ entry: { kind: 'present' as const, number, user: true, ...bits } });

/** An anon folio as a fault makes it (new-anon-rmap marks it swapbacked, §0.4); createFolio leaves it clear. */
export function anon(e: Engine, spec: { number: number; order?: number; index: number }, swapbacked = true): number {
  return e.createFolio({ ...spec, anonVma: 1, flags: { swapbacked } });
}

/** One mm with one VMA [0x400000, 0x800000) (anon unless the spec names a file). */
export function solo(spec: Partial<VmaSpec> = {}) {
  const e = engine();
  const mm = e.createMm();
  const vma = mm.addVma({ start: 0x400000, end: 0x800000, ...spec });
  return { e, mm, vma };
}

/** The swap entry at addr: its offset and flags (fails the test if it is no swap entry). */
export function swapAt(mm: Mm, addr: number) {
  const d = mm.entryAt(addr).entry;
  expect(d.kind).toBe('swap');
  return { offset: d.swap!.offset, exclusive: d.bits.exclusive, softDirty: d.bits.softDirty, uffdWp: d.bits.uffdWp };
}

/**
 * A space with a bit of everything (the three-interface tests run every caller on it):
 * - mm a, anon VMA [0x400000, 0x800000): an order-2 folio F at 0x400000 (pages 0-1 shared with mm b as after
 *   fork, read-only; pages 2-3 AnonExclusive, writable, dirty, young), a PMD-mapped THP T at 0x600000 (young,
 *   dirty, exclusive), an order-0 lazyfree folio L at 0x500000 (clean);
 * - mm b, anon VMA at the same place (pages 0-1 of F, young);
 * - file 7: an order-2 folio C at index 0, mapped in a shared VMA of a (writable, dirty, young) and a private
 *   VMA of b (read-only, young).
 */
export function space(iface: Iface = 'pfn') {
  const e = engine(iface);
  const a = e.createMm();
  const b = e.createMm();
  const va = a.addVma({ start: 0x400000, end: 0x800000 });
  b.addVma({ start: 0x400000, end: 0x800000 });
  const F = anon(e, { number: 0x1000, order: 2, index: linearPageIndex(va, 0x400000) });
  e.folios.setTag(F, 0, 4, 0xa0);
  e.folios.setTag(F, 3, 1, 0xa3);
  a.map(0x400000, { count: 2, ...pte(0x1000, { young: true }) });
  a.map(0x402000, { count: 2, ...pte(0x1002, { write: true, dirty: true, young: true, softDirty: true }) });
  e.folios.setAnonExclusive(F, 2, 2, true);
  b.map(0x400000, { count: 2, ...pte(0x1000, { young: true }) });
  const T = e.createFolio({ number: 0x2000, order: 9, anonVma: 1, index: linearPageIndex(va, 0x600000) });
  e.folios.setTag(T, 0, 512, 0xb0);
  a.map(0x600000, { level: 'pmd', ...pte(0x2000, { write: true, dirty: true, young: true }) });
  e.folios.setAnonExclusive(T, 0, 512, true);
  const L = e.createFolio({ number: 0x3000, anonVma: 1, index: linearPageIndex(va, 0x500000), flags: { swapbacked: false } });
  a.map(0x500000, pte(0x3000, { young: true }));
  a.addVma({ start: 0x10000000, end: 0x10100000, file: FILE, flags: { shared: true } });
  b.addVma({ start: 0x20000000, end: 0x20100000, file: FILE });
  const C = e.createFolio({ number: 0x4000, order: 2, file: FILE, index: 0 });
  a.map(0x10000000, { count: 4, ...pte(0x4000, { write: true, dirty: true, young: true }) });
  b.map(0x20000000, { count: 4, ...pte(0x4000, { young: true }) });
  for (const id of [F, T, C]) e.folios.setFlags(id, { swapbacked: e.folio(id).anon, dirty: false });
  return { e, a, b, F, T, L, C };
}
