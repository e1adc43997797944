// Property test of the page-table engine against a plain Map model (DESIGN.md §3 "Tests"): random map and
// clear sequences, with the map() checks the model must predict — one VMA per map (NO_VMA), folios rmap can
// find at the address (BAD_ENTRY, kernel-operations.md §0.3), pages in folios (NO_FOLIO), PMD leaves on
// order-9 heads (BAD_ENTRY) and entries in the way (ENTRY_CONFLICT).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine, Mm, PvmwError, linearPageIndex, type EntrySpec, type PvmwErrorCode } from '../src/index.js';

const K = 4096;
const M2 = 2 ** 21;
const G1 = 2 ** 30;
const G512 = 2 ** 39;
const marker: EntrySpec = { kind: 'marker', guard: true };

describe('property: map/clear sequences match a Map model (fast-check)', () => {
  // Two adjacent anon VMAs of 4 PMD blocks in all, across a PGD (and PUD) boundary at page 1024; the second
  // starts at page SPLIT. Both have the default pgoff, so page q has linear page index VBASE / 4096 + q.
  const VBASE = G512 - 2 * M2;
  const NP = 2048;
  const SPLIT = 1536;
  // Folios, each with the index of the page where rmap would find it (§0.3):
  const THP = 0x10000; // 4 order-9 folios: THP + q belongs at page q (every page has one)
  const ORD6 = 0x11000; // 8 order-6 folios: ORD6 + k belongs at page ORD6_AT + k (PTEs only: not order 9)
  const ORD6_AT = 1536;
  const SMALL = 0x1000; // 64 order-0 folios: SMALL + i belongs at page SMALL_AT + i, except two:
  const SMALL_AT = 1100;
  const KSM_I = 62; // a KSM folio with index 0: exempt from the index check, it fits anywhere
  const FILE_I = 63; // a file folio: never in an anon VMA
  type Kind = 'present' | 'swap' | 'marker' | 'migration-read';
  type Ent = { kind: Kind; num: number };
  type Op =
    | { t: 'map'; level: 'pte' | 'pmd'; at: number; count: number; e: Ent; sample: number[] }
    | { t: 'clear'; from: number; len: number; sample: number[] };
  const spec = (e: Ent): EntrySpec =>
    e.kind === 'present' ? { kind: 'present', number: e.num, write: true }
      : e.kind === 'swap' ? { kind: 'swap', swapType: 1, offset: e.num }
      : e.kind === 'marker' ? marker : { kind: 'migration-read', number: e.num };

  /** Why rmap (or the memmap) refuses pfn p as the page at VMA page q, or null if it is fine there. */
  function refusal(p: number, q: number): PvmwErrorCode | null {
    if (p >= THP && p < THP + 2048) return p - THP === q ? null : 'BAD_ENTRY';
    if (p >= ORD6 && p < ORD6 + 512) return ORD6_AT + (p - ORD6) === q ? null : 'BAD_ENTRY';
    if (p >= SMALL && p < SMALL + 64) {
      const i = p - SMALL;
      if (i === KSM_I) return null;
      if (i === FILE_I) return 'BAD_ENTRY';
      return SMALL_AT + i === q ? null : 'BAD_ENTRY';
    }
    return 'NO_FOLIO';
  }
  const isThpHead = (p: number) => p >= THP && p < THP + 2048 && (p - THP) % 512 === 0;
  const headOf = (p: number) =>
    p >= THP && p < THP + 2048 ? THP + 512 * Math.floor((p - THP) / 512)
      : p >= ORD6 && p < ORD6 + 512 ? ORD6 + 64 * Math.floor((p - ORD6) / 64)
      : p;

  // Mostly the pfns rmap expects at the address, so that long runs succeed; sometimes a near miss or anything.
  const anyPfn = fc.oneof(fc.integer({ min: SMALL, max: SMALL + 70 }), fc.integer({ min: THP, max: THP + 2056 }), fc.integer({ min: ORD6, max: ORD6 + 520 }));
  const pfnAt = (q: number): fc.Arbitrary<number> => {
    const fitting = [THP + q];
    if (q >= SMALL_AT && q < SMALL_AT + 64) fitting.push(SMALL + (q - SMALL_AT));
    if (q >= ORD6_AT) fitting.push(ORD6 + (q - ORD6_AT));
    return fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...fitting) },
      { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }).map((d) => THP + q + d) },
      { weight: 1, arbitrary: fc.constant(SMALL + KSM_I) },
      { weight: 2, arbitrary: anyPfn },
    );
  };
  const pteEnt = (q: number) => fc.oneof(
    pfnAt(q).map((num): Ent => ({ kind: 'present', num })),
    pfnAt(q).map((num): Ent => ({ kind: 'migration-read', num })),
    fc.integer({ min: 0, max: 2 ** 40 }).map((num): Ent => ({ kind: 'swap', num })),
    fc.constant<Ent>({ kind: 'marker', num: 0 }),
  );
  const pmdNum = (b: number) => fc.oneof(
    { weight: 6, arbitrary: fc.constant(THP + 512 * b) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }).map((j) => THP + 512 * j) },
    fc.constant(THP + 2048), fc.constant(SMALL), fc.constant(ORD6),
  );
  const sample = fc.array(fc.integer({ min: 0, max: NP - 1 }), { maxLength: 6 });
  const count = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 700 }));
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.integer({ min: 0, max: NP - 1 }).chain((at) =>
        fc.record({ t: fc.constant('map' as const), level: fc.constant('pte' as const), at: fc.constant(at), count, e: pteEnt(at), sample })),
    },
    {
      weight: 2,
      arbitrary: fc.integer({ min: 0, max: 3 }).chain((at) =>
        fc.record({
          t: fc.constant('map' as const), level: fc.constant('pmd' as const), at: fc.constant(at), count: fc.integer({ min: 1, max: 3 }),
          e: fc.record({ kind: fc.constantFrom<Kind>('present', 'present', 'migration-read'), num: pmdNum(at) }), sample,
        })),
    },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('clear' as const), from: fc.integer({ min: 0, max: NP + 8 }), len: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 1100 })), sample }) },
  );

  /** The model's answer: the error code, or the new state and the number of entries installed or cleared. */
  function predict(pte: Map<number, Ent>, pmd: Map<number, Ent>, op: Op): PvmwErrorCode | number {
    if (op.t === 'clear') {
      const [a, z] = [op.from, op.from + op.len];
      for (const b of pmd.keys()) {
        const [s, t] = [512 * b, 512 * b + 512];
        if (s < z && a < t && (s < a || t > z)) return 'ENTRY_CONFLICT';
      }
      let n = 0;
      for (const q of [...pte.keys()]) if (q >= a && q < z) pte.delete(q), n++;
      for (const b of [...pmd.keys()]) if (512 * b >= a && 512 * b + 512 <= z) pmd.delete(b), n++;
      return n;
    }
    const { level, at, count, e } = op;
    const span = level === 'pte' ? 1 : 512;
    const first = at * span;
    if (first + count * span > (first < SPLIT ? SPLIT : NP)) return 'NO_VMA'; // not inside one VMA
    if (e.kind === 'present' || e.kind === 'migration-read') {
      for (let k = 0; k < count * span; k++) {
        const why = refusal(e.num + k, first + k);
        if (why) return why;
      }
      if (level === 'pmd') for (let i = 0; i < count; i++) if (!isThpHead(e.num + 512 * i)) return 'BAD_ENTRY';
    }
    const pages = Array.from({ length: count * span }, (_, i) => first + i);
    if (pages.some((q) => pmd.has(Math.floor(q / 512)) || pte.has(q))) return 'ENTRY_CONFLICT';
    for (let i = 0; i < count; i++) {
      const num = e.kind === 'marker' ? 0 : e.num + i * (e.kind === 'swap' ? 1 : span);
      (level === 'pte' ? pte : pmd).set(at + i, { kind: e.kind, num });
    }
    return count;
  }

  function check(e: Engine, mm: Mm, pte: Map<number, Ent>, pmd: Map<number, Ent>, pages: number[], folios: Map<number, number>): void {
    for (const q of pages) {
      const leaf = mm.translate(VBASE + q * K).leaf;
      const want = pmd.get(Math.floor(q / 512)) ?? pte.get(q);
      const where = `page ${q}`;
      if (!want) {
        expect(leaf.entry.kind, where).toBe('none');
        continue;
      }
      expect([leaf.level, leaf.entry.kind], where).toEqual([pmd.has(Math.floor(q / 512)) ? 'pmd' : 'pte', want.kind]);
      if (want.kind === 'swap') expect(leaf.entry.swap?.offset, where).toBe(want.num);
      else if (want.kind === 'marker') expect(leaf.entry.marker?.guard, where).toBe(true);
      else expect(leaf.entry.number, where).toBe(want.num);
    }
    const blocks = new Set([...pte.keys()].map((q) => Math.floor(q / 512)));
    const addrsInUse = [...[...blocks].map((b) => 512 * b), ...[...pmd.keys()].map((b) => 512 * b)].map((q) => VBASE + q * K);
    const st = mm.stats();
    expect(st.leaves).toEqual({ pte: pte.size, pmd: pmd.size, pud: 0 });
    expect(st.tables.pte).toBe(blocks.size);
    expect(st.tables.pmd).toBe(new Set(addrsInUse.map((a) => Math.floor(a / G1))).size);
    expect(st.tables.pud).toBe(new Set(addrsInUse.map((a) => Math.floor(a / G512))).size);
    expect(e.memoryUsage().tables).toBe(Object.values(st.tables).reduce((x, y) => x + y, 0));
    const mc = new Map<number, number>(); // folio head pfn → present mappings
    for (const v of [...pte.values(), ...pmd.values()]) if (v.kind === 'present') mc.set(headOf(v.num), (mc.get(headOf(v.num)) ?? 0) + 1);
    for (const [head, id] of folios) expect(e.folio(id).mapcount, `folio ${head.toString(16)}`).toBe(mc.get(head) ?? 0);
  }

  it('random map (pte/pmd; present, swap, marker, migration) and clear operations agree with the model', () => {
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(fc.constantFrom<4 | 5>(4, 5), fc.array(opArb, { minLength: 1, maxLength: 25 }), (paging, ops) => {
        const e = new Engine({ ramPages: 1 << 20, paging, maxMemoryBytes: 64 << 20 });
        const mm = e.createMm();
        const vmas = [
          mm.addVma({ start: VBASE, end: VBASE + SPLIT * K, flags: { thp: true } }),
          mm.addVma({ start: VBASE + SPLIT * K, end: VBASE + NP * K, flags: { thp: true } }),
        ];
        const lpi = (q: number) => linearPageIndex(vmas[q < SPLIT ? 0 : 1], VBASE + q * K);
        const folios = new Map<number, number>();
        for (let i = 0; i < 64; i++) {
          const f = i === KSM_I ? { flags: { ksm: true }, index: 0 } : i === FILE_I ? { file: 1, index: lpi(SMALL_AT + i) } : { index: lpi(SMALL_AT + i) };
          folios.set(SMALL + i, e.createFolio({ number: SMALL + i, ...f }));
        }
        for (let j = 0; j < 4; j++) folios.set(THP + 512 * j, e.createFolio({ number: THP + 512 * j, order: 9, index: lpi(512 * j) }));
        for (let m = 0; m < 8; m++) folios.set(ORD6 + 64 * m, e.createFolio({ number: ORD6 + 64 * m, order: 6, index: lpi(ORD6_AT + 64 * m) }));
        const pte = new Map<number, Ent>();
        const pmd = new Map<number, Ent>();
        for (const op of ops) {
          const want = predict(pte, pmd, op);
          const usage = JSON.stringify(e.memoryUsage());
          let got: PvmwErrorCode | number;
          try {
            if (op.t === 'clear') {
              got = mm.clear(VBASE + op.from * K, VBASE + (op.from + op.len) * K);
            } else {
              const span = op.level === 'pte' ? K : M2;
              mm.map(VBASE + op.at * span, { level: op.level, count: op.count, entry: spec(op.e) });
              got = op.count;
            }
          } catch (err) {
            if (!(err instanceof PvmwError)) throw err;
            got = err.code;
          }
          expect(got, JSON.stringify(op)).toBe(want);
          const key = `${op.t} ${typeof got === 'string' ? got : 'ok'}`;
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
          if (typeof want === 'string') expect(JSON.stringify(e.memoryUsage()), 'a refused operation changed memory').toBe(usage);
          const edges = op.t === 'clear' ? [op.from - 1, op.from, op.from + op.len - 1, op.from + op.len] : op.level === 'pte' ? [op.at - 1, op.at, op.at + op.count - 1, op.at + op.count] : [op.at * 512, op.at * 512 + 511];
          check(e, mm, pte, pmd, [...edges.filter((q) => q >= 0 && q < NP), ...op.sample], folios);
        }
        check(e, mm, pte, pmd, Array.from({ length: NP }, (_, q) => q), folios);
        e.freeMm(mm.id);
        for (const id of folios.values()) expect(e.folio(id).mapcount).toBe(0);
      }),
      { numRuns: 150 },
    );
    // The generator reaches every outcome the model predicts (so none of them is predicted vacuously).
    for (const k of ['map ok', 'map NO_VMA', 'map BAD_ENTRY', 'map NO_FOLIO', 'map ENTRY_CONFLICT', 'clear ok', 'clear ENTRY_CONFLICT']) {
      expect(outcomes.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  });
});
