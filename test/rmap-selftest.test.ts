// The kernel's rmap selftest (spec §7.3, issue 4 item 5) in simulation: a random fork tree of depth 5 with up
// to 3 children per process shares one page, reached by operations only; after the worker migrates it, every
// process maps the new pfn. Seeds are printed in the test names so a failure reproduces.
import { describe, expect, it } from 'vitest';
import { Engine } from '../src/index.js';
import { RMAP_SELFTEST_VARIANTS, runRmapSelftest } from '../src/scenario/rmap-selftest.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { setOpsPolicy } from '../src/mm/state.js';

describe('§7.3 rmap selftest', () => {
  for (const variant of RMAP_SELFTEST_VARIANTS) {
    for (const seed of [1, 2, 3]) {
      it(`${variant}: every process maps the new pfn after the worker migrates the page (seed ${seed})`, () => {
        const e = new Engine({ ramPages: 1 << 16 });
        const r = runRmapSelftest(e, variant, seed);
        expect(r.processes).toBeGreaterThanOrEqual(5); // one process per level at least
        expect(r.processes).toBeLessThanOrEqual(1 + 3 + 9 + 27 + 81);
        expect(r.newPfn).not.toBe(r.oldPfn);
        expect(r.mismatches).toEqual([]);
        // rmap of the new folio reaches every process, and nothing else maps the old pfn.
        const folio = e.page('pfn', r.newPfn)!.folio;
        const reached = new Set(rmapCandidates(e, folio).map((c) => c.mm.id));
        expect(reached).toEqual(new Set(r.mms.map((m) => m.id)));
        expect(e.page('pfn', r.oldPfn)?.mapcount ?? 0).toBe(0);
        expect(e.folio(folio).mapcount).toBe(r.processes);
        if (variant.startsWith('ksm')) expect(e.folio(folio).flags.ksm).toBe(true);
        expect(e.checkInvariants().problems).toEqual([]);
      });
    }
  }

  for (const walkInterface of ['folio-range', 'folio-identity'] as const) {
    it(`gives the same result through the ${walkInterface} walk interface (D2)`, () => {
      const results = [undefined, walkInterface].map((iface) => {
        const e = new Engine({ ramPages: 1 << 16 });
        if (iface) setOpsPolicy(e, { walkInterface: iface });
        const r = runRmapSelftest(e, 'ksm_and_mremap', 7);
        return { processes: r.processes, worker: r.worker, oldPfn: r.oldPfn, newPfn: r.newPfn, mismatches: r.mismatches };
      });
      expect(results[1]).toEqual(results[0]);
    });
  }

  it('an unknown variant is refused with its name', () => {
    expect(() => runRmapSelftest(new Engine({ ramPages: 1 << 12 }), 'hugetlb' as never)).toThrow(/"hugetlb"/);
  });
});
