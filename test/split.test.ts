// PMD-level table changes (kernel-operations.md §6.1 split_huge_pmd; decisions.md D4 races; assembly/split.ts):
// splitPmd turns a huge PMD, a PMD migration entry or a device-private PMD into a PTE table of the same pages,
// freePteTable zaps and frees a PTE table, replacePteTable moves one to another frame. Every failure leaves the
// mm, the folios and the engine's memory as they were.
import { describe, expect, it } from 'vitest';
import {
  Engine, Mm, PMD_SIZE, encodePresent, linearPageIndex,
  type DeviceModel, type EngineOptions, type EntrySpec, type PresentBits, type PvmwError,
} from '../src/index.js';
import { expectPvmwError } from './helpers.js';

const K = 4096;
const M2 = PMD_SIZE;
const G1 = 2 ** 30;
const BASE = 2 ** 40; // the test VMA: 8 PMD blocks from here
const hex = (n: number) => '0x' + n.toString(16);

function engine(opts: EngineOptions = {}): Engine {
  return new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096, ...opts });
}

/** The linear page index of `addr` in the VMA of `mm` holding it (kernel-operations §0.3). */
function lpi(mm: Mm, addr: number): number {
  return linearPageIndex(mm.vmas.find(addr)!, addr);
}

/** An mm with an anon THP VMA [base, base + 8·2 MiB). */
function space(e: Engine, base = BASE): Mm {
  const mm = e.createMm();
  mm.addVma({ start: base, end: base + 8 * M2, flags: { thp: true } });
  return mm;
}

/** A PMD-mapped anon THP at `addr` (pfn `pfn`, entry bits `bits`); returns the folio id. */
function pmdThp(e: Engine, mm: Mm, addr: number, pfn: number, bits: Partial<PresentBits> = {}): number {
  const f = e.createFolio({ number: pfn, order: 9, index: lpi(mm, addr) });
  mm.map(addr, { level: 'pmd', entry: { kind: 'present', number: pfn, ...bits } });
  return f;
}

/** Everything a table change could disturb, for "nothing changed" checks. */
function snapshot(e: Engine, mm: Mm, addrs: number[], folios: number[]): string {
  return JSON.stringify({
    usage: e.memoryUsage(),
    stats: mm.stats(),
    tr: addrs.map((a) => mm.translate(a).steps.map((s) => [s.level, s.raw])),
    folios: folios.map((id) => {
      const f = e.folio(id);
      const pages = [0, 1, 7, f.nrPages - 1].filter((k) => k < f.nrPages).map((k) => e.page(f.namespace, f.number + k)!.mapcount);
      return [f.mapcount, f.entireMapcount, ...pages];
    }),
  });
}

/** `f` throws `code` (message containing `inMessage`) and changes nothing observable. */
function refused(e: Engine, mm: Mm, f: () => unknown, addrs: number[], folios: number[], code: PvmwError['code'], ...inMessage: string[]): void {
  const before = snapshot(e, mm, addrs, folios);
  expectPvmwError(f, code, ...inMessage);
  expect(snapshot(e, mm, addrs, folios)).toBe(before);
}

const pmdStep = (mm: Mm, addr: number) => mm.translate(addr).steps.find((s) => s.level === 'pmd')!;

describe('splitPmd: a present THP PMD becomes 512 PTEs of the same pages (kernel-operations §6.1)', () => {
  it('PTE i maps pfn + i with the same bits (PAT moved from bit 12 to bit 7); entire → per-page mapcounts; one more PTE table', () => {
    const e = engine();
    const mm = space(e);
    const at = BASE + 2 * M2;
    const pfn = 0x400;
    const bits = { write: true, young: true, dirty: true, softDirty: true, uffdWp: true, pat: true, nx: true, pkey: 3 };
    const thp = pmdThp(e, mm, at, pfn, bits);
    expect(e.folio(thp)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    const stats = mm.stats();
    const tables = e.memoryUsage().tables;
    expect(stats.leaves).toEqual({ pte: 0, pmd: 1, pud: 0 });

    mm.splitPmd(at + 77 * K + 5); // any address inside the block
    for (const i of [0, 1, 2, 255, 256, 510, 511]) {
      const t = mm.translate(at + i * K);
      expect(t.leaf.level).toBe('pte');
      expect(t.leaf.entry).toMatchObject({ kind: 'present', number: pfn + i, huge: false });
      expect(t.leaf.entry.present).toMatchObject({ ...bits, protnone: false, special: false });
      expect(t.leaf.raw).toEqual(encodePresent('pte', pfn + i, bits));
      expect(t.maps).toBe(true);
      expect(t.page).toMatchObject({ folio: thp, page: i, mapcount: 1 });
    }
    expect(pmdStep(mm, at).entry.kind).toBe('table');
    expect(e.folio(thp)).toMatchObject({ order: 9, mapcount: 512, entireMapcount: 0 });
    const after = mm.stats();
    expect(after.tables.pte).toBe(stats.tables.pte + 1);
    expect(after.tables.pmd).toBe(stats.tables.pmd);
    expect(after.leaves).toEqual({ pte: 512, pmd: 0, pud: 0 });
    expect(e.memoryUsage().tables).toBe(tables + 1);

    // The new table's entry count is right: clearing the block clears 512 PTEs and frees the table (and the
    // PMD and PUD tables it empties: only the root is left).
    expect(mm.clear(at, at + M2)).toBe(512);
    expect(e.folio(thp)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.memoryUsage().tables).toBe(1);
  });

  it('a read-only, old, clean THP splits into read-only, old, clean PTEs; the neighbouring PMD is untouched', () => {
    const e = engine();
    const mm = space(e);
    const a = pmdThp(e, mm, BASE, 0x400);
    const b = pmdThp(e, mm, BASE + M2, 0x600, { write: true });
    mm.splitPmd(BASE);
    expect(mm.translate(BASE + 9 * K).leaf.entry.present).toMatchObject({ write: false, young: false, dirty: false, softDirty: false, uffdWp: false, pat: false });
    expect(mm.translate(BASE + 9 * K).leaf.raw).toEqual(encodePresent('pte', 0x409, {}));
    expect(mm.translate(BASE + M2 + 9 * K).leaf.level).toBe('pmd');
    expect(e.folio(a)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    expect(e.folio(b)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
  });

  it('spec §3.2 L1TF: a PROTNONE THP splits into PROTNONE PTEs whose pfn fields are stored inverted', () => {
    const e = engine();
    const mm = space(e);
    const pfn = 0x800;
    const bits = { protnone: true, dirty: true, young: true, softDirty: true };
    const thp = pmdThp(e, mm, BASE, pfn, bits);
    mm.splitPmd(BASE);
    for (const i of [0, 3, 511]) {
      const t = mm.translate(BASE + i * K);
      expect(t.leaf.entry).toMatchObject({ kind: 'present', number: pfn + i });
      expect(t.leaf.entry.present).toMatchObject({ ...bits, write: false });
      expect(t.leaf.raw).toEqual(encodePresent('pte', pfn + i, bits));
      // Inverted: the pfn field (bits 12..51) holds NOT(pfn + i), so the high half is nearly all ones.
      expect(t.leaf.raw.hi & 0xfffff).toBe(0xfffff);
      expect(t.leaf.raw.lo >>> 12).toBe((~(pfn + i) & 0xfffff) >>> 0);
      expect(t.page).toMatchObject({ folio: thp, page: i, mapcount: 1 });
    }
    expect(e.folio(thp)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
  });

  it('spec §3.2: a special huge PMD (no struct page refcounting) splits into special PTEs; no mapcount moves', () => {
    const e = engine();
    const mm = space(e);
    const thp = e.createFolio({ number: 0xa00, order: 9, index: lpi(mm, BASE) });
    mm.map(BASE, { level: 'pmd', entry: { kind: 'present', number: 0xa00, special: true } });
    expect(e.folio(thp).mapcount).toBe(0);
    mm.splitPmd(BASE);
    expect(mm.translate(BASE + 5 * K).leaf.entry).toMatchObject({ kind: 'present', number: 0xa05 });
    expect(mm.translate(BASE + 5 * K).leaf.entry.present?.special).toBe(true);
    expect(e.folio(thp)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.page('pfn', 0xa05)!.mapcount).toBe(0);
  });
});

describe('splitPmd: PMD migration entries become 512 PTE migration entries (kernel-operations §6.1 step 3, 6)', () => {
  it('offsets pfn + i, type, young/dirty and soft-dirty kept; migration entries count no mapcount', () => {
    const e = engine();
    const mm = space(e);
    const pfn = 0x1000;
    const thp = e.createFolio({ number: pfn, order: 9, index: lpi(mm, BASE) });
    mm.map(BASE, { level: 'pmd', entry: { kind: 'migration-write', number: pfn, young: true, dirty: true, flags: { softDirty: true } } });
    const tables = e.memoryUsage().tables;
    mm.splitPmd(BASE + M2 - 1);
    for (const i of [0, 1, 100, 511]) {
      const t = mm.translate(BASE + i * K);
      expect(t.leaf.level).toBe('pte');
      expect(t.leaf.entry).toMatchObject({ kind: 'migration-write', namespace: 'pfn', number: pfn + i });
      expect(t.leaf.entry.bits).toMatchObject({ write: true, young: true, dirty: true, softDirty: true, uffdWp: false });
      expect(t.maps).toBe(false);
      expect(t.page).toMatchObject({ folio: thp, page: i, mapcount: 0 });
    }
    expect(e.folio(thp)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(mm.stats().leaves).toEqual({ pte: 512, pmd: 0, pud: 0 });
    expect(e.memoryUsage().tables).toBe(tables + 1);
  });

  it('a read migration entry with uffd-wp and exclusive flags and neither young nor dirty keeps exactly those', () => {
    const e = engine();
    const mm = space(e);
    e.createFolio({ number: 0x1200, order: 9, index: lpi(mm, BASE + M2) });
    mm.map(BASE + M2, { level: 'pmd', entry: { kind: 'migration-read', number: 0x1200, flags: { uffdWp: true, exclusive: true } } });
    mm.splitPmd(BASE + M2);
    const t = mm.translate(BASE + M2 + 511 * K);
    expect(t.leaf.entry).toMatchObject({ kind: 'migration-read', number: 0x1200 + 511 });
    expect(t.leaf.entry.bits).toMatchObject({ young: false, dirty: false, softDirty: false, uffdWp: true, exclusive: true });
  });

  it('5-level paging (SWP_PFN_BITS 40): a migration entry high in the address space splits with young/dirty intact', () => {
    const e = engine({ paging: 5 });
    const base = 2 ** 52;
    const mm = space(e, base);
    const pfn = 0x2000;
    const thp = e.createFolio({ number: pfn, order: 9, index: lpi(mm, base + 3 * M2) });
    mm.map(base + 3 * M2, { level: 'pmd', entry: { kind: 'migration-read-exclusive', number: pfn, young: true, dirty: true } });
    mm.splitPmd(base + 3 * M2 + 12345);
    const t = mm.translate(base + 3 * M2 + 300 * K);
    expect(t.steps.map((s) => s.level)).toEqual(['pgd', 'p4d', 'pud', 'pmd', 'pte']);
    expect(t.leaf.entry).toMatchObject({ kind: 'migration-read-exclusive', number: pfn + 300 });
    expect(t.leaf.entry.bits).toMatchObject({ young: true, dirty: true });
    expect(e.folio(thp).mapcount).toBe(0);
  });
});

describe.each<DeviceModel>(['pfn', 'offset'])('splitPmd: a device-private PMD becomes 512 device-private PTEs (device model %s)', (deviceModel) => {
  it('numbers + i, write state and soft-dirty kept; the mapping moves from the entire mapcount to the pages', () => {
    const e = engine({ deviceModel });
    const c = e.addDeviceMemory();
    const mm = space(e);
    const at = BASE + 4 * M2;
    const n = c.base + 512;
    const dev = e.createFolio({ namespace: c.namespace, number: n, order: 9, index: lpi(mm, at) });
    mm.map(at, { level: 'pmd', entry: { kind: 'device-private-write', number: n, flags: { softDirty: true } } });
    expect(e.folio(dev)).toMatchObject({ devicePrivate: true, mapcount: 1, entireMapcount: 1 });
    mm.splitPmd(at);
    for (const i of [0, 1, 511]) {
      const t = mm.translate(at + i * K);
      expect(t.leaf.level).toBe('pte');
      expect(t.leaf.entry).toMatchObject({ kind: 'device-private-write', namespace: c.namespace, number: n + i });
      expect(t.leaf.entry.bits).toMatchObject({ write: true, softDirty: true, uffdWp: false });
      expect(t.maps).toBe(true);
      expect(t.page).toMatchObject({ folio: dev, page: i, mapcount: 1 });
    }
    expect(e.folio(dev)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    expect(mm.stats().leaves).toEqual({ pte: 512, pmd: 0, pud: 0 });
  });

  it('a device-private-read PMD next to a RAM THP at the same number splits alone', () => {
    const e = engine({ deviceModel });
    const c = e.addDeviceMemory();
    const mm = space(e);
    const n = c.base + 1024;
    const dev = e.createFolio({ namespace: c.namespace, number: n, order: 9, index: lpi(mm, BASE) });
    const ram = pmdThp(e, mm, BASE + M2, 0x400);
    mm.map(BASE, { level: 'pmd', entry: { kind: 'device-private-read', number: n } });
    mm.splitPmd(BASE);
    expect(mm.translate(BASE + 7 * K).leaf.entry).toMatchObject({ kind: 'device-private-read', number: n + 7 });
    expect(mm.translate(BASE + 7 * K).leaf.entry.bits.write).toBe(false);
    expect(e.folio(dev)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    expect(e.folio(ram)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
  });
});

describe('splitPmd: series device-private migration entries (spec §3.4 SWP_MIGRATION_DEVICE_*)', () => {
  it('a migration-device-private-write PMD splits into 512 such PTEs; no mapcount', () => {
    const e = engine({ semantics: 'series', deviceModel: 'offset' });
    const c = e.addDeviceMemory();
    const mm = space(e);
    const dev = e.createFolio({ namespace: c.namespace, number: c.base, order: 9, index: lpi(mm, BASE) });
    mm.map(BASE, { level: 'pmd', entry: { kind: 'migration-device-private-write', number: c.base, young: true } });
    mm.splitPmd(BASE);
    const t = mm.translate(BASE + 42 * K);
    expect(t.leaf.entry).toMatchObject({ kind: 'migration-device-private-write', namespace: 'device-private', number: c.base + 42 });
    expect(t.leaf.entry.bits).toMatchObject({ young: true, dirty: false });
    expect(e.folio(dev)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
  });
});

describe('splitPmd refusals: ENTRY_CONFLICT, nothing changed', () => {
  it('a PMD slot that does not exist, a none PMD, a PTE table, a hugetlb leaf and a hugetlb migration entry', () => {
    const e = engine();
    const mm = space(e);
    const small = e.createFolio({ number: 0x10, index: lpi(mm, BASE + 3 * M2) });
    const thp = pmdThp(e, mm, BASE, 0x400);
    mm.map(BASE + 3 * M2, { entry: { kind: 'present', number: 0x10 } });
    mm.addVma({ start: 2 * G1, end: 2 * G1 + 4 * M2, flags: { hugetlb: '2M' } });
    const h = e.createFolio({ number: 0x800, hugetlb: '2M', index: lpi(mm, 2 * G1) });
    const hm = e.createFolio({ number: 0xa00, hugetlb: '2M', index: lpi(mm, 2 * G1 + M2) });
    mm.map(2 * G1, { level: 'pmd', entry: { kind: 'present', number: 0x800, write: true } });
    mm.map(2 * G1 + M2, { level: 'pmd', entry: { kind: 'migration-write', number: 0xa00 } });
    const addrs = [BASE, BASE + M2, BASE + 3 * M2, 2 * G1, 2 * G1 + M2, 3 * G1];
    const folios = [small, thp, h, hm];
    refused(e, mm, () => mm.splitPmd(3 * G1 + 5 * K), addrs, folios, 'ENTRY_CONFLICT', `pmd entry at ${hex(3 * G1)} is missing (the pud entry above it is none)`);
    refused(e, mm, () => mm.splitPmd(BASE + M2), addrs, folios, 'ENTRY_CONFLICT', `pmd entry at ${hex(BASE + M2)} is none, not a huge PMD`);
    refused(e, mm, () => mm.splitPmd(BASE + 3 * M2 + K), addrs, folios, 'ENTRY_CONFLICT', `pmd entry at ${hex(BASE + 3 * M2)} is a PTE table, not a huge PMD`);
    refused(e, mm, () => mm.splitPmd(2 * G1), addrs, folios, 'ENTRY_CONFLICT', `pmd entry at ${hex(2 * G1)} is a hugetlb leaf`);
    refused(e, mm, () => mm.splitPmd(2 * G1 + M2), addrs, folios, 'ENTRY_CONFLICT', 'a hugetlb migration-write entry');
    // A split table splits no further.
    mm.splitPmd(BASE);
    refused(e, mm, () => mm.splitPmd(BASE), addrs, folios, 'ENTRY_CONFLICT', 'is a PTE table');
  });

  it('a 1G hugetlb PUD leaf leaves no PMD slot; swap-format PMDs of other kinds (hwpoison) are not split', () => {
    const e = engine({ ramPages: 1 << 19 });
    const mm = e.createMm();
    mm.addVma({ start: 4 * G1, end: 6 * G1, flags: { hugetlb: '1G' } });
    const h = e.createFolio({ number: 2 ** 18, hugetlb: '1G', index: lpi(mm, 4 * G1) });
    mm.map(4 * G1, { level: 'pud', entry: { kind: 'present', number: 2 ** 18 } });
    mm.addVma({ start: 8 * G1, end: 8 * G1 + 2 * M2, flags: { hugetlb: '2M' } });
    e.createFolio({ number: 0x600, hugetlb: '2M', index: lpi(mm, 8 * G1) });
    mm.map(8 * G1, { level: 'pmd', entry: { kind: 'hwpoison', number: 0x600 } });
    const addrs = [4 * G1, 8 * G1];
    refused(e, mm, () => mm.splitPmd(4 * G1 + 3 * M2), addrs, [h], 'ENTRY_CONFLICT', `pmd entry at ${hex(4 * G1 + 3 * M2)} is missing (the pud entry above it is a leaf)`);
    refused(e, mm, () => mm.splitPmd(8 * G1), addrs, [h], 'ENTRY_CONFLICT', 'is a hugetlb hwpoison entry');
  });

  it('bad addresses are BAD_ADDRESS; a freed mm is MM_FREED', () => {
    const e = engine();
    const mm = space(e);
    for (const a of [-1, 1.5, Number.NaN, 2 ** 47, 2 ** 47 - 1, 2 ** 60]) {
      for (const op of [() => mm.splitPmd(a), () => mm.freePteTable(a), () => mm.replacePteTable(a)]) expectPvmwError(op, 'BAD_ADDRESS');
    }
    e.freeMm(mm.id);
    expectPvmwError(() => mm.splitPmd(BASE), 'MM_FREED');
    expectPvmwError(() => mm.freePteTable(BASE), 'MM_FREED');
    expectPvmwError(() => mm.replacePteTable(BASE), 'MM_FREED');
  });
});

/** An mm with one PTE table at BASE holding: a small folio, a 16-page mTHP, a swap entry and a marker. */
function pteWorld(e: Engine) {
  const mm = space(e);
  const small = e.createFolio({ number: 0x10, index: lpi(mm, BASE) });
  const mthp = e.createFolio({ number: 0x20, order: 4, index: lpi(mm, BASE + 32 * K) });
  mm.map(BASE, { entry: { kind: 'present', number: 0x10, write: true, dirty: true } });
  mm.map(BASE + 32 * K, { count: 16, entry: { kind: 'present', number: 0x20, young: true } });
  mm.map(BASE + 100 * K, { entry: { kind: 'swap', swapType: 1, offset: 77 } });
  mm.map(BASE + 511 * K, { entry: { kind: 'marker', guard: true } });
  const thp = pmdThp(e, mm, BASE + M2, 0x400);
  return { mm, small, mthp, thp, addrs: [BASE, BASE + 32 * K, BASE + 47 * K, BASE + 100 * K, BASE + 511 * K, BASE + M2] };
}

describe('freePteTable: the PTE table is zapped and freed, the PMD becomes none (D4 free-pte-table)', () => {
  it('mapcounts drop, one table less, translate stops at the pmd; the PMD table stays', () => {
    const e = engine();
    const { mm, small, mthp, thp } = pteWorld(e);
    expect([e.folio(small).mapcount, e.folio(mthp).mapcount]).toEqual([1, 16]);
    const stats = mm.stats();
    const tables = e.memoryUsage().tables;
    mm.freePteTable(BASE + 33 * K);
    expect([e.folio(small).mapcount, e.folio(mthp).mapcount]).toEqual([0, 0]);
    expect(e.page('pfn', 0x25)!.mapcount).toBe(0);
    const t = mm.translate(BASE + 32 * K);
    expect(t.leaf.level).toBe('pmd');
    expect(t.leaf.entry.kind).toBe('none');
    expect(t.steps.map((s) => s.level)).toEqual(['pgd', 'pud', 'pmd']);
    const after = mm.stats();
    expect(after.tables).toEqual({ ...stats.tables, pte: stats.tables.pte - 1 });
    expect(after.leaves).toEqual({ pte: 0, pmd: 1, pud: 0 });
    expect(e.memoryUsage().tables).toBe(tables - 1);
    expect(e.memoryUsage().freeBytes).toBe(K); // the frame is on the free list
    // The neighbouring THP is untouched; the folios can be freed; the slot can be used again.
    expect(e.folio(thp)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    e.freeFolio(small);
    mm.map(BASE + 5 * K, { entry: { kind: 'marker', guard: true } });
    expect(e.memoryUsage()).toMatchObject({ tables, freeBytes: 0 });
    expect(mm.stats().leaves.pte).toBe(1);
  });

  it('after splitting a THP: freeing its PTE table drops all 512 page mappings', () => {
    const e = engine();
    const mm = space(e);
    const thp = pmdThp(e, mm, BASE, 0x400, { write: true });
    const tables = e.memoryUsage().tables;
    mm.splitPmd(BASE);
    mm.freePteTable(BASE);
    expect(e.folio(thp)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.page('pfn', 0x400 + 200)!.mapcount).toBe(0);
    expect(e.memoryUsage().tables).toBe(tables);
    expect(mm.translate(BASE).leaf).toMatchObject({ level: 'pmd', entry: { kind: 'none' } });
    e.freeFolio(thp);
  });

  it('ENTRY_CONFLICT when the pmd entry is not a PTE table (none, a huge leaf, missing); nothing changed', () => {
    const e = engine();
    const { mm, small, mthp, thp, addrs } = pteWorld(e);
    const folios = [small, mthp, thp];
    refused(e, mm, () => mm.freePteTable(BASE + M2), addrs, folios, 'ENTRY_CONFLICT', `pmd entry at ${hex(BASE + M2)} is a huge leaf, not a PTE table`);
    refused(e, mm, () => mm.freePteTable(BASE + 2 * M2), addrs, folios, 'ENTRY_CONFLICT', 'is none, not a PTE table');
    refused(e, mm, () => mm.freePteTable(G1), addrs, folios, 'ENTRY_CONFLICT', 'is missing');
  });
});

describe('replacePteTable: the PTE table moves to another frame (D4 replace-pte-table)', () => {
  it('same entries and mapcounts, the pmd value changes, tablesInUse unchanged; the copy is a full table', () => {
    const e = engine();
    const { mm, small, mthp, thp, addrs } = pteWorld(e);
    const leaves = addrs.map((a) => mm.translate(a).leaf.raw);
    const pmdBefore = pmdStep(mm, BASE);
    const stats = mm.stats();
    const tables = e.memoryUsage().tables;
    mm.replacePteTable(BASE + 300 * K);
    const pmdAfter = pmdStep(mm, BASE);
    expect(pmdAfter.entry.kind).toBe('table');
    expect(pmdAfter.raw).not.toEqual(pmdBefore.raw);
    expect(pmdAfter.raw.lo & 0xfff).toBe(pmdBefore.raw.lo & 0xfff); // same flags
    expect(addrs.map((a) => mm.translate(a).leaf.raw)).toEqual(leaves);
    expect(mm.stats()).toEqual(stats);
    expect(e.memoryUsage().tables).toBe(tables);
    expect(e.memoryUsage().freeBytes).toBe(K); // the old frame
    expect([e.folio(small).mapcount, e.folio(mthp).mapcount, e.page('pfn', 0x2f)!.mapcount]).toEqual([1, 16, 1]);
    expect(e.folio(thp)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    // The entry count came along: clearing the 19 entries frees the new table.
    expect(mm.clear(BASE, BASE + M2)).toBe(19);
    expect(e.memoryUsage().tables).toBe(tables - 1);
    expect(mm.translate(BASE).leaf).toMatchObject({ level: 'pmd', entry: { kind: 'none' } });
  });

  it('a split THP table moved twice still clears whole; ENTRY_CONFLICT on a huge leaf and on none, nothing changed', () => {
    const e = engine();
    const { mm, small, mthp, thp, addrs } = pteWorld(e);
    refused(e, mm, () => mm.replacePteTable(BASE + M2), addrs, [small, mthp, thp], 'ENTRY_CONFLICT', 'is a huge leaf, not a PTE table');
    refused(e, mm, () => mm.replacePteTable(BASE + 5 * M2), addrs, [small, mthp, thp], 'ENTRY_CONFLICT', 'is none, not a PTE table');
    mm.splitPmd(BASE + M2);
    const raws = [0, 1, 511].map((i) => mm.translate(BASE + M2 + i * K).leaf.raw);
    mm.replacePteTable(BASE + M2);
    mm.replacePteTable(BASE + M2);
    expect([0, 1, 511].map((i) => mm.translate(BASE + M2 + i * K).leaf.raw)).toEqual(raws);
    expect(e.folio(thp)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    expect(mm.clear(BASE + M2, BASE + 2 * M2)).toBe(512);
    expect(e.folio(thp).mapcount).toBe(0);
  });
});

describe('the memory ceiling: a split or a move that needs a frame when none is left is MEMORY_LIMIT, nothing changed', () => {
  const LIMIT = 8 << 20;
  const FILL = 2 ** 44;
  const marker: EntrySpec = { kind: 'marker', guard: true };

  /** Fill the engine with page tables in a second mm until one more table does not fit. */
  function fill(e: Engine): Mm {
    const filler = e.createMm();
    filler.addVma({ start: FILL, end: FILL + 4 * G1 });
    for (let r = 0; r < 4; r++) filler.map(FILL + r * G1, { entry: marker });
    for (let i = 1; i < 2048; i++) {
      if (i % 512 === 0) continue;
      try {
        filler.map(FILL + i * M2, { count: 512, entry: marker });
      } catch (err) {
        expect((err as PvmwError).code).toBe('MEMORY_LIMIT');
        return filler;
      }
    }
    throw new Error('memory never filled up');
  }

  it('splitPmd and replacePteTable fail at the ceiling; freePteTable needs no memory; a freed frame lets the split through', () => {
    const e = engine({ ramPages: 1 << 20, maxMemoryBytes: LIMIT });
    const { mm, small, mthp, thp, addrs } = pteWorld(e);
    const filler = fill(e);
    expect(e.memoryUsage()).toMatchObject({ wasmBytes: LIMIT, freeBytes: 0 });
    const folios = [small, mthp, thp];
    refused(e, mm, () => mm.splitPmd(BASE + M2), addrs, folios, 'MEMORY_LIMIT', hex(BASE + M2), 'ceiling');
    refused(e, mm, () => mm.replacePteTable(BASE), addrs, folios, 'MEMORY_LIMIT', hex(BASE), 'ceiling');
    // One free frame: exactly one split fits.
    expect(filler.clear(FILL + M2, FILL + 2 * M2)).toBe(512);
    mm.splitPmd(BASE + M2);
    expect(e.folio(thp)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    refused(e, mm, () => mm.replacePteTable(BASE + M2), addrs, folios, 'MEMORY_LIMIT');
    // Freeing a PTE table works at the ceiling and gives a frame for a move.
    mm.freePteTable(BASE);
    expect(e.folio(small).mapcount).toBe(0);
    const raw = mm.translate(BASE + M2 + 3 * K).leaf.raw;
    mm.replacePteTable(BASE + M2);
    expect(mm.translate(BASE + M2 + 3 * K).leaf.raw).toEqual(raw);
    expect(e.memoryUsage()).toMatchObject({ wasmBytes: LIMIT, freeBytes: K });
  });
});
