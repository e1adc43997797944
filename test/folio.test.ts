import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine, PvmwError, PMD_SIZE, PUD_SIZE, linearPageIndex, type EngineOptions, type PvmwErrorCode } from '../src/index.js';
import { expectPvmwError } from './helpers.js';

const P = 4096;
const RAM = 1 << 20; // 4 GiB: room for a 1 GiB hugetlb folio

function engine(opts: EngineOptions = {}): Engine {
  return new Engine({ ramPages: RAM, deviceChunkPages: 4096, ...opts });
}


/** Precise mapcount (folio_precise_page_mapcount, spec §8.3) of RAM pfn n. */
const mc = (e: Engine, n: number) => e.page('pfn', n)!.mapcount;

describe('Folios (issue item 6; spec §6.5, kernel-operations §0.3)', () => {
  it('orders 0..9 at aligned pfns: FolioInfo fields and lookups from every page', () => {
    const e = engine();
    for (let order = 0; order <= 9; order++) {
      const pfn = (order + 1) * 1024;
      const id = e.createFolio({ number: pfn, order });
      const f = e.folio(id);
      expect(f).toEqual({
        id, namespace: 'pfn', number: pfn, order, nrPages: 2 ** order, devicePrivate: false, hugetlb: null,
        anon: true, file: null, anonVma: 0, index: 0, mapcount: 0, entireMapcount: 0,
        flags: { ksm: false, dirty: false, swapbacked: true, locked: false, lru: false, mlocked: false }, // anon: swapbacked from birth
      });
      for (const k of new Set([0, 1, 2 ** order >> 1, 2 ** order - 1])) {
        if (k >= 2 ** order) continue;
        expect(e.page('pfn', pfn + k)).toEqual({ folio: id, page: k, mapcount: 0, anonExclusive: false, hwpoison: false, tag: 0 });
      }
      expect(e.page('pfn', pfn + 2 ** order)).toBeUndefined(); // just past the folio
      expect(e.page('pfn', pfn - 1)).toBeUndefined();
    }
  });

  it('default order is 0; order 9 (HPAGE_PMD_ORDER) is the largest normal folio', () => {
    const e = engine();
    expect(e.folio(e.createFolio({ number: 7 })).order).toBe(0);
    expect(e.folio(e.createFolio({ number: 512 * 3, order: 9 })).nrPages).toBe(512);
  });

  it('hugetlb 2M is order 9 and hugetlb 1G is order 18; lookups inside the 1G folio', () => {
    const e = engine();
    const h2 = e.createFolio({ number: 512, hugetlb: '2M' });
    const h1 = e.createFolio({ number: 2 ** 18, hugetlb: '1G', order: 18 });
    expect(e.folio(h2)).toMatchObject({ order: 9, nrPages: 512, hugetlb: '2M', anon: true, devicePrivate: false });
    expect(e.folio(h1)).toMatchObject({ order: 18, nrPages: 2 ** 18, hugetlb: '1G' });
    expect(e.page('pfn', 2 ** 18 + 123_456)).toMatchObject({ folio: h1, page: 123_456 });
    expect(e.page('pfn', 2 ** 19 - 1)).toMatchObject({ folio: h1, page: 2 ** 18 - 1 });
    expect(e.page('pfn', 1023)).toMatchObject({ folio: h2, page: 511 });
  });

  it('anon folios carry (anonVma, index), file folios (file id, index); flags round-trip', () => {
    const e = engine();
    const a = e.createFolio({ number: 16, order: 4, anonVma: 77, index: 0x1234, flags: { swapbacked: true, lru: true } });
    const f = e.createFolio({ number: 32, order: 4, file: 9, index: 96, flags: { dirty: true, locked: true, mlocked: true } });
    const k = e.createFolio({ number: 48, anonVma: 3, flags: { ksm: true } });
    expect(e.folio(a)).toMatchObject({ anon: true, anonVma: 77, file: null, index: 0x1234 });
    expect(e.folio(a).flags).toEqual({ ksm: false, dirty: false, swapbacked: true, locked: false, lru: true, mlocked: false });
    expect(e.folio(f)).toMatchObject({ anon: false, anonVma: null, file: 9, index: 96 });
    expect(e.folio(f).flags).toEqual({ ksm: false, dirty: true, swapbacked: false, locked: true, lru: false, mlocked: true });
    expect(e.folio(k).flags.ksm).toBe(true);
    expect(e.folio(e.createFolio({ number: 64, file: 2 ** 32 - 1 })).file).toBe(2 ** 32 - 1);
    // Anon folios are swap-backed unless made lazyfree on purpose; file folios never are.
    expect(e.folio(k).flags.swapbacked).toBe(true);
    expect(e.folio(e.createFolio({ number: 80, flags: { swapbacked: false } })).flags.swapbacked).toBe(false);
  });

  it('index values above 2^32, up to 2^44 − 1, round-trip (anon and file, every order)', () => {
    const e = engine();
    let slot = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 44 - 1 }), fc.boolean(), fc.integer({ min: 0, max: 9 }), (index, file, order) => {
        const number = 512 * slot++;
        const id = e.createFolio({ number, order, index, ...(file ? { file: 5 } : { anonVma: 6 }) });
        expect(e.folio(id)).toMatchObject({ index, order, anon: !file });
        e.freeFolio(id);
      }),
      { numRuns: 300 },
    );
    for (const index of [2 ** 32, 2 ** 32 + 1, 2 ** 44 - 1, 2 ** 43 + 2 ** 31 + 5]) {
      expect(e.folio(e.createFolio({ number: 2 ** 19 + 512 * slot++, order: 9, index, flags: { dirty: true } })))
        .toMatchObject({ index, flags: { dirty: true, ksm: false } }); // high index bits do not leak into flags
    }
  });

  it('freeFolio then re-create at the same place: same id, fresh state, any order', () => {
    const e = engine();
    const id = e.createFolio({ number: 1024, order: 9, file: 3, index: 40 });
    e.freeFolio(id);
    expect(e.page('pfn', 1024)).toBeUndefined();
    expect(e.page('pfn', 1535)).toBeUndefined();
    expectPvmwError(() => e.folio(id), 'NO_FOLIO', '0x400');
    expect(e.createFolio({ number: 1024, order: 9 })).toBe(id);
    expect(e.folio(id)).toMatchObject({ anon: true, anonVma: 0, index: 0, order: 9, mapcount: 0 });
    e.freeFolio(id);
    // The space may now hold smaller folios, including one at a former tail.
    const small = e.createFolio({ number: 1024 + 256, order: 8 });
    expect(e.page('pfn', 1024 + 300)).toMatchObject({ folio: small, page: 44 });
    expect(e.createFolio({ number: 1024 })).toBe(id);
  });

  it('folio ids are stable integers: the global memmap index of the head (RAM: the pfn)', () => {
    const e = engine();
    const ids = [0, 8, 512, 4096].map((n, i) => e.createFolio({ number: n, order: [0, 3, 9, 4][i] }));
    expect(ids).toEqual([0, 8, 512, 4096]);
    for (const id of ids) expect(Number.isSafeInteger(id)).toBe(true);
    const extra = e.createFolio({ number: 2048, order: 9 });
    e.freeFolio(extra);
    const dev = e.addDeviceMemory();
    const d = e.createFolio({ number: dev.base + 512, order: 9 });
    expect(d).toBe(dev.start + 512);
    expect(e.folio(d)).toMatchObject({ id: d, number: dev.base + 512, devicePrivate: true });
    expect(ids.map((id) => e.folio(id).id)).toEqual(ids);
    expect(e.page('pfn', 515)!.folio).toBe(512);
  });

  it('folioCensus counts by order and kind; memoryUsage().folios is the total', () => {
    const e = engine();
    const dev = e.addDeviceMemory();
    const made = [
      e.createFolio({ number: 0 }),
      e.createFolio({ number: 1, file: 1 }),
      e.createFolio({ number: 2, flags: { ksm: true } }),
      e.createFolio({ number: 16, order: 4, file: 2 }),
      e.createFolio({ number: 512, order: 9 }),
      e.createFolio({ number: 1024, hugetlb: '2M' }),
      e.createFolio({ number: 2 ** 18, hugetlb: '1G' }),
      e.createFolio({ number: dev.base, order: 9 }),
      e.createFolio({ number: dev.base + 512 }),
    ];
    const byOrder = new Array(19).fill(0);
    for (const o of [0, 0, 0, 4, 9, 9, 18, 9, 0]) byOrder[o]++;
    expect(e.folioCensus()).toEqual({ byOrder, anon: 7, file: 2, hugetlb: 2, devicePrivate: 2, ksm: 1 });
    expect(e.memoryUsage().folios).toBe(9);
    e.freeFolio(made[6]);
    e.freeFolio(made[3]);
    byOrder[18]--;
    byOrder[4]--;
    expect(e.folioCensus()).toEqual({ byOrder, anon: 6, file: 1, hugetlb: 1, devicePrivate: 2, ksm: 1 });
    expect(e.memoryUsage().folios).toBe(7);
  });
});

describe('Mapcounts (D5 CONFIG_PAGE_MAPCOUNT, spec §6.5, kernel-operations §0.2)', () => {
  it('PTE-mapping 3 pages of an order-4 folio: those pages 1, the folio 3, entire 0', () => {
    const e = engine();
    const mm = e.createMm();
    const vma = mm.addVma({ start: 0x10000, end: 0x20000 });
    // Page 5 sits at 0x10000, so the folio's first page has the linear index of 0x10000 − 5 pages (§0.3).
    const id = e.createFolio({ number: 32, order: 4, index: linearPageIndex(vma, 0x10000) - 5 });
    mm.map(0x10000, { count: 3, entry: { kind: 'present', number: 32 + 5 } });
    for (let k = 0; k < 16; k++) expect(mc(e, 32 + k)).toBe(k >= 5 && k < 8 ? 1 : 0);
    expect(e.folio(id)).toMatchObject({ mapcount: 3, entireMapcount: 0 });
    expect(mm.translate(0x11000).page).toMatchObject({ folio: id, page: 6, mapcount: 1 });
  });

  it('an order-0 folio mapped twice (two VMAs) has mapcount 2; PROTNONE entries count (PN)', () => {
    const e = engine();
    // A page-cache page of file 1 mapped by two VMAs of that file (the file mmapped twice): both at pgoff 6.
    const id = e.createFolio({ number: 3, file: 1, index: 6 });
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x11000, file: 1, pgoff: 6 });
    mm.addVma({ start: 0x20000, end: 0x21000, file: 1, pgoff: 6 });
    mm.map(0x10000, { entry: { kind: 'present', number: 3, write: true } });
    mm.map(0x20000, { entry: { kind: 'present', number: 3, protnone: true } });
    expect(e.folio(id)).toMatchObject({ mapcount: 2, entireMapcount: 0 });
    expect(mc(e, 3)).toBe(2);
  });

  it('a PMD mapping of a THP: entireMapcount 1, folio mapcount 1, every page precise mapcount 1', () => {
    const e = engine();
    const id = e.createFolio({ number: 1024, order: 9, index: PMD_SIZE / P }); // anon: index = VA / 4096
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE });
    mm.map(PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 1024 } });
    expect(e.folio(id)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    for (let k = 0; k < 512; k++) expect(mc(e, 1024 + k)).toBe(1);
    expect(mm.translate(PMD_SIZE + 77 * P).page).toMatchObject({ folio: id, page: 77, mapcount: 1 });
  });

  it('PTE + PMD mappings of one THP in two mms add up (page = PTE maps + entire)', () => {
    const e = engine();
    const id = e.createFolio({ number: 1024, order: 9, index: PMD_SIZE / P });
    const a = e.createMm();
    const b = e.createMm(); // as after fork: the same VMA at the same place
    a.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE });
    // An anon VMA moved by mremap keeps its pgoff: page 11 of the folio is at its start (§0.3).
    a.addVma({ start: 2 * PMD_SIZE, end: 3 * PMD_SIZE, pgoff: PMD_SIZE / P + 11 });
    b.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE });
    a.map(PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 1024 } });
    b.map(PMD_SIZE + 10 * P, { count: 3, entry: { kind: 'present', number: 1024 + 10 } });
    a.map(2 * PMD_SIZE, { entry: { kind: 'present', number: 1024 + 11 } });
    expect(e.folio(id)).toMatchObject({ mapcount: 5, entireMapcount: 1 });
    expect([9, 10, 11, 12, 13].map((k) => mc(e, 1024 + k))).toEqual([1, 2, 3, 2, 1]);
    b.clear(PMD_SIZE, 2 * PMD_SIZE);
    expect(e.folio(id)).toMatchObject({ mapcount: 2, entireMapcount: 1 });
    expect([10, 11, 12].map((k) => mc(e, 1024 + k))).toEqual([1, 2, 1]);
  });

  it('hugetlb 2M at PMD and 1G at PUD in hugetlb VMAs count on the entire mapcount', () => {
    const e = engine();
    // h2 is page 0 of hugetlbfs file 7, mapped by two VMAs of that file; h1 is anonymous at PUD_SIZE.
    const h2 = e.createFolio({ number: 512, hugetlb: '2M', file: 7, index: 0 });
    const h1 = e.createFolio({ number: 2 ** 18, hugetlb: '1G', index: PUD_SIZE / P });
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE, flags: { hugetlb: '2M' }, file: 7, pgoff: 0 });
    mm.addVma({ start: 2 * PMD_SIZE, end: 3 * PMD_SIZE, flags: { hugetlb: '2M' }, file: 7, pgoff: 0 });
    mm.addVma({ start: PUD_SIZE, end: 2 * PUD_SIZE, flags: { hugetlb: '1G' } });
    mm.map(PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 512 } });
    mm.map(2 * PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 512 } });
    mm.map(PUD_SIZE, { level: 'pud', entry: { kind: 'present', number: 2 ** 18 } });
    expect(e.folio(h2)).toMatchObject({ mapcount: 2, entireMapcount: 2 });
    expect(e.folio(h1)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    expect(mc(e, 512 + 300)).toBe(2);
    expect(mc(e, 2 ** 18 + 200_000)).toBe(1);
    expect(mm.translate(PUD_SIZE + 200_000 * P).page).toMatchObject({ folio: h1, page: 200_000, mapcount: 1 });
    expect(mm.stats().leaves).toEqual({ pte: 0, pmd: 2, pud: 1 });
  });

  it('device-private entries count; device-exclusive counts under newest, not under v6.14 (§2, §1.7)', () => {
    for (const semantics of ['newest', 'series', 'v6.14'] as const) {
      const e = engine({ semantics });
      const dev = e.addDeviceMemory();
      const d = e.createFolio({ number: dev.base, index: 0x10 }); // anon, at 0x10000
      const r = e.createFolio({ number: 8, index: 0x12 }); // anon, at 0x12000
      const mm = e.createMm();
      const child = e.createMm(); // a fork child: the same VMA, the same device page read-only
      mm.addVma({ start: 0x10000, end: 0x20000 });
      child.addVma({ start: 0x10000, end: 0x20000 });
      mm.map(0x10000, { entry: { kind: 'device-private-write', number: dev.base } });
      child.map(0x10000, { entry: { kind: 'device-private-read', number: dev.base } });
      mm.map(0x12000, { entry: { kind: 'device-exclusive', number: 8 } });
      expect(e.folio(d).mapcount).toBe(2);
      expect(e.folio(r).mapcount).toBe(semantics === 'v6.14' ? 0 : 1);
      mm.clear(0x10000, 0x20000);
      child.clear(0x10000, 0x20000);
      expect([e.folio(d).mapcount, e.folio(r).mapcount]).toEqual([0, 0]);
    }
  });

  it('migration, swap, hwpoison entries and markers do not count (§0.2)', () => {
    const e = engine();
    const id = e.createFolio({ number: 32, order: 4, index: 0x10 }); // page k belongs at 0x10000 + k pages
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.map(0x10000, { entry: { kind: 'migration-write', number: 32 } });
    mm.map(0x11000, { entry: { kind: 'migration-read', number: 33 } });
    mm.map(0x12000, { entry: { kind: 'migration-read-exclusive', number: 34 } });
    mm.map(0x13000, { entry: { kind: 'hwpoison', number: 35 } });
    mm.map(0x14000, { entry: { kind: 'swap', swapType: 1, offset: 32 } });
    mm.map(0x15000, { count: 2, entry: { kind: 'marker', guard: true } });
    mm.map(0x17000, { entry: { kind: 'marker', uffdWp: true, poisoned: true } });
    expect(mm.stats().leaves.pte).toBe(8);
    expect(e.folio(id)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    for (let k = 0; k < 16; k++) expect(mc(e, 32 + k)).toBe(0);
    // The entry names the folio page (translate reports it) but is not a mapping of it.
    expect(mm.translate(0x10000).maps).toBe(false);
    expect(mm.translate(0x10000).page).toMatchObject({ folio: id, page: 0, mapcount: 0 });
    e.freeFolio(id); // nothing maps it
  });

  it('a present entry with special: true (zero page) needs no folio and counts nothing', () => {
    const e = engine();
    const id = e.createFolio({ number: 40 });
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.map(0x10000, { count: 4, entry: { kind: 'present', number: 100, special: true } }); // no folio at 100…103
    mm.map(0x14000, { entry: { kind: 'present', number: 40, special: true } });
    expect(mm.stats().leaves.pte).toBe(5);
    expect(mm.translate(0x10000).leaf.entry).toMatchObject({ kind: 'present', number: 100 });
    expect(mm.translate(0x10000).page).toBeUndefined();
    expect(e.folio(id).mapcount).toBe(0);
    expect(e.page('pfn', 100)).toBeUndefined();
  });

  it('clearing undoes exactly what mapping did (property, PTE and PMD maps in two mms)', () => {
    const op = fc.record({ mm: fc.integer({ min: 0, max: 1 }), pmd: fc.boolean(), page: fc.integer({ min: 0, max: 511 }) });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 12 }), (ops, keep) => {
        const e = engine();
        // A file THP (page cache of file 1 from index 0); every 2 MiB block is a VMA mapping the file from pgoff 0.
        const id = e.createFolio({ number: 512, order: 9, file: 1, index: 0 });
        const mms = [e.createMm(), e.createMm()];
        for (const m of mms) {
          for (let b = 1; b < 20; b++) m.addVma({ start: b * PMD_SIZE, end: (b + 1) * PMD_SIZE, file: 1, pgoff: 0 });
        }
        const pte = new Array(512).fill(0);
        let entire = 0;
        const undo: Array<() => void> = [];
        ops.forEach((o, i) => {
          const base = (i + 1) * PMD_SIZE; // each op gets its own 2 MiB block: no conflicts
          const m = mms[o.mm];
          if (o.pmd) m.map(base, { level: 'pmd', entry: { kind: 'present', number: 512 } });
          else m.map(base + o.page * P, { entry: { kind: 'present', number: 512 + o.page } });
          undo.push(() => {
            m.clear(base, base + PMD_SIZE);
            if (o.pmd) entire--;
            else pte[o.page]--;
          });
          if (o.pmd) entire++;
          else pte[o.page]++;
        });
        const check = () => {
          expect(e.folio(id)).toMatchObject({ entireMapcount: entire, mapcount: entire + pte.reduce((a, b) => a + b, 0) });
          for (let k = 0; k < 512; k += 7) expect(mc(e, 512 + k)).toBe(pte[k] + entire);
          for (const o of ops) expect(mc(e, 512 + o.page)).toBe(pte[o.page] + entire);
        };
        check();
        undo.splice(0, undo.length - Math.min(keep, undo.length)).forEach((f) => f());
        check();
        undo.forEach((f) => f());
        check();
        expect(e.folio(id)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
        e.freeFolio(id);
      }),
      { numRuns: 60 },
    );
  });

  it('freeing a mapped folio is refused (FOLIO_BUSY) until it is unmapped; freeMm unmaps', () => {
    const e = engine();
    const id = e.createFolio({ number: 1024, order: 9, index: PMD_SIZE / P });
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE });
    mm.map(PMD_SIZE + P, { entry: { kind: 'present', number: 1025 } });
    expectPvmwError(() => e.freeFolio(id), 'FOLIO_BUSY', '0x400');
    expect(e.folio(id).mapcount).toBe(1);
    mm.clear(PMD_SIZE, 2 * PMD_SIZE);
    mm.map(PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 1024 } });
    expectPvmwError(() => e.freeFolio(id), 'FOLIO_BUSY');
    e.freeMm(mm.id);
    expect(e.folio(id)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    e.freeFolio(id);
    expect(e.memoryUsage().folios).toBe(0);
  });
});

describe('Content tags (D8)', () => {
  it('default 0; setTag on some pages; per page on large folios', () => {
    const e = engine();
    const small = e.createFolio({ number: 5 });
    const big = e.createFolio({ number: 1024, order: 9 });
    expect(e.page('pfn', 5)!.tag).toBe(0);
    e.folios.setTag(small, 0, 1, 42);
    e.folios.setTag(big, 10, 5, 7);
    e.folios.setTag(big, 12, 1, 2 ** 32 - 1);
    e.folios.setTag(big, 500, 12, 9);
    const tags = (n: number, len: number) => Array.from({ length: len }, (_, k) => e.page('pfn', n + k)!.tag);
    expect(e.page('pfn', 5)!.tag).toBe(42);
    expect(tags(1024 + 9, 7)).toEqual([0, 7, 7, 2 ** 32 - 1, 7, 7, 0]);
    expect(tags(1024 + 499, 13)).toEqual([0, ...new Array(12).fill(9)]);
    e.folios.setTag(big, 11, 1, 0); // back to ZERO
    expect(tags(1024 + 10, 3)).toEqual([7, 0, 2 ** 32 - 1]);
  });

  it('tags survive mapping and unmapping, and read 0 after the folio is freed and re-created', () => {
    const e = engine();
    const id = e.createFolio({ number: 2048, order: 9, index: PMD_SIZE / P });
    const other = e.createFolio({ number: 2048 + 512 });
    e.folios.setTag(id, 0, 512, 3);
    e.folios.setTag(other, 0, 1, 4);
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE });
    mm.map(PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 2048 } });
    expect(mm.translate(PMD_SIZE + 5 * P).page!.tag).toBe(3);
    mm.clear(PMD_SIZE, 2 * PMD_SIZE);
    expect(e.page('pfn', 2048 + 511)!.tag).toBe(3);
    e.freeFolio(id);
    for (let k = 0; k < 8; k++) e.createFolio({ number: 2048 + 64 * k, order: 6 });
    for (let k = 0; k < 512; k += 31) expect(e.page('pfn', 2048 + k)!.tag).toBe(0);
    expect(e.page('pfn', 2048 + 512)!.tag).toBe(4); // the neighbour keeps its tag
  });

  it('setTag outside the folio is BAD_RANGE and changes nothing', () => {
    const e = engine();
    const id = e.createFolio({ number: 16, order: 4 });
    e.folios.setTag(id, 15, 1, 8);
    expectPvmwError(() => e.folios.setTag(id, 15, 2, 9), 'BAD_RANGE', '16 pages');
    expectPvmwError(() => e.folios.setTag(id, -1, 1, 9), 'BAD_RANGE');
    expectPvmwError(() => e.folios.setTag(id, 0, 0, 9), 'BAD_RANGE');
    expectPvmwError(() => e.folios.setTag(id, 0, 1, -5), 'BAD_SETTING', '-5');
    expectPvmwError(() => e.folios.setTag(17, 0, 1, 9), 'NO_FOLIO', '0x11');
    expect(e.page('pfn', 31)!.tag).toBe(8);
    expect(e.page('pfn', 16)!.tag).toBe(0);
  });
});
