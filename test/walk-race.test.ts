// D4 races, WebAssembly vs TypeScript reference: two spaces built from one seed; every walk meets a concurrent
// change at one of the kernel's re-check points (a PMD split between the lockless read and the lock, a PTE
// table freed or replaced before map_pte or before a lock), applied to its own twin. Matches, restarts,
// tables crossed and the tables left behind must agree. (Spec §1.5 steps 5e, 5f, 5g, 9.iv; §1.4 map_pte.)
import { describe, it, expect, afterAll } from 'vitest';
import fc from 'fast-check';
import { pageVmaMappedWalk, walkBatch } from '../src/walk/pvmw.js';
import { referenceWalk } from '../src/walk/reference.js';
import type { Injection } from '../src/walk/types.js';
import { buildSpace } from './gen/space.js';
import { combos } from './walk-diff.js';

const CHOICES: Injection[] = [
  { point: 'pmd-huge-read', change: 'split-pmd' },
  { point: 'pmd-device-read', change: 'split-pmd' },
  { point: 'map-pte', change: 'free-pte-table' },
  { point: 'map-pte', change: 'replace-pte-table' },
  { point: 'map-pte-lock', change: 'free-pte-table' },
  { point: 'map-pte-lock', change: 'replace-pte-table' },
  { point: 'next-pte-lock', change: 'free-pte-table' },
  { point: 'next-pte-lock', change: 'replace-pte-table' },
];

/** How often each injection changed the tables (it fires only if the walk reaches its point). */
const fired: Record<string, number> = {};
let walks = 0;
afterAll(() => console.log(`walk races: ${walks} walks with an injection; injections that changed the tables:`, fired));

describe('D4 injected races: WebAssembly and the TypeScript reference take the same branches', () => {
  for (const paging of [4, 5] as const) {
    for (const combo of combos(paging)) {
      it(`${paging}-level, ${combo.deviceModel} model, ${combo.semantics}`, () => {
        fc.assert(
          fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), (seed) => {
            const o = { ...combo, seed, scale: 'small' as const };
            const a = buildSpace(o);
            const b = buildSpace(o);
            // The WebAssembly walk takes its buffers on first use; give both twins theirs so that tables created
            // by the races land at the same addresses in both.
            walkBatch(a.engine, []);
            walkBatch(b.engine, []);
            for (let j = 0; j < a.cases.length; j++) {
              const inject = [{ ...CHOICES[(seed + j) % CHOICES.length], nth: 1 + ((seed >>> 3) + j) % 2 }];
              const ca = a.cases[j];
              const cb = b.cases[j];
              const before = a.engine.memoryUsage().tables;
              const pmdBefore = ca.mm.translate(ca.vma.start).steps.map((s) => s.raw);
              const wa = pageVmaMappedWalk(a.engine, { mm: ca.mm, vma: ca.vma, key: ca.key, address: ca.address }, { inject });
              const wb = referenceWalk(b.engine, cb.mm, cb.vma, cb.key, { address: cb.address, inject });
              const tag = `seed ${seed} case ${j} (${ca.row}) ${JSON.stringify(inject)}`;
              expect(wa.matches, tag).toEqual(wb.matches);
              expect([wa.counters.restarts, wa.counters.tablesCrossed], tag).toEqual([wb.counters.restarts, wb.counters.tablesCrossed]);
              // Both twins were changed the same way.
              expect(a.engine.memoryUsage().tables, tag).toBe(b.engine.memoryUsage().tables);
              for (const m of wa.matches.slice(0, 4)) {
                expect(ca.mm.translate(m.address).steps.map((s) => s.raw), tag).toEqual(cb.mm.translate(m.address).steps.map((s) => s.raw));
              }
              const changed = a.engine.memoryUsage().tables !== before ||
                JSON.stringify(ca.mm.translate(ca.vma.start).steps.map((s) => s.raw)) !== JSON.stringify(pmdBefore) || wa.counters.restarts > 0;
              if (changed) {
                const k = `${inject[0].point}/${inject[0].change}`;
                fired[k] = (fired[k] ?? 0) + 1;
              }
            }
            walks += a.cases.length;
          }),
          { numRuns: 2 },
        );
      });
    }
  }

  it('every injection point met its walk at least once', () => {
    for (const c of CHOICES) expect(fired[`${c.point}/${c.change}`] ?? 0, `${c.point}/${c.change}`).toBeGreaterThan(0);
  });
});
