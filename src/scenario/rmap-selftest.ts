import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { Mm } from '../model/mm.js';
import { PAGE_SIZE } from '../model/geometry.js';
import { cpuAccess } from '../mm/access.js';
import { dupMmap } from '../mm/fork.js';
import { ksmScan } from '../mm/ksm.js';
import { madvise } from '../mm/madvise.js';
import { migrateFolio } from '../mm/migrate-folio.js';
import { mmap } from '../mm/mmap.js';
import { mremap } from '../mm/mremap.js';

/**
 * The kernel's rmap selftest (tools/testing/selftests/mm/rmap.c, spec §7.3) in simulation: a random process
 * tree of depth 5 with 1 to 3 children per process shares one page; one process (the worker) migrates it; every
 * process must then map the new pfn, which holds only if rmap found and moved every mapping. Everything is
 * reached by operations: mmap, CPU writes and reads (faults), fork, KSM scans, mremap, migration.
 *
 * Variants (§7.3): anon (private anonymous memory inherited by fork), shm (a shared mapping of a shm file),
 * file (a shared file mapping), ksm (every process writes the same data into its own private page; KSM merges
 * them), ksm_and_mremap (as ksm, but each process first mremaps its second page over its first).
 */
export type RmapSelftestVariant = 'anon' | 'shm' | 'file' | 'ksm' | 'ksm_and_mremap';
export const RMAP_SELFTEST_VARIANTS: readonly RmapSelftestVariant[] = ['anon', 'shm', 'file', 'ksm', 'ksm_and_mremap'];

export const TOTAL_LEVEL = 5;
export const MAX_CHILDREN = 3;
/** The data every process writes or expects (a content tag, D8). */
const DATA = 0x5eed;

export interface RmapSelftestReport {
  variant: RmapSelftestVariant;
  seed: number;
  processes: number;
  /** Index of the worker in `mms`. */
  worker: number;
  oldPfn: number;
  newPfn: number;
  /** Processes whose page is not at the new pfn (or whose data changed) after the migration. */
  mismatches: { mm: number; pfn: number | null; tag: number | undefined }[];
  mms: Mm[];
  /** The address each process checks, in the order of `mms`. */
  addresses: number[];
}

/** A small deterministic PRNG (mulberry32), so a seed reproduces a tree. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function must<T extends { ok: boolean }>(what: string, r: T): T & { ok: true } {
  if (!r.ok) throw new PvmwError('INTERNAL', `rmap selftest: ${what} failed: ${JSON.stringify(r)}`);
  return r as T & { ok: true };
}

/** Fork the tree: every process below TOTAL_LEVEL gets 1…MAX_CHILDREN children. Returns all mms, root first. */
function forkTree(engine: Engine, root: Mm, rand: () => number): Mm[] {
  const all: Mm[] = [root];
  let level: Mm[] = [root];
  for (let depth = 1; depth < TOTAL_LEVEL; depth++) {
    const next: Mm[] = [];
    for (const p of level) {
      const n = 1 + Math.floor(rand() * MAX_CHILDREN);
      for (let i = 0; i < n; i++) next.push(must('fork', dupMmap(engine, p)).child);
    }
    all.push(...next);
    level = next;
  }
  return all;
}

function touch(engine: Engine, mm: Mm, addr: number, access: 'read' | 'write'): void {
  const r = cpuAccess(engine, mm, addr, access, access === 'write' ? { tag: DATA } : {});
  if (r.outcome !== 'ok') throw new PvmwError('INTERNAL', `rmap selftest: ${access} at ${addr} in mm ${mm.id}: ${r.outcome}`);
}

/** Run one variant on an engine; the engine keeps the final state for inspection. */
export function runRmapSelftest(engine: Engine, variant: RmapSelftestVariant, seed = 1): RmapSelftestReport {
  if (!RMAP_SELFTEST_VARIANTS.includes(variant)) {
    throw new PvmwError('BAD_SETTING', `rmap selftest variant must be one of ${RMAP_SELFTEST_VARIANTS.join(', ')}, got ${JSON.stringify(variant)}`);
  }
  const rand = rng(seed);
  const root = engine.createMm();
  let mms: Mm[];
  /** The page each process checks (the same VA in every process for the inherited variants). */
  const where = new Map<Mm, number>();
  if (variant === 'anon' || variant === 'shm' || variant === 'file') {
    const req = variant === 'anon'
      ? { len: PAGE_SIZE, prot: { read: true, write: true }, shared: false }
      : { len: PAGE_SIZE, prot: { read: true, write: true }, shared: true, file: variant === 'shm' ? 0x5300 : 0xf11e };
    const addr = must('mmap', mmap(engine, root, req)).value;
    touch(engine, root, addr, 'write');
    mms = forkTree(engine, root, rand);
    for (const mm of mms) {
      touch(engine, mm, addr, 'read'); // each process checks the data, mapping the page
      where.set(mm, addr);
    }
  } else {
    mms = forkTree(engine, root, rand);
    for (const mm of mms) {
      const len = variant === 'ksm' ? PAGE_SIZE : 2 * PAGE_SIZE;
      const a = must('mmap', mmap(engine, mm, { len, prot: { read: true, write: true }, shared: false })).value;
      for (let off = 0; off < len; off += PAGE_SIZE) touch(engine, mm, a + off, 'write');
      if (variant === 'ksm_and_mremap') must('mremap', mremap(engine, mm, a + PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, { maymove: true, fixed: true, newAddr: a }));
      must('madvise', madvise(engine, mm, a, PAGE_SIZE, 'MADV_MERGEABLE'));
      where.set(mm, a);
    }
    ksmScan(engine, { rounds: 3 });
  }
  const worker = Math.floor(rand() * mms.length);
  const wmm = mms[worker];
  const before = wmm.translate(where.get(wmm)!);
  if (!before.page) throw new PvmwError('INTERNAL', `rmap selftest: the worker maps nothing at ${where.get(wmm)}`);
  const oldPfn = before.leaf.entry.number!;
  const moved = must('migration', migrateFolio(engine, before.page.folio));
  const newPfn = engine.folio(moved.value).number + before.page.page;
  const mismatches: RmapSelftestReport['mismatches'] = [];
  for (const mm of mms) {
    const t = mm.translate(where.get(mm)!);
    const pfn = t.leaf.entry.kind === 'present' ? t.leaf.entry.number : null;
    if (pfn !== newPfn || t.page?.tag !== DATA) mismatches.push({ mm: mm.id, pfn, tag: t.page?.tag });
  }
  return { variant, seed, processes: mms.length, worker, oldPfn, newPfn, mismatches, mms, addresses: mms.map((m) => where.get(m)!) };
}
