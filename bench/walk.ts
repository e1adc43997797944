// Batched page_vma_mapped_walk throughput per interface (issue 3 item 7): pfn-keyed, folio-keyed `range` and
// folio-keyed `identity`, in address order and in random order, on a space of more than 1 M mapped folios of
// mixed orders, beside the TypeScript reference walk on the same space, with the cost counters of each.
import { Bench } from 'tinybench';
import { Engine, type Mm, type Vma } from '../src/index.js';
import { prepareBatch, runBatch, type PreparedBatch, type WalkRequest } from '../src/walk/pvmw.js';
import { referenceWalk } from '../src/walk/reference.js';
import type { WalkKey } from '../src/walk/types.js';

/** Orders and how many folios of each, laid out back to back in pfn and VA (folio index = linear index). */
const LAYOUT: { order: number; count: number; pmd?: boolean }[] = [
  { order: 0, count: 1 << 20 },
  { order: 2, count: 1 << 16 },
  { order: 4, count: 1 << 14 },
  { order: 9, count: 512 },
  { order: 9, count: 512, pmd: true },
];

export interface WalkSpace {
  engine: Engine;
  mm: Mm;
  vma: Vma;
  folios: { id: number; pfn: number; order: number; index: number }[];
}

export function buildWalkSpace(): WalkSpace {
  const pages = LAYOUT.reduce((a, l) => a + (l.count << l.order), 0);
  const engine = new Engine({ ramPages: pages + 4096 });
  const mm = engine.createMm();
  const base = 2 ** 40;
  const vma = mm.addVma({ start: base, end: base + pages * 4096, flags: { thp: true } });
  const folios: WalkSpace['folios'] = [];
  let pfn = 0;
  for (const l of LAYOUT) {
    const index = base / 4096 + pfn;
    const first = engine.createFolios({ number: pfn, order: l.order, index }, l.count);
    if (l.pmd) mm.map(base + pfn * 4096, { level: 'pmd', count: l.count, entry: { kind: 'present', number: pfn, write: true } });
    else mm.map(base + pfn * 4096, { count: l.count << l.order, entry: { kind: 'present', number: pfn, write: true } });
    for (let k = 0; k < l.count; k++) folios.push({ id: first + (k << l.order), pfn: pfn + (k << l.order), order: l.order, index: index + (k << l.order) });
    pfn += l.count << l.order;
  }
  return { engine, mm, vma, folios };
}

export type Interface = 'pfn' | 'folio range' | 'folio identity';
export const INTERFACES: Interface[] = ['pfn', 'folio range', 'folio identity'];

function keyOf(i: Interface, f: WalkSpace['folios'][number]): WalkKey {
  if (i === 'pfn') return { kind: 'pfn', number: f.pfn, nrPages: 2 ** f.order, pgoff: f.index, flags: 0 };
  return { kind: 'folio', folio: f.id, strategy: i === 'folio range' ? 'range' : 'identity', flags: 0 };
}

/** A deterministic shuffle (xorshift32). */
function shuffled<T>(a: readonly T[], seed = 12345): T[] {
  const out = a.slice();
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export interface WalkBenchRow {
  interface: Interface;
  order: 'address' | 'random';
  walks: number;
  wasmWalksPerSec: number;
  referenceWalksPerSec: number;
  ratio: number;
  /** Per walk, from the batch's counters. */
  entriesReadPerWalk: number;
  memmapLookupsPerWalk: number;
  matchesPerWalk: number;
}

export async function walkBench(log: (s: string) => void, referenceSample = 1 << 14): Promise<{ folios: number; build: number; rows: WalkBenchRow[] }> {
  const t0 = performance.now();
  const s = buildWalkSpace();
  const build = (performance.now() - t0) / 1000;
  log(`walk space: ${s.folios.length} folios built in ${build.toFixed(2)} s`);
  const rows: WalkBenchRow[] = [];
  for (const iface of INTERFACES) {
    for (const order of ['address', 'random'] as const) {
      const folios = order === 'address' ? s.folios : shuffled(s.folios);
      const requests: WalkRequest[] = folios.map((f) => ({ mm: s.mm, vma: s.vma, key: keyOf(iface, f) }));
      const prepared: PreparedBatch = prepareBatch(s.engine, requests);
      const sample = requests.slice(0, referenceSample);
      const first = runBatch(prepared); // also the source of the counters
      let entries = 0;
      let lookups = 0;
      for (let j = 0; j < first.walks; j++) {
        for (let h = 0; h < 5; h++) entries += first.counters[j * 12 + h];
        lookups += first.counters[j * 12 + 5];
      }
      const bench = new Bench({ throws: true, time: 1000, iterations: 3 });
      bench.add('wasm', () => void runBatch(prepared));
      bench.add('reference', () => {
        for (const r of sample) referenceWalk(s.engine, r.mm, r.vma, r.key);
      });
      log(`walks: ${iface}, ${order} order …`);
      await bench.run();
      const mean = (name: string) => (bench.tasks.find((t) => t.name === name)!.result as unknown as { latency: { mean: number } }).latency.mean / 1000;
      const wasm = requests.length / mean('wasm');
      const ref = sample.length / mean('reference');
      rows.push({
        interface: iface,
        order,
        walks: requests.length,
        wasmWalksPerSec: wasm,
        referenceWalksPerSec: ref,
        ratio: wasm / ref,
        entriesReadPerWalk: entries / first.walks,
        memmapLookupsPerWalk: lookups / first.walks,
        matchesPerWalk: first.matches / first.walks,
      });
    }
  }
  return { folios: s.folios.length, build, rows };
}
