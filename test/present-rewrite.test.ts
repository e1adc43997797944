// PresentRewrite (src/model/present-rewrite.ts) memoizes decode → change → encode of present leaves per flag
// pattern; it must give exactly what the codec gives, for every level, pfn and bit pattern (spec §3.2, L1TF).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodePresent, encodePresent, type PresentBits } from '../src/model/entry.js';
import { PresentRewrite } from '../src/model/present-rewrite.js';
import type { LeafLevel } from '../src/model/geometry.js';

const bool = fc.boolean();
const bitsArb = fc.record({
  write: bool, user: bool, pwt: bool, pcd: bool, young: bool, dirty: bool, global: bool, pat: bool, special: bool,
  uffdWp: bool, softDirty: bool, savedDirty: bool, nx: bool, protnone: bool, pkey: fc.integer({ min: 0, max: 15 }),
}).map((b) => (b.protnone ? { ...b, global: false } : b)); // PROTNONE and GLOBAL share bit 8
const PAGES: Record<LeafLevel, number> = { pte: 1, pmd: 512, pud: 512 * 512 };

const RULES: [string, (b: PresentBits) => Partial<PresentBits>][] = [
  ['write-protect, dirty to saved dirty (fork parent)', (b) => ({ ...b, write: false, dirty: false, savedDirty: b.savedDirty || b.dirty })],
  ['old and clean (fork child of a shared VMA)', (b) => ({ ...b, young: false, dirty: false, savedDirty: false, uffdWp: false })],
  ['to PROT_NONE (P flips, the pfn field inverts)', (b) => ({ ...b, protnone: true, global: false })],
  ['from PROT_NONE back to a present entry', (b) => ({ ...b, protnone: false })],
];

describe('§3.2 PresentRewrite equals the codec', () => {
  for (const level of ['pte', 'pmd', 'pud'] as const) {
    for (const [name, fn] of RULES) {
      it(`${level}: ${name}`, () => {
        const rw = new PresentRewrite(level, fn);
        fc.assert(
          fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 40 / PAGES[level] - 1 }), bitsArb), { minLength: 1, maxLength: 40 }), (entries) => {
            for (const [k, bits] of entries) {
              const pfn = k * PAGES[level];
              const raw = encodePresent(level, pfn, level === 'pte' ? bits : { ...bits, pat: false });
              let want;
              try {
                const d = decodePresent(level, raw);
                want = encodePresent(level, d.pfn, fn(d.bits));
              } catch (e) {
                expect(() => rw.apply(raw)).toThrow((e as Error).message);
                continue;
              }
              expect(rw.apply(raw)).toEqual(want);
            }
          }),
          { numRuns: 200 },
        );
      });
    }
  }
});
