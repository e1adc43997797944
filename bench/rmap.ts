// rmap walks over a forked tree (issue 4 "Show in your note"): a root process maps N anon folios, fork builds a
// tree of P processes (each forks up to 3 children, breadth first) that all share them; then rmap_walk of a
// sample of folios through each walk interface (every walk of a batch in one WebAssembly call), beside the
// TypeScript reference walk on the same candidates; and fork and munmap of the large spaces, as operations/s.
import { Bench } from 'tinybench';
import { Engine, type Mm } from '../src/index.js';
import { dupMmap } from '../src/mm/fork.js';
import { munmap } from '../src/mm/munmap.js';
import { rmapCandidates, rmapWalk, folioWalkKey, type WalkInterface } from '../src/rmap/rmap-walk.js';
import { referenceWalk } from '../src/walk/reference.js';

export interface RmapBenchConfig {
  processes: number;
  folios: number;
  /** Folios whose rmap walks are timed. */
  sample: number;
}
export const RMAP_DEFAULT: RmapBenchConfig = { processes: 100, folios: 10_000, sample: 500 };
export const RMAP_LARGE: RmapBenchConfig = { processes: 1000, folios: 100_000, sample: 500 };

export interface RmapBenchResult {
  config: RmapBenchConfig;
  build: { forks: number; forkOpsPerSec: number; ptesCopiedPerSec: number; seconds: number };
  walks: { interface: WalkInterface; walks: number; walksPerSec: number; referenceWalksPerSec: number; ratio: number; matchesPerWalk: number }[];
  munmap: { ops: number; opsPerSec: number; ptesPerSec: number };
  wasmBytes: number;
}

const INTERFACES: WalkInterface[] = ['pfn', 'folio-range', 'folio-identity'];
const BASE = 2 ** 32;

export async function rmapBench(log: (s: string) => void, c: RmapBenchConfig): Promise<RmapBenchResult> {
  const e = new Engine({ ramPages: c.folios + (1 << 16) });
  const root = e.createMm();
  const len = c.folios * 4096;
  root.addVma({ start: BASE, end: BASE + len });
  const first = e.createFolios({ number: 1 << 16, anonVma: 1, index: BASE / 4096, flags: { swapbacked: true, dirty: true } }, c.folios);
  root.map(BASE, { count: c.folios, entry: { kind: 'present', number: 1 << 16, write: true, dirty: true, young: true, user: true, nx: true } });
  e.folios.setAnonExclusive(first, 0, 1, true);
  for (let i = 1; i < c.folios; i++) e.folios.setAnonExclusive(first + i, 0, 1, true);

  log(`rmap: forking ${c.processes} processes sharing ${c.folios} anon folios …`);
  const mms: Mm[] = [root];
  const t0 = performance.now();
  for (let parent = 0; mms.length < c.processes; parent++) {
    for (let k = 0; k < 3 && mms.length < c.processes; k++) {
      const r = dupMmap(e, mms[parent]);
      if (!r.ok) throw new Error(`fork failed: ${r.errno}`);
      mms.push(r.child);
    }
  }
  const forkSeconds = (performance.now() - t0) / 1000;
  const forks = mms.length - 1;

  const step = Math.max(1, Math.floor(c.folios / c.sample));
  const sample: number[] = [];
  for (let i = 0; i < c.folios && sample.length < c.sample; i += step) sample.push(first + i);
  const walks: RmapBenchResult['walks'] = [];
  for (const iface of INTERFACES) {
    let n = 0;
    let matches = 0;
    const bench = new Bench({ throws: true, time: 500, iterations: 3 });
    bench.add('rmap_walk', () => {
      matches = 0;
      n = rmapWalk(e, sample, { interface: iface, rmapOne: (_c, m) => ((matches += m.length), true) });
    });
    // Baseline: the TypeScript reference walk over the same candidates (a slice of them).
    const refSample = sample.slice(0, Math.max(1, Math.floor(sample.length / 10)));
    const refJobs = refSample.flatMap((id) => {
      const key = folioWalkKey(e, e.folio(id), 0, iface);
      return rmapCandidates(e, id).map((cand) => ({ cand, key }));
    });
    bench.add('reference', () => {
      for (const j of refJobs) referenceWalk(e, j.cand.mm, j.cand.vma, j.key);
    });
    log(`rmap: walks through ${iface} …`);
    await bench.run();
    const mean = (name: string) => (bench.tasks.find((t) => t.name === name)!.result as unknown as { latency: { mean: number } }).latency.mean / 1000;
    const wps = n / mean('rmap_walk');
    const ref = refJobs.length / mean('reference');
    walks.push({ interface: iface, walks: n, walksPerSec: wps, referenceWalksPerSec: ref, ratio: wps / ref, matchesPerWalk: matches / n });
  }
  const wasmBytes = e.memoryUsage().wasmBytes;

  const victims = mms.slice(-Math.min(20, forks));
  log(`rmap: munmap of ${victims.length} processes' ${c.folios}-page VMAs …`);
  const t1 = performance.now();
  for (const mm of victims) {
    const r = munmap(e, mm, BASE, len);
    if (!r.ok) throw new Error(`munmap failed: ${r.errno}`);
  }
  const unmapSeconds = (performance.now() - t1) / 1000;
  return {
    config: c,
    build: { forks, forkOpsPerSec: forks / forkSeconds, ptesCopiedPerSec: (forks * c.folios) / forkSeconds, seconds: forkSeconds },
    walks,
    munmap: { ops: victims.length, opsPerSec: victims.length / unmapSeconds, ptesPerSec: (victims.length * c.folios) / unmapSeconds },
    wasmBytes,
  };
}
