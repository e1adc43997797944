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
  const buf = bufferOf(wasm);
  const x = wasm.exports;
  const out: Leaf[] = [];
  let at = start;
  while (at < end) {
    const n = x.ptScan(root, at, end, buf, CAP);
    const next = x.resultLo() + x.resultHi() * 2 ** 32;
    const u32 = wasm.u32();
    const f64 = new Float64Array(wasm.memory.buffer, buf, (CAP * RECORD) / 8);
    for (let i = 0; i < n; i++) {
      const w = (buf + i * RECORD) >>> 2;
      out.push({ va: f64[(i * RECORD) / 8], level: LEVELS[u32[w + 4]], raw: { lo: u32[w + 2] >>> 0, hi: u32[w + 3] >>> 0 } });
    }
    if (next <= at) break;
    at = next;
  }
  return out;
}

/**
 * Write leaves (raw {lo: 0, hi: 0} clears one). With `account` (the default) mapcounts follow. Checked per
 * buffer-full before it changes anything: ENTRY_CONFLICT (a leaf above the level covers the slot, or a table
 * is where a huge leaf would go), MEMORY_LIMIT. Callers check their whole change first so that a refusal in a
 * later buffer cannot happen half-way (operations only write where they read, or into empty ranges).
 */
export function setLeaves(wasm: WasmInstance, root: number, leaves: readonly Leaf[], account = true): void {
  const buf = bufferOf(wasm);
  const x = wasm.exports;
  for (let from = 0; from < leaves.length; from += CAP) {
    const n = Math.min(CAP, leaves.length - from);
    const u32 = wasm.u32();
    const f64 = new Float64Array(wasm.memory.buffer, buf, (CAP * RECORD) / 8);
    for (let i = 0; i < n; i++) {
      const l = leaves[from + i];
      const w = (buf + i * RECORD) >>> 2;
      f64[(i * RECORD) / 8] = l.va;
      u32[w + 2] = l.raw.lo;
      u32[w + 3] = l.raw.hi;
      u32[w + 4] = HEIGHT[l.level];
      u32[w + 5] = 0;
    }
    const st = x.ptSetBatch(root, buf, n, account ? 1 : 0);
    if (st === -2) throw new PvmwError('ENTRY_CONFLICT', `cannot set the leaf at ${hex(x.errorAt())}: a huge leaf above it or a table in its place`);
    if (st === -1) throw new PvmwError('MEMORY_LIMIT', `setting ${n} leaves would pass the engine's memory ceiling`);
    if (st !== 0) throw new PvmwError('INTERNAL', `ptSetBatch returned ${st}`);
  }
}
