// page_vma_mapped_walk, WebAssembly vs TypeScript reference, 5-level paging (issue 3 item 4; spec §1.5, §2;
// D1, D2). Failures name the space's seed; the matches seen per §2 row are printed at the end.
import { describe, it, expect, afterAll } from 'vitest';
import fc from 'fast-check';
import { combos, compareSpace, MATCHABLE_ROWS, type Tally } from './walk-diff.js';

const tally: Tally = { walks: 0, matches: 0, rows: {} };
afterAll(() => console.log(`walk differential, 5-level: ${tally.walks} walks, ${tally.matches} matches; matches by §2 row:`, tally.rows));

describe('page_vma_mapped_walk, 5-level: WebAssembly and the TypeScript reference agree (§1.5, §2, D1, D2)', () => {
  for (const combo of combos(5)) {
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
