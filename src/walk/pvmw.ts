import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { Mm } from '../model/mm.js';
import { EFAULT, type Vma } from '../model/vma.js';
import type { LeafLevel } from '../model/geometry.js';
import { WalkBuffers, COUNTER_BYTES, JOB_BYTES, MATCH_BYTES, encodeJob, type WalkJob } from '../wasm/walkbuf.js';
import {
  PVMW_DEVICE_PRIVATE, PVMW_INPUT_FLAGS, PVMW_SYNC,
  type Injection, type LockKind, type WalkCounters, type WalkKey, type WalkMatch, type WalkResult,
} from './types.js';

/**
 * page_vma_mapped_walk in WebAssembly (assembly/walk.ts) behind the walk vocabulary of types.ts: one walk with
 * objects (and D4 injections), or many walks in one call with typed-array results.
 */

export interface WalkRequest {
  mm: Mm;
  vma: Vma;
  key: WalkKey;
  /** Start address; default vma_address of the key (spec §1.3). */
  address?: number;
}

const LEVELS: LeafLevel[] = ['pte', 'pmd', 'pud'];
const LOCKS: (LockKind | null)[] = [null, 'pte', 'pmd', 'hugetlb'];
const KEY_MODE = { pfn: 0, range: 1, identity: 2 } as const;
const POINT = { 'pmd-huge-read': 1, 'pmd-device-read': 2, 'map-pte': 3, 'map-pte-lock': 4, 'next-pte-lock': 5 } as const;
const CHANGE = { 'split-pmd': 1, 'free-pte-table': 2, 'replace-pte-table': 3 } as const;
const ALLOWED: Record<keyof typeof POINT, (keyof typeof CHANGE)[]> = {
  'pmd-huge-read': ['split-pmd'],
  'pmd-device-read': ['split-pmd'],
  'map-pte': ['free-pte-table', 'replace-pte-table'],
  'map-pte-lock': ['free-pte-table', 'replace-pte-table'],
  'next-pte-lock': ['free-pte-table', 'replace-pte-table'],
};

const buffers = new WeakMap<Engine, WalkBuffers>();
function buffersOf(engine: Engine): WalkBuffers {
  let b = buffers.get(engine);
  if (!b) {
    b = new WalkBuffers(engine.wasmInstance());
    buffers.set(engine, b);
  }
  if (!b.ready()) throw new PvmwError('MEMORY_LIMIT', 'no memory left for the walk buffers');
  return b;
}

function whole(name: string, v: unknown, min: number, max = 2 ** 53): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PvmwError('BAD_RANGE', `${name} must be a whole number from ${min} to ${hex(max)}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Check a request (issue 3 "Bad input") and turn it into a job. Nothing is changed by a refusal. */
function toJob(engine: Engine, r: WalkRequest, stopFirst = false): WalkJob {
  const { mm, vma, key } = r;
  if (mm.vmas.byId(vma.id) !== vma) throw new PvmwError('NO_VMA', `VMA ${hex(vma.start)}-${hex(vma.end)} is not a VMA of mm ${mm.id}`);
  const flags = key.flags;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~PVMW_INPUT_FLAGS) !== 0) {
    throw new PvmwError('BAD_SETTING', `unknown walk flag bits ${Number.isInteger(flags) && flags >= 0 ? hex(flags & ~PVMW_INPUT_FLAGS) : JSON.stringify(flags)}`);
  }
  const series = engine.settings.semantics === 'series';
  let mode: number;
  let number: number;
  let nrOrPage: number;
  let pgoff = 0;
  if (key.kind === 'pfn') {
    if ((flags & PVMW_DEVICE_PRIVATE) !== 0 && !series) {
      throw new PvmwError('BAD_SETTING', `PVMW_DEVICE_PRIVATE exists only with series semantics, not ${engine.settings.semantics}`);
    }
    mode = KEY_MODE.pfn;
    number = whole('pfn', key.number, 0, 2 ** 52 - 1);
    nrOrPage = whole('nr_pages', key.nrPages, 1, 2 ** 40);
    pgoff = whole('pgoff', key.pgoff, 0, 2 ** 52 - 1);
  } else if (key.kind === 'folio') {
    if (!series && engine.settings.deviceModel === 'offset') {
      throw new PvmwError('BAD_SETTING', `the folio-keyed walk needs entries that carry their namespace: series semantics or the pfn device model, not ${engine.settings.semantics} with device-private offsets (D2)`);
    }
    if ((flags & PVMW_DEVICE_PRIVATE) !== 0) throw new PvmwError('BAD_SETTING', 'a folio-keyed walk takes no PVMW_DEVICE_PRIVATE: the folio says it');
    if (key.strategy !== 'range' && key.strategy !== 'identity') {
      throw new PvmwError('BAD_SETTING', `strategy must be range or identity, got ${JSON.stringify(key.strategy)}`);
    }
    engine.folios.require(key.folio);
    mode = KEY_MODE[key.strategy];
    number = key.folio;
    nrOrPage = key.page === undefined ? -1 : key.folio + whole(`page of folio ${hex(key.folio)}`, key.page, 0, engine.folio(key.folio).nrPages - 1);
  } else {
    throw new PvmwError('BAD_SETTING', `walk key kind must be pfn or folio, got ${JSON.stringify((key as { kind: unknown }).kind)}`);
  }
  let address = -1;
  if (r.address !== undefined) {
    address = r.address;
    if (!Number.isInteger(address) || address % 4096 !== 0 || address < vma.start || address >= vma.end) {
      throw new PvmwError('BAD_ADDRESS', `walk address ${Number.isInteger(address) && address >= 0 ? hex(address) : String(address)} is not a page of VMA ${hex(vma.start)}-${hex(vma.end)}`);
    }
  }
  return {
    root: mm.root,
    mode,
    huge: vma.flags.hugetlb === '2M' ? 1 : vma.flags.hugetlb === '1G' ? 2 : 0,
    stopFirst,
    flags,
    vmaStart: vma.start,
    vmaEnd: vma.end,
    vmaPgoff: vma.pgoff,
    number,
    nrOrPage,
    pgoff,
    address,
  };
}

function countersOf(engine: Engine, c: Uint32Array, j: number): WalkCounters {
  const base = (j * COUNTER_BYTES) / 4;
  const entriesRead: Record<string, number> = {};
  const table = engine.geometry.table;
  for (let h = table.length - 1; h >= 0; h--) entriesRead[table[table.length - 1 - h].name] = c[base + h];
  return { entriesRead, memmapLookups: c[base + 5], restarts: c[base + 6], tablesCrossed: c[base + 7], matches: c[base + 8] };
}

function matchAt(u32: Uint32Array, f64: Float64Array, i: number): WalkMatch {
  const w = (i * MATCH_BYTES) / 4;
  const info = u32[w + 1];
  return {
    address: f64[(i * MATCH_BYTES) / 8 + 2],
    level: LEVELS[info & 0xff],
    raw: { lo: u32[w + 6] >>> 0, hi: u32[w + 7] >>> 0 },
    lock: { kind: LOCKS[(info >> 8) & 0xff] as LockKind, table: u32[w + 3] >>> 0 },
    flags: u32[w + 2] >>> 0,
  };
}

/** Run one walk to its end (every true return of page_vma_mapped_walk), optionally meeting D4 races. */
export function pageVmaMappedWalk(engine: Engine, r: WalkRequest, opts: { inject?: Injection[] } = {}): WalkResult {
  const job = toJob(engine, r);
  openWalks.delete(engine);
  const b = buffersOf(engine);
  const x = engine.wasmInstance().exports;
  const inject = opts.inject ?? [];
  if (inject.length > 8) throw new PvmwError('BAD_SETTING', `at most 8 injections per walk, got ${inject.length}`);
  for (const i of inject) {
    if (!(i.point in POINT)) throw new PvmwError('BAD_SETTING', `unknown injection point ${JSON.stringify(i.point)}`);
    if (!ALLOWED[i.point].includes(i.change)) throw new PvmwError('BAD_SETTING', `injection point ${i.point} takes ${ALLOWED[i.point].join(' or ')}, not ${JSON.stringify(i.change)}`);
    whole('injection nth', i.nth ?? 1, 1, 2 ** 31);
  }
  x.injectClear();
  for (const i of inject) x.injectAdd(POINT[i.point], CHANGE[i.change], i.nth ?? 1);
  try {
    b.setJob(0, job);
    const { done, matches } = b.run(1);
    if (done < 1) throw new PvmwError('MEMORY_LIMIT', `one walk found more than ${b.matchCap} matches`);
    const { u32, f64 } = b.matchView();
    const c = b.counterView();
    const out: WalkMatch[] = [];
    for (let i = 0; i < matches; i++) out.push(matchAt(u32, f64, i));
    const start = b.start();
    return { matches: out, counters: countersOf(engine, c, 0), start: start < 0 ? null : start };
  } finally {
    x.injectClear();
  }
}

/** One walk driven a call at a time (callers that act between matches, as try_to_unmap_one splits a PMD). */
export interface Walker {
  /** The next true return of page_vma_mapped_walk, or null once it returned false. */
  next(): WalkMatch | null;
  /** page_vma_mapped_walk_restart (§1.4): after changing the tables, re-descend at the current address. */
  restart(): void;
  /** page_vma_mapped_walk_done (§1.4): stop early, releasing the lock. */
  done(): void;
  /** The work so far. */
  counters(): WalkCounters;
  /** The start address, or null (-EFAULT: no walk). */
  readonly start: number | null;
}

/** The open step-wise walk of each engine: opening another walk, or running any walk, ends it. */
const openWalks = new WeakMap<Engine, object>();

/** Open a step-wise walk. One per engine at a time; any other walk on the engine ends it. */
export function openWalk(engine: Engine, r: WalkRequest): Walker {
  const job = toJob(engine, r);
  const b = buffersOf(engine);
  const token = {};
  openWalks.set(engine, token);
  const x = engine.wasmInstance().exports;
  x.injectClear();
  b.setJob(0, job);
  const live = b.begin();
  const start = live ? b.start() : null;
  let finished = !live;
  const check = () => {
    if (openWalks.get(engine) !== token) throw new PvmwError('BAD_SETTING', 'this walk was ended by another walk on the same engine');
  };
  return {
    start,
    next() {
      check();
      if (finished) return null;
      if (!b.next()) {
        finished = true;
        return null;
      }
      const { u32, f64 } = b.matchView();
      return matchAt(u32, f64, 0);
    },
    restart() {
      check();
      if (!finished) x.walkRestart();
    },
    done() {
      check();
      if (!finished) x.walkEnd();
      finished = true;
    },
    counters() {
      check();
      return countersOf(engine, b.stepCounters(), 0);
    },
  };
}

/** page_mapped_in_vma (spec §1.6, D2): the address where the page is mapped in the VMA, or EFAULT. */
export function pageMappedInVma(engine: Engine, mm: Mm, vma: Vma, key: WalkKey): number {
  // The kernel walks with PVMW_SYNC alone; the series adds PVMW_DEVICE_PRIVATE for device-private pages.
  const flags = PVMW_SYNC | (key.flags & PVMW_DEVICE_PRIVATE);
  if (key.kind === 'pfn' && key.nrPages !== 1) throw new PvmwError('BAD_RANGE', `page_mapped_in_vma looks for one page, not nr_pages ${key.nrPages}`);
  const k: WalkKey = key.kind === 'folio' ? { ...key, page: key.page ?? 0, flags } : { ...key, flags };
  const job = toJob(engine, { mm, vma, key: k }, true);
  const b = buffersOf(engine);
  openWalks.delete(engine);
  b.setJob(0, job);
  const { matches } = b.run(1);
  if (matches === 0) return EFAULT;
  const { u32, f64 } = b.matchView();
  return matchAt(u32, f64, 0).address;
}

/** Results of many walks: one row per match, in typed arrays; counters per walk. */
export interface BatchResult {
  walks: number;
  matches: number;
  /** Per match: the request it answers, its address, level (0 pte, 1 pmd, 2 pud), lock kind (1 pte, 2 pmd,
   *  3 hugetlb), lock table, flags, entry halves. */
  job: Uint32Array;
  address: Float64Array;
  level: Uint8Array;
  lockKind: Uint8Array;
  lockTable: Uint32Array;
  flags: Uint32Array;
  entryLo: Uint32Array;
  entryHi: Uint32Array;
  /** Per walk (12 u32): reads at heights 0..4, memmap lookups, restarts, tables crossed, matches, status (1:
   *  the key lies outside the VMA), and the start address as an f64 in the last two words. */
  counters: Uint32Array;
}

/** Checked walk jobs, encoded once in the engine's record layout: the batched path's input, reusable. */
export interface PreparedBatch {
  readonly engine: Engine;
  readonly walks: number;
  readonly encoded: Uint8Array;
}

/** Check every request (nothing runs if one is refused) and encode it once. */
export function prepareBatch(engine: Engine, requests: readonly WalkRequest[]): PreparedBatch {
  const encoded = new Uint8Array(requests.length * JOB_BYTES);
  // Views over the whole buffer: one allocation, not one per job.
  const u32 = new Uint32Array(encoded.buffer);
  const f64 = new Float64Array(encoded.buffer);
  for (let i = 0; i < requests.length; i++) encodeJob(u32, f64, i, toJob(engine, requests[i]));
  return { engine, walks: requests.length, encoded };
}

/** Run prepared walks with one WebAssembly call per 4096 walks; each call's match records are copied out once. */
export function runBatch(p: PreparedBatch): BatchResult {
  const { engine, walks, encoded } = p;
  const b = buffersOf(engine);
  openWalks.delete(engine);
  const WORDS = MATCH_BYTES / 4;
  const counters = new Uint32Array(walks * (COUNTER_BYTES / 4));
  const chunks: { records: Uint32Array; firstJob: number }[] = [];
  let total = 0;
  let next = 0;
  while (next < walks) {
    const n = Math.min(b.jobCap, walks - next);
    b.setJobs(encoded.subarray(next * JOB_BYTES, (next + n) * JOB_BYTES));
    const { done, matches } = b.run(n);
    if (done === 0) throw new PvmwError('MEMORY_LIMIT', `walk ${next} alone found more than ${b.matchCap} matches`);
    chunks.push({ records: b.matchView().u32.slice(0, matches * WORDS), firstJob: next });
    counters.set(b.counterView().subarray(0, (done * COUNTER_BYTES) / 4), (next * COUNTER_BYTES) / 4);
    total += matches;
    next += done;
  }
  // Unpack the 32-byte match records into columns sized once.
  const out: BatchResult = {
    walks,
    matches: total,
    job: new Uint32Array(total),
    address: new Float64Array(total),
    level: new Uint8Array(total),
    lockKind: new Uint8Array(total),
    lockTable: new Uint32Array(total),
    flags: new Uint32Array(total),
    entryLo: new Uint32Array(total),
    entryHi: new Uint32Array(total),
    counters,
  };
  let i = 0;
  for (const { records: r, firstJob } of chunks) {
    const f = new Float64Array(r.buffer, r.byteOffset, r.length / 2);
    for (let w = 0; w < r.length; w += WORDS, i++) {
      out.job[i] = firstJob + r[w];
      out.level[i] = r[w + 1] & 0xff;
      out.lockKind[i] = (r[w + 1] >> 8) & 0xff;
      out.flags[i] = r[w + 2];
      out.lockTable[i] = r[w + 3];
      out.address[i] = f[w / 2 + 2];
      out.entryLo[i] = r[w + 6];
      out.entryHi[i] = r[w + 7];
    }
  }
  return out;
}

/** Row `i` of a batch result as a WalkMatch (INTERNAL if the row holds no lock, which a match always does). */
export function batchMatchAt(b: BatchResult, i: number): WalkMatch {
  const kind = LOCKS[b.lockKind[i]];
  if (!kind) throw new PvmwError('INTERNAL', `match ${i} at ${hex(b.address[i])} holds no lock`);
  return {
    address: b.address[i],
    level: LEVELS[b.level[i]],
    raw: { lo: b.entryLo[i], hi: b.entryHi[i] },
    lock: { kind, table: b.lockTable[i] },
    flags: b.flags[i],
  };
}

/** Run many walks: prepareBatch then runBatch. */
export function walkBatch(engine: Engine, requests: readonly WalkRequest[]): BatchResult {
  return runBatch(prepareBatch(engine, requests));
}
