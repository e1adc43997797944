// Page-table model tests: sparse tables in WASM memory, spec §3.1 geometry, bulk set/clear and many mms (the
// fast-check property test against a Map model is in pagetable-model.test.ts). Folios are created with the
// index of the address where they are mapped (kernel-operations.md §0.3): for an anon VMA with the default
// pgoff that is the virtual address / 4096.
import { describe, expect, it } from 'vitest';
import { Engine, Mm, PvmwError, encodePresent, type EntrySpec, type PvmwErrorCode } from '../src/index.js';
import { expectPvmwError } from './helpers.js';

const K = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const G512 = 2 ** 39;
const marker: EntrySpec = { kind: 'marker', guard: true };


/** Everything observable about an mm at some addresses, for "nothing changed" checks. */
function snapshot(e: Engine, mm: Mm, addrs: number[], folios: number[] = []): string {
  const u = e.memoryUsage();
  return JSON.stringify({
    stats: mm.stats(),
    tables: u.tables,
    free: u.freeBytes,
    wasm: u.wasmBytes,
    tr: addrs.map((a) => mm.translate(a).steps.map((s) => [s.level, s.raw])),
    mc: folios.map((f) => [e.folio(f).mapcount, e.folio(f).entireMapcount]),
  });
}

function engine(paging: 4 | 5 = 4): Engine {
  return new Engine({ ramPages: 1 << 20, paging, maxMemoryBytes: 256 << 20 });
}

describe('sparse tables (issue "Page tables in WASM linear memory")', () => {
  it.each([4, 5] as const)('%i-level: a fresh mm has only the root; one PTE adds exactly one table per level; translate visits each level root first', (paging) => {
    const e = engine(paging);
    const mm = e.createMm();
    const names = paging === 5 ? ['pgd', 'p4d', 'pud', 'pmd', 'pte'] : ['pgd', 'pud', 'pmd', 'pte'];
    expect(mm.stats()).toEqual({ tables: Object.fromEntries(names.map((n) => [n, n === 'pgd' ? 1 : 0])), leaves: { pte: 0, pmd: 0, pud: 0 } });
    expect(e.memoryUsage().tables).toBe(1);
    expect(mm.translate(0x401000).steps.map((s) => [s.level, s.entry.kind])).toEqual([['pgd', 'none']]);
    expect(mm.translate(0x401000).page).toBeUndefined();
    mm.addVma({ start: 0x400000, end: 0x800000 });
    const f = e.createFolio({ number: 0x1234, index: 0x401000 / K });
    mm.map(0x401000, { entry: { kind: 'present', number: 0x1234, write: true } });
    const { tables, leaves } = mm.stats();
    expect(Object.values(tables)).toEqual(Array(paging).fill(1));
    expect(leaves).toEqual({ pte: 1, pmd: 0, pud: 0 });
    expect(e.memoryUsage().tables).toBe(paging);
    const t = mm.translate(0x401000 + 123);
    expect(t.steps.map((s) => s.level)).toEqual(names);
    expect(t.steps.slice(0, -1).every((s) => s.entry.kind === 'table')).toBe(true);
    expect(t.leaf).toBe(t.steps[t.steps.length - 1]);
    expect(t.leaf.entry).toMatchObject({ kind: 'present', number: 0x1234, namespace: 'pfn', huge: false, bits: { write: true } });
    expect(t.leaf.raw).toEqual(encodePresent('pte', 0x1234, { write: true }));
    expect(t.page).toMatchObject({ folio: f, page: 0, mapcount: 1 });
    expect(mm.entryAt(0x401000)).toEqual(t.leaf);
    // Next page: same tables, none leaf at the PTE level; another 2 MiB: stops at the none PMD entry.
    expect(mm.translate(0x402000).leaf.entry.kind).toBe('none');
    expect(mm.translate(0x402000).leaf.level).toBe('pte');
    expect(mm.translate(0x600000).steps.map((s) => s.entry.kind).slice(-2)).toEqual(['table', 'none']);
    expect(mm.translate(0x600000).leaf.level).toBe('pmd');
  });

  it('4-level: mappings in distant places get separate tables, nearby ones share them', () => {
    const e = engine(4);
    const mm = e.createMm();
    const far = 2 ** 46 + 0x400000; // another PGD slot (index 128)
    mm.addVma({ start: 0x400000, end: 0x40000000 });
    mm.addVma({ start: far, end: far + M2 });
    mm.map(0x400000, { entry: marker });
    mm.map(0x401000, { entry: marker }); // same PTE table
    expect(mm.stats().tables).toEqual({ pgd: 1, pud: 1, pmd: 1, pte: 1 });
    mm.map(0x600000, { entry: marker }); // same PMD table, another PTE table
    expect(mm.stats().tables).toEqual({ pgd: 1, pud: 1, pmd: 1, pte: 2 });
    mm.map(far, { entry: marker });
    expect(mm.stats()).toEqual({ tables: { pgd: 1, pud: 2, pmd: 2, pte: 3 }, leaves: { pte: 4, pmd: 0, pud: 0 } });
    expect(mm.translate(far).leaf.entry.kind).toBe('marker');
    expect(mm.translate(far).steps[0].raw).not.toEqual(mm.translate(0x400000).steps[0].raw);
  });

  it.each([
    [4, 2 ** 47 - 2 * K],
    [5, 2 ** 56 - 2 * K],
  ] as const)('%i-level: the last user page (TASK_SIZE − 4096 = %d) maps and translates; TASK_SIZE itself is BAD_ADDRESS', (paging, last) => {
    const e = engine(paging);
    const mm = e.createMm();
    mm.addVma({ start: last - M2 + K, end: last + K });
    e.createFolio({ number: 0x777, index: last / K });
    mm.map(last, { entry: { kind: 'present', number: 0x777 } });
    mm.map(last - K, { entry: { kind: 'swap', swapType: 3, offset: 99 } });
    expect(mm.translate(last).leaf.entry).toMatchObject({ kind: 'present', number: 0x777 });
    expect(mm.translate(last).steps).toHaveLength(paging);
    expect(mm.translate(last - K).leaf.entry).toMatchObject({ kind: 'swap', swap: { type: 3, offset: 99 } });
    expect(mm.stats().leaves.pte).toBe(2);
    expectPvmwError(() => mm.translate(last + K), 'BAD_ADDRESS', (last + K).toString(16));
    expectPvmwError(() => mm.map(last + K, { entry: marker }), 'BAD_ADDRESS');
    expect(mm.clear(last - K, last + K)).toBe(2);
    expect(e.memoryUsage().tables).toBe(1);
  });

  it.each([
    { what: 'THP: a PMD leaf', level: 'pmd', start: G1, vma: { thp: true }, folio: { number: 0x400, order: 9, index: G1 / K }, steps: ['pgd', 'pud', 'pmd'] },
    { what: '1G hugetlb: a PUD leaf', level: 'pud', start: 2 * G1, vma: { hugetlb: '1G' }, folio: { number: 2 ** 18, hugetlb: '1G', index: 2 * G1 / K }, steps: ['pgd', 'pud'] },
  ] as const)('$what sits at its level with no lower table; a partial clear is ENTRY_CONFLICT', ({ level, start, vma, folio, steps }) => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start, end: start + G1, flags: vma });
    const f = e.createFolio(folio);
    mm.map(start, { level, entry: { kind: 'present', number: folio.number, write: true } });
    expect(mm.stats()).toEqual({
      tables: { pgd: 1, pud: 1, pmd: level === 'pmd' ? 1 : 0, pte: 0 },
      leaves: { pte: 0, pmd: level === 'pmd' ? 1 : 0, pud: level === 'pud' ? 1 : 0 },
    });
    const t = mm.translate(start + 300 * K);
    expect(t.steps.map((s) => s.level)).toEqual(steps);
    expect(t.leaf.entry).toMatchObject({ kind: 'present', level, huge: true, number: folio.number, bits: { write: true } });
    expect(t.page).toMatchObject({ folio: f, page: 300, mapcount: 1 });
    expect(e.folio(f)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    const before = snapshot(e, mm, [start, start + 300 * K], [f]);
    expectPvmwError(() => mm.clear(start + K, start + M2 + K), 'ENTRY_CONFLICT', start.toString(16), level);
    expect(snapshot(e, mm, [start, start + 300 * K], [f])).toBe(before);
    expect(mm.clear(start, start + G1)).toBe(1);
    expect(e.folio(f)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.memoryUsage().tables).toBe(1);
  });
});

describe('geometry (spec §3.1)', () => {
  function build(paging: 4 | 5): Mm {
    const e = engine(paging);
    const mm = e.createMm();
    mm.addVma({ start: G512 - 4 * M2, end: G512 + 4 * M2 });
    mm.addVma({ start: 3 * G1, end: 4 * G1, flags: { hugetlb: '1G' } });
    e.createFolio({ number: 0x200, order: 9, index: (G512 - 4 * M2) / K });
    e.createFolios({ number: 0x1000, index: (G512 + 2 * K) / K }, 2); // 0x1000 at G512 + 2K, 0x1001 at G512 + 3K
    e.createFolio({ number: 2 ** 18, hugetlb: '1G', index: 3 * G1 / K });
    mm.map(G512 - 4 * M2, { level: 'pmd', entry: { kind: 'present', number: 0x200, young: true } });
    mm.map(G512 - K, { count: 3, entry: { kind: 'swap', swapType: 1, offset: 0x55 } });
    mm.map(G512 + 2 * K, { entry: { kind: 'present', number: 0x1000, dirty: true, nx: true } });
    mm.map(G512 + 3 * K, { entry: { kind: 'migration-read', number: 0x1001 } });
    mm.map(G512 + 4 * K, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(3 * G1, { level: 'pud', entry: { kind: 'present', number: 2 ** 18 } });
    return mm;
  }

  it('the same operations with 4- and 5-level paging give the same leaf entries', () => {
    const m4 = build(4);
    const m5 = build(5);
    const addrs = [G512 - 4 * M2, G512 - 4 * M2 + 17 * K, G512 - 2 * K, G512 - K, G512, G512 + K, G512 + 2 * K, G512 + 3 * K, G512 + 4 * K, G512 + 5 * K, 3 * G1 + 7 * K];
    for (const a of addrs) {
      const [l4, l5] = [m4.translate(a).leaf, m5.translate(a).leaf];
      expect(l5.raw, a.toString(16)).toEqual(l4.raw);
      expect({ ...l5.entry }, a.toString(16)).toEqual({ ...l4.entry });
      expect(m5.translate(a).steps.length - m4.translate(a).steps.length).toBe(1);
    }
    const [s4, s5] = [m4.stats(), m5.stats()];
    expect(s5.leaves).toEqual(s4.leaves);
    expect(s5.tables.p4d).toBe(1);
    expect({ ...s5.tables, p4d: undefined }).toEqual({ ...s4.tables, p4d: undefined });
  });

  it.each([2 ** 47, 2 ** 47 + 0x1000 * 511, 2 ** 52, 2 ** 55 + 2 ** 30])('VA %d (bits 47..55 set) is BAD_ADDRESS with 4 levels and ordinary with 5', (va) => {
    const m4 = engine(4).createMm();
    expectPvmwError(() => m4.addVma({ start: va, end: va + M2 }), 'BAD_ADDRESS');
    expectPvmwError(() => m4.translate(va), 'BAD_ADDRESS', va.toString(16));
    expectPvmwError(() => m4.clear(va, va + K), 'BAD_ADDRESS');
    expectPvmwError(() => m4.map(va, { entry: marker }), 'BAD_ADDRESS');
    const e5 = engine(5);
    const m5 = e5.createMm();
    m5.addVma({ start: va, end: va + M2 });
    e5.createFolio({ number: 0x42, index: va / K });
    m5.map(va, { entry: { kind: 'present', number: 0x42 } });
    expect(m5.translate(va).leaf.entry).toMatchObject({ kind: 'present', number: 0x42 });
    // Distinct from the address with bits 47..55 cleared (a different PGD/P4D slot).
    expect(m5.translate(va % 2 ** 47).leaf.entry.kind).toBe('none');
    expect(m5.stats().tables).toEqual({ pgd: 1, p4d: 1, pud: 1, pmd: 1, pte: 1 });
    expectPvmwError(() => m5.translate(2 ** 56), 'BAD_ADDRESS', '5-level');
  });
});

describe('bulk set and clear', () => {
  const N = 2 ** 17; // 512 MiB of PTEs: 256 PTE tables, across a 1 GiB and a 512 GiB boundary
  const BASE = 2 ** 40 - 128 * 2 ** 20;
  const PFN = 2 ** 18;
  function setup() {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: BASE, end: BASE + N * K });
    const folios = Array.from({ length: N / 512 }, (_, i) => e.createFolio({ number: PFN + 512 * i, order: 9, index: BASE / K + 512 * i }));
    mm.map(BASE, { count: N, entry: { kind: 'present', number: PFN, write: true } });
    return { e, mm, folios };
  }

  it(`one map() of ${N} PTEs fills ${N / 512} tables; clearing a sub-range frees the emptied tables and keeps the rest`, () => {
    const { e, mm, folios } = setup();
    for (const i of [0, 1, 511, 512, N / 2 - 1, N / 2, N - 1]) {
      const t = mm.translate(BASE + i * K);
      expect(t.leaf.entry, `page ${i}`).toMatchObject({ kind: 'present', level: 'pte', number: PFN + i, bits: { write: true } });
      expect(t.page).toMatchObject({ folio: folios[Math.floor(i / 512)], page: i % 512 });
    }
    expect(mm.stats()).toEqual({ tables: { pgd: 1, pud: 2, pmd: 2, pte: 256 }, leaves: { pte: N, pmd: 0, pud: 0 } });
    expect(folios.every((f) => e.folio(f).mapcount === 512)).toBe(true);
    const u0 = e.memoryUsage();
    expect(u0.tables).toBe(261);
    expect(u0.freeBytes).toBe(0);

    // Not table-aligned: tables 0 and 3 keep entries, tables 1 and 2 are emptied and freed.
    expect(mm.clear(BASE + K, BASE + 1537 * K)).toBe(1536);
    expect(mm.stats().tables.pte).toBe(254);
    expect(mm.translate(BASE).leaf.entry.kind).toBe('present');
    expect(mm.translate(BASE + 1537 * K).leaf.entry).toMatchObject({ kind: 'present', number: PFN + 1537 });
    expect(mm.translate(BASE + 1000 * K).leaf.level).toBe('pmd'); // table freed: descent stops at the PMD
    expect(e.memoryUsage()).toMatchObject({ tables: 259, freeBytes: 2 * K });
    expect(e.folio(folios[1]).mapcount).toBe(0);
    expect(e.folio(folios[3]).mapcount).toBe(511);

    // All below the 512 GiB boundary: 64 PTE tables, the PMD table and the PUD table go.
    expect(mm.clear(BASE, 2 ** 40)).toBe(32768 - 1536);
    expect(mm.stats()).toEqual({ tables: { pgd: 1, pud: 1, pmd: 1, pte: 192 }, leaves: { pte: N - 32768, pmd: 0, pud: 0 } });
    expect(e.memoryUsage()).toMatchObject({ tables: 195, freeBytes: 66 * K });
    expect(mm.translate(BASE).steps.map((s) => s.entry.kind)).toEqual(['none']);
    expect(mm.translate(2 ** 40).leaf.entry).toMatchObject({ kind: 'present', number: PFN + 32768 });
  });

  it('re-mapping after a clear reuses the freed frames: wasmBytes does not grow, freeBytes goes down', () => {
    const { e, mm, folios } = setup();
    expect(mm.clear(BASE, BASE + N * K)).toBe(N);
    const u1 = e.memoryUsage();
    expect(u1).toMatchObject({ tables: 1, freeBytes: 260 * K });
    expect(folios.every((f) => e.folio(f).mapcount === 0)).toBe(true);
    mm.map(BASE + N * K - 64 * M2, { count: 64 * 512, entry: { kind: 'present', number: PFN + N - 64 * 512 } }); // the same pages again
    const u2 = e.memoryUsage();
    expect(u2.wasmBytes).toBe(u1.wasmBytes);
    expect(u2.tables).toBe(1 + 1 + 1 + 64);
    expect(u2.freeBytes).toBe(u1.freeBytes - 66 * K);
    mm.map(BASE, { count: N - 64 * 512, entry: { kind: 'swap', swapType: 0, offset: 7 } });
    expect(e.memoryUsage()).toMatchObject({ wasmBytes: u1.wasmBytes, tables: 261, freeBytes: 0 });
    expect(mm.translate(BASE + 5 * K).leaf.entry).toMatchObject({ kind: 'swap', swap: { offset: 12 } });
  });

  it('installing over a non-none entry, a PTE under a PMD leaf, a PMD leaf over a PTE table, or clearing part of a PMD leaf is ENTRY_CONFLICT and changes nothing', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: G1, end: G1 + 8 * M2 });
    // thp belongs at G1 + M2, thp2 and thp3 at the next two 2 MiB blocks, small at G1 + 3·M2 + 10 pages.
    const thp = e.createFolio({ number: 0x800, order: 9, index: (G1 + M2) / K });
    const thp2 = e.createFolio({ number: 0xa00, order: 9, index: (G1 + 2 * M2) / K });
    const thp3 = e.createFolio({ number: 0xc00, order: 9, index: (G1 + 3 * M2) / K });
    const small = e.createFolio({ number: 0x10, index: (G1 + 3 * M2 + 10 * K) / K });
    mm.map(G1 + M2, { level: 'pmd', entry: { kind: 'present', number: 0x800 } });
    mm.map(G1 + 3 * M2 + 10 * K, { entry: marker });
    const addrs = [G1 + M2, G1 + M2 + 4 * K, G1 + 3 * M2, G1 + 3 * M2 + 10 * K, G1 + 3 * M2 + 11 * K, G1 + 4 * M2];
    const folios = [thp, thp2, thp3, small];
    const before = snapshot(e, mm, addrs, folios);
    const attempts: Array<[string, () => void, string]> = [
      ['over a marker', () => mm.map(G1 + 3 * M2 + 9 * K, { count: 3, entry: { kind: 'swap', swapType: 2, offset: 1 } }), 'pte'],
      ['present over a marker', () => mm.map(G1 + 3 * M2 + 10 * K, { entry: { kind: 'present', number: 0x10 } }), 'pte'],
      ['PTE under the PMD leaf', () => mm.map(G1 + M2 + 4 * K, { entry: { kind: 'present', number: 0x800 + 4 } }), 'pmd'],
      ['PTEs running into the PMD leaf', () => mm.map(G1 + M2 - 2 * K, { count: 4, entry: marker }), 'pmd'],
      ['PMD leaf over the PMD leaf', () => mm.map(G1 + M2, { level: 'pmd', entry: { kind: 'present', number: 0x800 } }), 'pmd'],
      ['PMD leaf over a PTE table', () => mm.map(G1 + 3 * M2, { level: 'pmd', entry: { kind: 'present', number: 0xc00 } }), 'pmd'],
      ['two PMD leaves, the second over a PTE table', () => mm.map(G1 + 2 * M2, { level: 'pmd', count: 2, entry: { kind: 'migration-read', number: 0xa00 } }), 'pmd'],
      ['clear from inside the PMD leaf', () => mm.clear(G1 + M2 + K, G1 + 4 * M2), 'pmd'],
      ['clear into the PMD leaf', () => mm.clear(G1, G1 + M2 + K), 'pmd'],
    ];
    for (const [what, f, level] of attempts) {
      const err = expectPvmwError(f, 'ENTRY_CONFLICT', level);
      expect(err.message, what).toMatch(/0x40[0-9a-f]{5}/);
      expect(snapshot(e, mm, addrs, folios), what).toBe(before);
    }
    expect(e.folio(small).mapcount).toBe(0);
    expect(e.folio(thp2).mapcount).toBe(0);
    expect(e.folio(thp3).mapcount).toBe(0);
  });

  it('§3.5 swap type 0 offset 2^50−1 encodes to 0 (none), so map refuses it with BAD_ENTRY', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: G1, end: G1 + M2 });
    expectPvmwError(() => mm.map(G1, { count: 2, entry: { kind: 'swap', swapType: 0, offset: 2 ** 50 - 2 } }), 'BAD_ENTRY');
    expect(mm.stats().tables.pte).toBe(0);
  });
});

describe('spec §3.4: PMD-level softleaves outside hugetlb VMAs', () => {
  it.each([
    ['swap', { kind: 'swap', swapType: 0, offset: 5 }],
    ['marker', { kind: 'marker', guard: true }],
  ] as const)('§3.4 a %s entry at PMD level in a THP VMA is BAD_ENTRY', (_k, entry) => {
    // §3.4: "Valid PMD-level softleaves are only migration and device-private entries" (softleaf_is_valid_pmd_entry).
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: G1, end: G1 + M2, flags: { thp: true } });
    expectPvmwError(() => mm.map(G1, { level: 'pmd', entry }), 'BAD_ENTRY');
  });
});

describe('many mms in one engine; engines are independent (DESIGN.md §2)', () => {
  it('50 mms map the same folios: mapcount 50, freeing them one by one drops it to 0', () => {
    const e = engine();
    // small is page 0x99 of file 1; mm i maps the file with pgoff 0x99 − i, which puts that page at G1 + i pages.
    // thp is anonymous and at G1 + 2·M2 in every mm (as after fork).
    const small = e.createFolio({ number: 0x99, file: 1, index: 0x99 });
    const thp = e.createFolio({ number: 0x1200, order: 9, index: (G1 + 2 * M2) / K });
    const mms = Array.from({ length: 50 }, (_, i) => {
      const mm = e.createMm();
      mm.addVma({ start: G1, end: G1 + M2, file: 1, pgoff: 0x99 - i });
      mm.addVma({ start: G1 + M2, end: G1 + 4 * M2 });
      mm.map(G1 + i * K, { entry: { kind: 'present', number: 0x99 } });
      mm.map(G1 + 2 * M2, { level: 'pmd', entry: { kind: 'present', number: 0x1200 } });
      return mm;
    });
    expect(e.allMms()).toHaveLength(50);
    expect(e.folio(small).mapcount).toBe(50);
    expect(e.folio(thp)).toMatchObject({ mapcount: 50, entireMapcount: 50 });
    expect(e.memoryUsage().tables).toBe(50 * 4);
    for (let i = 0; i < 50; i++) {
      const mm = mms[i];
      e.freeMm(mm.id);
      expect(e.folio(small).mapcount).toBe(49 - i);
      expect(e.folio(thp).entireMapcount).toBe(49 - i);
      expect(e.memoryUsage()).toMatchObject({ tables: (49 - i) * 4, freeBytes: (i + 1) * 4 * K });
      if (i < 49) {
        const other = mms[49];
        expect(other.translate(G1 + 49 * K).leaf.entry).toMatchObject({ kind: 'present', number: 0x99 });
        expect(other.stats().leaves).toEqual({ pte: 1, pmd: 1, pud: 0 });
      }
    }
    expect(e.allMms()).toHaveLength(0);
    // Freed frames serve a new mm.
    const wasm = e.memoryUsage().wasmBytes;
    const mm = e.createMm();
    mm.addVma({ start: G1, end: G1 + M2, file: 1, pgoff: 0x99 });
    mm.map(G1, { entry: { kind: 'present', number: 0x99 } });
    expect(e.memoryUsage()).toMatchObject({ wasmBytes: wasm, tables: 4, freeBytes: 196 * K });
    e.freeFolio(thp);
  });

  it('a freed mm refuses every operation with MM_FREED; the others are unaffected', () => {
    const e = engine();
    const [a, b] = [e.createMm(), e.createMm()];
    for (const mm of [a, b]) {
      mm.addVma({ start: G1, end: G1 + M2 });
      mm.map(G1, { entry: marker });
    }
    e.freeMm(a.id);
    expect(a.freed).toBe(true);
    const ops: Array<() => unknown> = [
      () => a.map(G1 + K, { entry: marker }), () => a.clear(G1, G1 + M2), () => a.translate(G1), () => a.entryAt(G1),
      () => a.stats(), () => a.addVma({ start: 2 * G1, end: 2 * G1 + M2 }), () => a.free(), () => e.freeMm(a.id), () => e.mm(a.id),
    ];
    for (const op of ops) expectPvmwError(op, 'MM_FREED', String(a.id));
    expectPvmwError(() => e.mm(12345), 'MM_FREED', 'does not exist');
    expect(e.mm(b.id)).toBe(b);
    expect(b.translate(G1).leaf.entry.kind).toBe('marker');
    expect(e.allMms()).toEqual([b]);
  });

  it('two engines in one process do not see each other', () => {
    const [e1, e2] = [engine(), engine()];
    const [m1, m2] = [e1.createMm(), e2.createMm()];
    expect(m2.id).toBe(m1.id);
    const f1 = e1.createFolio({ number: 0x500, order: 1, index: G1 / K });
    m1.addVma({ start: G1, end: G1 + M2 });
    m2.addVma({ start: G1, end: G1 + M2 });
    m1.map(G1, { count: 2, entry: { kind: 'present', number: 0x500 } });
    expect(m2.translate(G1).leaf.entry.kind).toBe('none');
    expect(m2.stats().tables.pte).toBe(0);
    expect(e2.page('pfn', 0x500)).toBeUndefined();
    expectPvmwError(() => e2.folio(f1), 'NO_FOLIO');
    expectPvmwError(() => m2.map(G1, { entry: { kind: 'present', number: 0x500 } }), 'NO_FOLIO', '0x500');
    const f2 = e2.createFolio({ number: 0x500, order: 1, index: G1 / K });
    m2.map(G1 + K, { entry: { kind: 'present', number: 0x501 } });
    expect(e1.folio(f1).mapcount).toBe(2);
    expect(e2.folio(f2)).toMatchObject({ order: 1, mapcount: 1 });
    expect(e1.memoryUsage().tables).toBe(4);
    e1.freeMm(m1.id);
    expect(e1.folio(f1).mapcount).toBe(0);
    expect(m2.translate(G1 + K).leaf.entry).toMatchObject({ kind: 'present', number: 0x501 });
    expect(e2.memoryUsage().tables).toBe(4);
  });
});
