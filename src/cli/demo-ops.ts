import { Engine } from '../model/engine.js';
import type { EngineOptions } from '../model/settings.js';
import { hex } from '../errors.js';
import { RMAP_SELFTEST_VARIANTS, runRmapSelftest, type RmapSelftestVariant } from '../scenario/rmap-selftest.js';
import { table } from './format.js';

/**
 * The demo's Operations section: the kernel's rmap selftest (spec §7.3) run by operations on fresh engines with
 * the demo's settings, one per variant: a fork tree shares one page, the worker migrates it, and every process
 * must map the new pfn afterwards.
 */
export interface SelftestRow {
  variant: RmapSelftestVariant;
  seed: number;
  processes: number;
  worker: number;
  oldPfn: string;
  newPfn: string;
  /** Processes that map the new pfn with the data. */
  atNewPfn: number;
  invariantsOk: boolean;
  ms: number;
}

export const DEMO_SELFTEST_SEED = 1;

export function selftestReport(options: EngineOptions): SelftestRow[] {
  return RMAP_SELFTEST_VARIANTS.map((variant) => {
    const t0 = performance.now();
    const e = new Engine(options);
    const r = runRmapSelftest(e, variant, DEMO_SELFTEST_SEED);
    return {
      variant,
      seed: r.seed,
      processes: r.processes,
      worker: r.mms[r.worker].id,
      oldPfn: hex(r.oldPfn),
      newPfn: hex(r.newPfn),
      atNewPfn: r.processes - r.mismatches.length,
      invariantsOk: e.checkInvariants().ok,
      ms: performance.now() - t0,
    };
  });
}

export function selftestText(rows: SelftestRow[]): string {
  return [
    `Operations: the kernel's rmap selftest (spec §7.3), seed ${DEMO_SELFTEST_SEED}: fork builds a tree of depth 5 sharing one page,`,
    'the worker migrates it, and every process must then map the new pfn (rmap found every mapping)',
    table(
      [
        { header: 'variant' }, { header: 'processes', align: 'right' }, { header: 'worker mm', align: 'right' },
        { header: 'old pfn' }, { header: 'new pfn' }, { header: 'at new pfn', align: 'right' }, { header: 'invariants' }, { header: 'ms', align: 'right' },
      ],
      rows.map((r) => [r.variant, r.processes, r.worker, r.oldPfn, r.newPfn, `${r.atNewPfn}/${r.processes}`, r.invariantsOk ? 'ok' : 'BROKEN', r.ms.toFixed(0)]),
    ),
  ].join('\n');
}
