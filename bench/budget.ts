// Memory budget of the address-space model (issue: page tables ~8 bytes per mapped 4 KiB page once tables
// fill; <= 16 bytes of metadata per folio plus <= 4 bytes per page of per-page state). Every figure is read
// from the engine's own accounting (Engine.memoryUsage), after building the space in bulk.
import { Engine } from '../src/index.js';

export interface BudgetCase {
  name: string;
  /** Folios of `order` pages each. */
  folios: number;
  order: number;
  /** Address spaces mapping every folio (a fork tree's worth of sharing). */
  mms: number;
  /** Map at PMD level (THP) instead of PTEs. */
  pmd?: boolean;
}

export interface BudgetResult extends BudgetCase {
  mappings: number;
  pages: number;
  seconds: { folios: number; map: number; total: number };
  bytes: { wasm: number; tables: number; memmap: number; records: number; tags: number; fixed: number };
  perMapping: { tables: number };
  /** memmap bytes (page words + folio records) per folio, and the folio records alone. */
  perFolio: { memmap: number; record: number; total: number };
  /** Page words per page. */
  perPage: { memmap: number };
  /** Mapcount of the first folio, read back (must equal mms). */
  mapcountCheck: number;
}

const GiB = 2 ** 30;

export function measureBudget(c: BudgetCase): BudgetResult {
  const pages = c.folios * 2 ** c.order;
  const t0 = performance.now();
  const e = new Engine({ ramPages: Math.max(pages, 1 << 20), maxMemoryBytes: 4 * GiB });
  const base = 2 ** 40; // 1 TiB: one VA range per mm, 2 MiB aligned; anon folio indexes follow it
  e.createFolios({ number: 0, order: c.order, index: base / 4096 }, c.folios);
  const t1 = performance.now();
  for (let m = 0; m < c.mms; m++) {
    const mm = e.createMm();
    mm.addVma({ start: base, end: base + pages * 4096, flags: { thp: true } });
    if (c.pmd) mm.map(base, { level: 'pmd', count: c.folios, entry: { kind: 'present', number: 0, write: true } });
    else mm.map(base, { level: 'pte', count: pages, entry: { kind: 'present', number: 0, write: true } });
  }
  const t2 = performance.now();
  const u = e.memoryUsage();
  const mappings = c.pmd ? c.folios * c.mms : pages * c.mms;
  return {
    ...c,
    mappings,
    pages,
    seconds: { folios: (t1 - t0) / 1000, map: (t2 - t1) / 1000, total: (t2 - t0) / 1000 },
    bytes: { wasm: u.wasmBytes, tables: u.tableBytes, memmap: u.memmapBytes, records: u.recordBytes, tags: u.tagBytes, fixed: u.fixedBytes },
    perMapping: { tables: u.tableBytes / mappings },
    perFolio: { memmap: u.memmapBytes / c.folios, record: u.recordBytes / c.folios, total: (u.memmapBytes + u.tagBytes) / c.folios },
    perPage: { memmap: (u.memmapBytes - u.recordBytes) / pages },
    mapcountCheck: e.folio(0).mapcount,
  };
}

/** The cases of the model issue: 1 M and 16 M mappings, mapped once and shared by 64 mms, and THPs. */
export const BUDGET_CASES: BudgetCase[] = [
  { name: '1M order-0 folios, mapped once', folios: 2 ** 20, order: 0, mms: 1 },
  { name: '16M order-0 folios, mapped once', folios: 2 ** 24, order: 0, mms: 1 },
  { name: '16K folios shared by 64 mms (1M mappings)', folios: 2 ** 14, order: 0, mms: 64 },
  { name: '256K folios shared by 64 mms (16M mappings)', folios: 2 ** 18, order: 0, mms: 64 },
  { name: '32K THPs (16M pages) PMD-mapped once', folios: 2 ** 15, order: 9, mms: 1, pmd: true },
];

/** The largest spaces of the target: 2^26 order-0 folios mapped once; 2^28 PTEs shared by 64 mms. */
export const LARGE_CASES: BudgetCase[] = [
  { name: '64M order-0 folios (256 GiB) mapped once', folios: 2 ** 26, order: 0, mms: 1 },
  { name: '4M folios (16 GiB) shared by 64 mms (2^28 mappings)', folios: 2 ** 22, order: 0, mms: 64 },
];
