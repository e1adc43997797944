// The wasm32 memory ceiling (issue: "an operation that would pass the wasm32 ceiling fails before it changes
// anything, with a clear error, and the engine stays usable"; DESIGN.md §3 "Errors", §5).
import { describe, expect, it } from 'vitest';
import { Engine, Mm, PvmwError, linearPageIndex, type EntrySpec, type PvmwErrorCode } from '../src/index.js';
import { expectPvmwError } from './helpers.js';

const K = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const LIMIT = 8 << 20; // room for the fixed tables, a memmap section and ~1200 page tables
const VBASE = 2 ** 40;
const FILL = 2 ** 44; // a second mm fills memory here, in 4 pre-made PMD tables
const SECTION = 2 ** 15 * 4; // a memmap section: 2^15 pages, one 4-byte word each
const marker: EntrySpec = { kind: 'marker', guard: true };


interface World {
  e: Engine;
  mm: Mm;
  small: number;
  thp: number;
  addrs: number[];
}

/** The linear page index of `addr` in the VMA of `mm` holding it: the index an anon folio mapped there has (§0.3). */
function lpi(mm: Mm, addr: number): number {
  return linearPageIndex(mm.vmas.find(addr)!, addr);
}

/** An engine at LIMIT with one mm holding a PTE, a run of swap entries and a PMD leaf. */
function world(): World {
  const e = new Engine({ ramPages: 1 << 20, maxMemoryBytes: LIMIT });
  const mm = e.createMm();
  mm.addVma({ start: VBASE, end: VBASE + 2 ** 36 });
  const small = e.createFolio({ number: 0x100, index: lpi(mm, VBASE) });
  const thp = e.createFolio({ number: 0x200, order: 9, index: lpi(mm, VBASE + 2 * M2) });
  mm.map(VBASE, { entry: { kind: 'present', number: 0x100, write: true } });
  mm.map(VBASE + K, { count: 600, entry: { kind: 'swap', swapType: 0, offset: 10 } });
  mm.map(VBASE + 2 * M2, { level: 'pmd', entry: { kind: 'present', number: 0x200 } });
  const addrs = [VBASE, VBASE + K, VBASE + 600 * K, VBASE + 601 * K, VBASE + 2 * M2 + 3 * K, VBASE + G1, VBASE + 2 ** 35];
  return { e, mm, small, thp, addrs };
}

/** Everything observable about the world, for "nothing changed" checks. */
function snapshot({ e, mm, small, thp, addrs }: World): string {
  return JSON.stringify({
    usage: e.memoryUsage(),
    stats: mm.stats(),
    mms: e.allMms().map((m) => m.id),
    tr: addrs.map((a) => mm.translate(a).steps.map((s) => [s.level, s.raw])),
    folios: [e.folio(small), e.folio(thp)],
    pages: [e.page('pfn', 0x100), e.page('pfn', 0x205), e.page('pfn', 0x10000)],
  });
}

/**
 * Fill memory with page tables in a second mm until one more table does not fit. Every map call after the
 * set-up needs exactly one new frame (its PMD table exists), so afterwards less than one frame is left.
 */
function fill(e: Engine): { filler: Mm; chunks: number } {
  const filler = e.createMm();
  filler.addVma({ start: FILL, end: FILL + 4 * G1 });
  for (let r = 0; r < 4; r++) filler.map(FILL + r * G1, { entry: marker });
  let chunks = 0;
  for (let i = 1; i < 2048; i++) {
    if (i % 512 === 0) continue;
    try {
      filler.map(FILL + i * M2, { count: 512, entry: marker });
      chunks++;
    } catch (err) {
      expect(err).toBeInstanceOf(PvmwError);
      expect((err as PvmwError).code).toBe('MEMORY_LIMIT');
      return { filler, chunks };
    }
  }
  throw new Error(`memory never filled up below ${LIMIT} bytes`);
}

/** Fill memory with page tables in a second mm (one new table frame per step) until less than `room` bytes are
 *  left between the top of the frames and the ceiling. */
function fillUntil(e: Engine, room: number): Mm {
  const filler = e.createMm();
  filler.addVma({ start: FILL, end: FILL + 4 * G1 });
  for (let i = 0; i < 2048; i++) {
    const u = e.memoryUsage();
    if (LIMIT - (u.wasmBytes - u.headroomBytes) < room) return filler;
    filler.map(FILL + i * M2, { count: 512, entry: marker });
  }
  throw new Error(`memory never filled up to ${room} bytes below ${LIMIT}`);
}

describe('maxMemoryBytes setting', () => {
  it.each([2 ** 32 + 65536, 2 ** 33, 0, -1, 2 ** 20 + 0.5, Number.NaN])('maxMemoryBytes %d is BAD_SETTING', (v) => {
    expectPvmwError(() => new Engine({ maxMemoryBytes: v }), 'BAD_SETTING', 'maxMemoryBytes');
  });

  it.each([1, 65536, 1 << 20, 4 << 20])('maxMemoryBytes %d is too small to start: MEMORY_LIMIT', (v) => {
    expectPvmwError(() => new Engine({ maxMemoryBytes: v }), 'MEMORY_LIMIT', String(v));
  });

  it('the smallest accepted ceiling (5 MiB) and the wasm32 maximum (4 GiB) both start an engine that works', () => {
    for (const max of [5 << 20, 2 ** 32]) {
      const e = new Engine({ ramPages: 1 << 20, maxMemoryBytes: max });
      const mm = e.createMm();
      mm.addVma({ start: G1, end: G1 + M2 });
      mm.map(G1, { count: 512, entry: marker });
      expect(mm.stats().leaves.pte).toBe(512);
      expect(e.memoryUsage().wasmBytes).toBeLessThanOrEqual(max);
    }
  });
});

describe(`operations past the ceiling (maxMemoryBytes ${LIMIT}) fail first and change nothing`, () => {
  it('a map() needing more tables than fit throws MEMORY_LIMIT naming the address; the mm is unchanged and still works', () => {
    const w = world();
    const { e, mm, small, thp } = w;
    const before = snapshot(w);
    const at = VBASE + G1;
    // 2^21 PTEs need 4096 PTE tables (16 MiB) plus PMD tables: more than the ceiling allows.
    expectPvmwError(() => mm.map(at, { count: 2 ** 21, entry: marker }), 'MEMORY_LIMIT', '0x' + at.toString(16), 'ceiling');
    expect(snapshot(w)).toBe(before);
    const thps = Array.from({ length: 8 }, (_, i) => e.createFolio({ number: 0x400 + 512 * i, order: 9, index: lpi(mm, at + i * M2) }));
    // A small map still works, at the very address that failed.
    mm.map(at, { count: 1024, entry: { kind: 'present', number: 0x400 } });
    expect(mm.translate(at + 700 * K).leaf.entry).toMatchObject({ kind: 'present', number: 0x400 + 700 });
    expect(e.folio(thps[1]).mapcount).toBe(512);
    expect(e.folio(small).mapcount).toBe(1);
    expect(e.folio(thp).entireMapcount).toBe(1);
    expect(mm.clear(at, at + 1024 * K)).toBe(1024);
  });

  it('with memory full: map, createFolio (new memmap section) and setTag fail with MEMORY_LIMIT and change nothing', () => {
    const w = world();
    const { e, mm, small } = w;
    // A THP rmap would find at VBASE + 2 GiB (kernel-operations §0.3), for the present entries below.
    const spare = e.createFolio({ number: 0x400, order: 9, index: lpi(mm, VBASE + 2 * G1) });
    const { filler, chunks } = fill(e);
    expect(chunks).toBeGreaterThan(500);
    const u = e.memoryUsage();
    expect(u.wasmBytes).toBe(LIMIT);
    expect(u.wasmBytes - (u.fixedBytes + u.tableBytes + u.memmapBytes + u.tagBytes + u.freeBytes)).toBeLessThan(K);
    const before = snapshot(w);
    const fillerStats = JSON.stringify(filler.stats());

    expectPvmwError(() => mm.map(VBASE + G1, { entry: marker }), 'MEMORY_LIMIT', '0x' + (VBASE + G1).toString(16));
    // pfn 0x10000 lies in memmap section 2, which does not exist yet (sections are 2^15 pages).
    expectPvmwError(() => e.createFolio({ number: 0x10000, order: 4 }), 'MEMORY_LIMIT', '0x10000');
    expectPvmwError(() => e.folios.setTag(small, 0, 1, 7), 'MEMORY_LIMIT', '0x' + small.toString(16));
    // Present entries: the ceiling check comes before any mapcount is touched.
    expectPvmwError(() => mm.map(VBASE + 2 * G1, { count: 512, entry: { kind: 'present', number: 0x400 } }), 'MEMORY_LIMIT');
    expect(snapshot(w)).toBe(before);
    expect(e.folio(spare)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.page('pfn', 0x400 + 77)?.mapcount).toBe(0);
    expect(JSON.stringify(filler.stats())).toBe(fillerStats);

    // What needs no new memory still works: a PTE in an existing table, a folio in an existing section,
    // a zero tag, translate and clear.
    const f = e.createFolio({ number: 0x1000, order: 2, index: lpi(mm, VBASE + 700 * K) });
    expect(e.folio(f)).toMatchObject({ order: 2, mapcount: 0 });
    mm.map(VBASE + 700 * K, { count: 4, entry: { kind: 'present', number: 0x1000 } });
    expect(e.folio(f).mapcount).toBe(4);
    expect(e.folio(small).mapcount).toBe(1);
    e.folios.setTag(small, 0, 1, 0);
    expect(e.page('pfn', 0x100)?.tag).toBe(0);

    // Clearing two filler chunks frees two table frames: the first tag of these pages (a tag directory frame and
    // a chunk frame) fits now, from the free list; a whole memmap section (32 contiguous frames) still does not.
    const wasm = e.memoryUsage().wasmBytes;
    expect(filler.clear(FILL + M2, FILL + 3 * M2)).toBe(1024);
    expect(e.memoryUsage().freeBytes).toBe(2 * K);
    e.folios.setTag(small, 0, 1, 7);
    expect(e.page('pfn', 0x100)?.tag).toBe(7);
    expect(e.memoryUsage()).toMatchObject({ wasmBytes: wasm, freeBytes: 0, tagBytes: 2 * K });
    expectPvmwError(() => e.createFolio({ number: 0x10000 }), 'MEMORY_LIMIT');
    expect(e.page('pfn', 0x10000)).toBeUndefined();

    // Freeing the filler mm gives its frames back for page tables and a new mm.
    e.freeMm(filler.id);
    const other = e.createMm();
    other.addVma({ start: G1, end: 2 * G1 });
    other.map(G1, { count: 2 ** 18, entry: marker }); // 512 PTE tables
    expect(other.stats().leaves.pte).toBe(2 ** 18);
    expect(e.memoryUsage().wasmBytes).toBe(wasm);
  });

  it('at the ceiling, a map needing exactly the free frames succeeds and one needing one more fails (tables are counted exactly)', () => {
    const w = world();
    const { e, mm } = w;
    const { filler } = fill(e);
    expect(filler.clear(FILL + M2, FILL + 4 * M2)).toBe(3 * 512); // 3 frames on the free list, none beyond
    const at = VBASE + G1 + M2 - 2 * K; // a fresh 1 GiB region: 1 PMD table + PTE tables
    const before = snapshot(w);
    expectPvmwError(() => mm.map(at, { count: 2 + 512 + 1, entry: marker }), 'MEMORY_LIMIT', '0x' + at.toString(16)); // 1 + 3
    expectPvmwError(() => mm.map(VBASE + 2 ** 35 - K, { count: 2, entry: marker }), 'MEMORY_LIMIT'); // 2 PMD + 2 PTE tables
    expect(snapshot(w)).toBe(before);
    mm.map(at, { count: 2 + 512, entry: marker }); // 1 + 2
    expect(e.memoryUsage()).toMatchObject({ wasmBytes: LIMIT, freeBytes: 0 });
    expect(mm.translate(at + 513 * K).leaf.entry.kind).toBe('marker');
    expectPvmwError(() => mm.map(at + 514 * K, { entry: marker }), 'MEMORY_LIMIT');
    mm.map(at - K, { entry: marker }); // an existing table: no frame needed
    expect(mm.stats().leaves.pte).toBe(601 + 515);
  });

  it('a 1G hugetlb folio needing 8 new memmap sections fails whole: no section, no folio', () => {
    const w = world();
    const { e } = w;
    // The first 1G folio fits (8 sections, 1 MiB of memmap). Then page tables take memory until less than
    // 8 sections are left (but more than 7): the second 1G folio does not fit, and creates none of its sections.
    const first = e.createFolio({ number: 2 ** 18, hugetlb: '1G', index: 4 * G1 / K }); // anon, mapped at 4 GiB below
    fillUntil(e, 8 * SECTION);
    const before = snapshot(w);
    expectPvmwError(() => e.createFolio({ number: 2 ** 19, hugetlb: '1G' }), 'MEMORY_LIMIT', '0x80000');
    expect(snapshot(w)).toBe(before);
    expect(e.page('pfn', 2 ** 19)).toBeUndefined();
    expect(e.folioCensus().hugetlb).toBe(1);
    // Sections one at a time still fit: the failed folio left the room it could not use.
    const sections = e.memoryUsage().memmapBytes;
    for (let s = 0; s < 7; s++) e.createFolio({ number: 2 ** 19 + s * 2 ** 15 });
    expect(e.memoryUsage().memmapBytes - sections).toBeGreaterThanOrEqual(7 * SECTION);
    // The engine still creates small folios and maps them, and maps the first 1G folio.
    const f = e.createFolio({ number: 0x600, index: lpi(w.mm, VBASE + 3 * M2) });
    w.mm.map(VBASE + 3 * M2, { entry: { kind: 'present', number: 0x600 } });
    expect(e.folio(f).mapcount).toBe(1);
    w.mm.addVma({ start: 4 * G1, end: 5 * G1, flags: { hugetlb: '1G' } });
    w.mm.map(4 * G1, { level: 'pud', entry: { kind: 'present', number: 2 ** 18 } });
    expect(e.folio(first)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
  });

  it('createMm at the ceiling is MEMORY_LIMIT and registers no mm', () => {
    const w = world();
    fill(w.e);
    const mms = w.e.allMms().length;
    expectPvmwError(() => w.e.createMm(), 'MEMORY_LIMIT');
    expect(w.e.allMms()).toHaveLength(mms);
    expect(w.mm.stats().leaves.pte).toBe(601);
  });

  it('a map needing 4 GiB of tables is MEMORY_LIMIT, not a wrapped size check', () => {
    // 2^29 − 2^20 PTEs from a 512 GiB boundary need 1046528 PTE + 2044 PMD + 4 PUD tables = 2^20 frames: n × 4096
    // = 2^32, which a 32-bit size check would wrap to 0 (sizes are u64 in assembly/frames.ts).
    const w = world();
    w.mm.addVma({ start: 2 ** 42, end: 2 ** 42 + 2 ** 41 });
    const before = snapshot(w);
    expectPvmwError(() => w.mm.map(2 ** 42, { count: 2 ** 29 - 2 ** 20, entry: marker }), 'MEMORY_LIMIT');
    expect(snapshot(w)).toBe(before);
  });
});
