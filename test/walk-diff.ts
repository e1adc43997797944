// Shared driver of the walk differential tests (issue 3 item 4): the WebAssembly walk (src/walk/pvmw.ts over
// assembly/walk.ts) against the independent TypeScript reference (src/walk/reference.ts) on random spaces
// from test/gen/space.ts. Every match, address, level, lock and result flag must agree.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { batchMatchAt, walkBatch, type BatchResult } from '../src/walk/pvmw.js';
import { referenceWalk } from '../src/walk/reference.js';
import type { WalkMatch } from '../src/walk/types.js';
import { decodeEntry } from '../src/model/decode.js';
import type { Engine, Vma } from '../src/index.js';
import { buildSpace, type SpaceOptions } from './gen/space.js';


/** Every setting combination of D1 for one paging mode. */
export function combos(paging: 4 | 5): Omit<SpaceOptions, 'seed' | 'scale'>[] {
  const out: Omit<SpaceOptions, 'seed' | 'scale'>[] = [];
  for (const deviceModel of ['pfn', 'offset'] as const)
    for (const semantics of ['newest', 'series', 'v6.14'] as const) out.push({ paging, deviceModel, semantics });
  return out;
}

/** The §2 row a match belongs to. */
export function row(engine: Engine, vma: Vma, m: WalkMatch): string {
  const d = decodeEntry(m.raw, m.level, engine.decodeContext);
  if (vma.flags.hugetlb) return `hugetlb ${m.level} ${d.kind === 'present' ? 'present' : 'non-present'}`;
  const kind = d.kind.startsWith('migration-') ? 'migration' : d.kind.startsWith('device-private') ? 'device-private' : d.kind;
  return `${kind} ${m.level}`;
}

/** The rows of §2 that can match (the others, none/swap/hwpoison/markers, never do). */
export const MATCHABLE_ROWS = [
  'present pte', 'present pmd', 'migration pte', 'migration pmd', 'device-private pte', 'device-private pmd',
  'device-exclusive pte', 'hugetlb pmd present', 'hugetlb pud present', 'hugetlb pmd non-present',
];

/** The matches of each walk of a batch, as WalkMatch objects. */
export function batchMatches(b: BatchResult): WalkMatch[][] {
  const out: WalkMatch[][] = Array.from({ length: b.walks }, () => []);
  for (let i = 0; i < b.matches; i++) out[b.job[i]].push(batchMatchAt(b, i));
  return out;
}

export interface Tally {
  walks: number;
  matches: number;
  rows: Record<string, number>;
}

/** Build one space and compare every one of its cases; add to the tally. */
export function compareSpace(o: SpaceOptions, tally: Tally): void {
  const { engine, cases } = buildSpace(o);
  const batch = walkBatch(engine, cases);
  const wasm = batchMatches(batch);
  for (let j = 0; j < cases.length; j++) {
    const c = cases[j];
    const ref = referenceWalk(engine, c.mm, c.vma, c.key, { address: c.address });
    const tag = `seed ${o.seed} (${o.scale}, ${o.paging}-level, ${o.deviceModel}, ${o.semantics}) case ${j} (${c.row}) key ${JSON.stringify(c.key)}`;
    expect(wasm[j], tag).toEqual(ref.matches);
    // The work both walks report in common: restarts and tables crossed (D4, §1.5 step 9).
    expect([batch.counters[j * 12 + 6], batch.counters[j * 12 + 7]], tag).toEqual([ref.counters.restarts, ref.counters.tablesCrossed]);
    for (const m of ref.matches) {
      const r = row(engine, c.vma, m);
      tally.rows[r] = (tally.rows[r] ?? 0) + 1;
    }
    tally.matches += ref.matches.length;
  }
  tally.walks += cases.length;
}

/**
 * The differential suite for one paging mode: one large and three small random spaces per setting
 * combination. Failures name the space's seed; the matches seen per §2 row are printed at the end.
 */
export function walkDiffSuite(paging: 4 | 5): void {
  const tally: Tally = { walks: 0, matches: 0, rows: {} };
  afterAll(() => console.log(`walk differential, ${paging}-level: ${tally.walks} walks, ${tally.matches} matches; matches by §2 row:`, tally.rows));

  describe(`page_vma_mapped_walk, ${paging}-level: WebAssembly and the TypeScript reference agree (§1.5, §2, D1, D2)`, () => {
    for (const combo of combos(paging)) {
      it(`${combo.deviceModel} model, ${combo.semantics}: every match, address, level, lock and flag`, () => {
        const seed = fc.integer({ min: 1, max: 2 ** 31 - 1 });
        fc.assert(fc.property(seed, (s) => compareSpace({ ...combo, seed: s, scale: 'large' }, tally)), { numRuns: 1 });
        fc.assert(fc.property(seed, (s) => compareSpace({ ...combo, seed: s, scale: 'small' }, tally)), { numRuns: 3 });
      });
    }

    it('ran at least 50,000 walks and saw a match of every matchable §2 row', () => {
      expect(tally.walks).toBeGreaterThanOrEqual(50_000);
      for (const r of MATCHABLE_ROWS) expect(tally.rows[r] ?? 0, r).toBeGreaterThan(0);
    });
  });
}
