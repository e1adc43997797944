// npm run bench [-- --json] [-- --large]: the memory budget and population throughput of the model.
// Throughput figures come from tinybench (throws: true); memory figures from the engine's own accounting.
import { Bench } from 'tinybench';
import { Engine } from '../src/index.js';
import { BUDGET_CASES, LARGE_CASES, measureBudget, type BudgetResult } from './budget.js';
import { walkBench } from './walk.js';
import { rmapBench, RMAP_DEFAULT, RMAP_LARGE } from './rmap.js';

const args = new Set(process.argv.slice(2));
const json = args.has('--json');
const log = (s: string) => process.stderr.write(s + '\n');

function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

async function throughput() {
  const N = 2 ** 20;
  const e = new Engine({ ramPages: 2 * N });
  const base = 2 ** 40;
  e.createFolios({ number: 0, index: base / 4096 }, N);
  const mm = e.createMm();
  mm.addVma({ start: base, end: base + N * 4096 });
  let fresh = new Engine({ ramPages: N });
  const bench = new Bench({ throws: true, time: 500 });
  bench
    .add(`map ${N} PTEs + rmap accounting (one call)`, () => {
      mm.map(base, { count: N, entry: { kind: 'present', number: 0 } });
      mm.clear(base, base + N * 4096);
    })
    .add(`create ${N} order-0 folios (one call)`, () => {
      fresh.createFolios({ number: 0 }, N);
    }, { beforeEach: () => { fresh = new Engine({ ramPages: N }); } })
    .add('translate one address (vtop, decoded)', () => {
      mm.translate(base + 4096 * 12345);
    });
  await bench.run();
  return bench.tasks.map((t) => {
    const r = t.result as unknown as { throughput?: { mean: number }; latency?: { mean: number } };
    const opsPerSec = r.throughput?.mean ?? 0;
    const perOp = t.name.startsWith('map') || t.name.startsWith('create') ? N : 1;
    return { name: t.name, opsPerSec, itemsPerSec: opsPerSec * perOp, meanMs: r.latency?.mean ?? 0 };
  });
}

async function main() {
  // --only budget|walk|rmap runs one section.
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const cases = args.has('--large') ? [...BUDGET_CASES, ...LARGE_CASES] : BUDGET_CASES;
  const budget: BudgetResult[] = [];
  let tp: Awaited<ReturnType<typeof throughput>> = [];
  if (only === undefined || only === 'budget') {
    for (const c of cases) {
      log(`budget: ${c.name} …`);
      budget.push(measureBudget(c));
    }
    log('throughput …');
    tp = await throughput();
  }
  const walks = only === undefined || only === 'walk' ? await walkBench(log) : undefined;
  const rmap = only === undefined || only === 'rmap' ? await rmapBench(log, args.has('--large') ? RMAP_LARGE : RMAP_DEFAULT) : undefined;
  if (json) {
    process.stdout.write(JSON.stringify({ node: process.version, budget, throughput: tp, walks, rmap }, null, 2) + '\n');
    return;
  }
  if (rmap) {
    const c = rmap.config;
    console.log(`rmap_walk over a fork tree: ${c.processes} processes sharing ${c.folios} anon folios; ${c.sample} folios walked per interface`);
    console.table(rmap.walks.map((w) => ({
      interface: w.interface,
      walks: w.walks,
      'rmap walks/s': Math.round(w.walksPerSec).toLocaleString('en'),
      'reference walks/s': Math.round(w.referenceWalksPerSec).toLocaleString('en'),
      'rmap/reference': w.ratio.toFixed(1),
      'matches/walk': w.matchesPerWalk.toFixed(2),
    })));
    console.log('Operations on the large spaces');
    console.table([
      { operation: `fork of a ${c.folios}-PTE process`, count: rmap.build.forks, 'ops/s': rmap.build.forkOpsPerSec.toFixed(2), 'PTEs/s': Math.round(rmap.build.ptesCopiedPerSec).toLocaleString('en') },
      { operation: `munmap of a ${c.folios}-PTE VMA`, count: rmap.munmap.ops, 'ops/s': rmap.munmap.opsPerSec.toFixed(2), 'PTEs/s': Math.round(rmap.munmap.ptesPerSec).toLocaleString('en') },
    ]);
    console.log(`engine memory with the whole tree: ${fmtBytes(rmap.wasmBytes)}`);
  }
  if (walks) {
    console.log(`Batched page_vma_mapped_walk on ${walks.folios} folios (orders 0, 2, 4, 9 PTE- and PMD-mapped), one walk per folio`);
    console.table(walks.rows.map((r) => ({
      interface: r.interface,
      order: r.order,
      walks: r.walks,
      'wasm walks/s': Math.round(r.wasmWalksPerSec).toLocaleString('en'),
      'reference walks/s': Math.round(r.referenceWalksPerSec).toLocaleString('en'),
      'wasm/reference': r.ratio.toFixed(1),
      'entries read/walk': r.entriesReadPerWalk.toFixed(2),
      'memmap lookups/walk': r.memmapLookupsPerWalk.toFixed(2),
      'matches/walk': r.matchesPerWalk.toFixed(2),
    })));
  }
  if (budget.length === 0) return;
  console.log('Memory budget (goal: tables ~8 B per mapping; <= 16 B per folio + <= 4 B per page; memmap = page words + folio records)');
  console.table(budget.map((b) => ({
    case: b.name,
    mappings: b.mappings,
    'tables B/mapping': b.perMapping.tables.toFixed(2),
    'memmap B/folio': b.perFolio.memmap.toFixed(2),
    'record B/folio': b.perFolio.record.toFixed(2),
    'page word B/page': b.perPage.memmap.toFixed(2),
    wasm: fmtBytes(b.bytes.wasm),
    'build s': b.seconds.total.toFixed(2),
    mapcount: b.mapcountCheck,
  })));
  console.log('Population throughput (tinybench)');
  console.table(tp.map((t) => ({ task: t.name, 'items/s': Math.round(t.itemsPerSec).toLocaleString('en'), 'mean ms': t.meanMs.toFixed(3) })));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
