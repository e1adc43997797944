import { PvmwError, hex } from '../errors.js';
import type { WasmInstance } from '../wasm/loader.js';
import type { RawEntry } from './entry.js';
import type { LeafLevel } from './geometry.js';

/**
 * Leaves in bulk (assembly/pte-batch.ts): the operations of kernel-operations.md read every leaf of a range in
 * one WebAssembly call and write their changes back in one call per buffer-full, never one call per entry.
 * Writes keep mapcounts (the old leaf's mapping is taken off its folio, the new one's put on).
 */
export interface Leaf {
  /** First VA the leaf maps. */
  va: number;
  level: LeafLevel;
  raw: RawEntry;
}

const RECORD = 24;
const FRAMES = 16;
const CAP = Math.floor((FRAMES * 4096) / RECORD);
const LEVELS: readonly LeafLevel[] = ['pte', 'pmd', 'pud'];
const HEIGHT: Record<LeafLevel, number> = { pte: 0, pmd: 1, pud: 2 };

const buffers = new WeakMap<WasmInstance, number>();
function bufferOf(wasm: WasmInstance): number {
  let b = buffers.get(wasm);
  if (b === undefined) {
    b = wasm.exports.bufferAlloc(FRAMES);
    if (b === 0) throw new PvmwError('MEMORY_LIMIT', 'no memory left for the leaf batch buffer');
    buffers.set(wasm, b);
  }
  return b;
}

/** Every non-none leaf starting in [start, end), in address order (a huge leaf starting before start is left out). */
export function scanLeaves(wasm: WasmInstance, root: number, start: number, end: number): Leaf[] {
  const out: Leaf[] = [];
  forEachLeaf(wasm, root, start, end, (va, level, lo, hi) => out.push({ va, level, raw: { lo, hi } }));
  return out;
}

/**
 * scanLeaves handing each leaf's fields to `visit` instead of making an object of it. Each buffer-full is
 * copied out before it is visited: `visit` may call into the engine (not change the tables being scanned).
 */
export function forEachLeaf(
  wasm: WasmInstance, root: number, start: number, end: number, visit: (va: number, level: LeafLevel, lo: number, hi: number) => void,
): void {
  const buf = bufferOf(wasm);
  const x = wasm.exports;
  let at = start;
  while (at < end) {
    const n = x.ptScan(root, at, end, buf, CAP);
    const next = x.resultLo() + x.resultHi() * 2 ** 32;
    const f64 = new Float64Array(wasm.memory.buffer.slice(buf, buf + n * RECORD));
    const u32 = new Uint32Array(f64.buffer);
    for (let i = 0; i < n; i++) {
      const w = (i * RECORD) >>> 2;
      visit(f64[(i * RECORD) / 8], LEVELS[u32[w + 4]], u32[w + 2], u32[w + 3]);
    }
    if (next <= at) break;
    at = next;
  }
}

/**
 * Leaves to write, kept in the engine's record layout (assembly/pte-batch.ts: f64 va, u32 lo, u32 hi, u32
 * height, u32 0) in one growing buffer: no object per leaf, one copy per buffer-full into the engine.
 */
export class LeafList {
  length = 0;
  private f64 = new Float64Array(3 * 256);
  private u32 = new Uint32Array(this.f64.buffer);

  static of(leaves: readonly Leaf[]): LeafList {
    const list = new LeafList();
    for (const l of leaves) list.push(l.va, l.level, l.raw.lo, l.raw.hi);
    return list;
  }

  push(va: number, level: LeafLevel, lo: number, hi: number): void {
    const d = this.length * (RECORD / 8);
    if (d + RECORD / 8 > this.f64.length) {
      const f64 = new Float64Array(this.f64.length * 2);
      f64.set(this.f64);
      this.f64 = f64;
      this.u32 = new Uint32Array(f64.buffer);
    }
    const w = d * 2;
    this.f64[d] = va;
    this.u32[w + 2] = lo;
    this.u32[w + 3] = hi;
    this.u32[w + 4] = HEIGHT[level];
    this.u32[w + 5] = 0;
    this.length++;
  }

  vaAt(i: number): number {
    return this.f64[i * (RECORD / 8)];
  }
  levelAt(i: number): LeafLevel {
    return LEVELS[this.u32[i * (RECORD / 4) + 4]];
  }
  loAt(i: number): number {
    return this.u32[i * (RECORD / 4) + 2];
  }
  hiAt(i: number): number {
    return this.u32[i * (RECORD / 4) + 3];
  }

  /** Records [from, from + n) as bytes. */
  bytes(from: number, n: number): Uint8Array {
    return new Uint8Array(this.f64.buffer, from * RECORD, n * RECORD);
  }
}

/**
 * Write leaves (raw {lo: 0, hi: 0} clears one). With `account` (the default) mapcounts follow. Checked per
 * buffer-full before it changes anything: ENTRY_CONFLICT (a leaf above the level covers the slot, or a table
 * is where a huge leaf would go), MEMORY_LIMIT. Callers check their whole change first so that a refusal in a
 * later buffer cannot happen half-way (operations only write where they read, or into empty ranges).
 */
export function setLeaves(wasm: WasmInstance, root: number, leaves: readonly Leaf[] | LeafList, account = true): void {
  const buf = bufferOf(wasm);
  const x = wasm.exports;
  const list = leaves instanceof LeafList ? leaves : LeafList.of(leaves);
  for (let from = 0; from < list.length; from += CAP) {
    const n = Math.min(CAP, list.length - from);
    new Uint8Array(wasm.memory.buffer, buf, n * RECORD).set(list.bytes(from, n));
    const st = x.ptSetBatch(root, buf, n, account ? 1 : 0);
    if (st === -2) throw new PvmwError('ENTRY_CONFLICT', `cannot set the leaf at ${hex(x.errorAt())}: a huge leaf above it or a table in its place`);
    if (st === -1) throw new PvmwError('MEMORY_LIMIT', `setting ${n} leaves would pass the engine's memory ceiling`);
    if (st !== 0) throw new PvmwError('INTERNAL', `ptSetBatch returned ${st}`);
  }
}
