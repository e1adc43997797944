import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PvmwError } from '../errors.js';

/** The engine's WebAssembly exports (assembly/index.ts). Numbers that may pass 2^32 cross as f64. */
export interface WasmExports {
  init(levels: number): number;
  scratchPtr(): number;
  memoryBytes(): number;
  framesTop(): number;
  framesFree(): number;
  framesBase(): number;
  errorAt(): number;
  errorHeight(): number;
  resultLo(): number;
  resultHi(): number;
  resultHeight(): number;
  ptAllocRoot(): number;
  ptFreeRoot(root: number): void;
  ptLookup(root: number, va: number, height: number, trace: number): number;
  ptSetRange(root: number, va: number, height: number, count: number, firstLo: number, firstHi: number, stepLo: number, stepHi: number, mustBeNone: number): number;
  ptClearRange(root: number, start: number, end: number, unaccountMappings: number): number;
  ptAccountRange(root: number, start: number, end: number): number;
  ptStats(root: number, out: number): void;
  tablesInUse(): number;
  bufferAlloc(frames: number): number;
  setWalkSemantics(semantics: number): void;
  injectClear(): void;
  injectAdd(point: number, change: number, nth: number): number;
  walkBatch(jobs: number, nJobs: number, out: number, cap: number, counters: number): number;
  walkBegin(job: number, counters: number): number;
  walkNext(out: number): number;
  walkRestart(): void;
  walkEnd(): void;
  walkCounters(out: number): void;
  ptSplitPmd(root: number, va: number): number;
  ptScan(root: number, start: number, end: number, buf: number, cap: number): number;
  ptSetBatch(root: number, buf: number, n: number, accountMappings: number): number;
  folioSetMapping(g: number, mapping: number, index: number): void;
  firstOtherAnonVma(g: number, n: number, mapping: number): number;
  ptFreePteTable(root: number, va: number): number;
  ptReplacePteTable(root: number, va: number): number;
  rangeAdd(ns: number, kind: number, base: number, pages: number): number;
  rangeStart(i: number): number;
  indexOf(ns: number, number: number): number;
  folioCreateRange(g: number, order: number, count: number, flags: number, mapping: number, index: number, indexStep: number): number;
  folioFree(g: number): number;
  folioSplit(g: number, newOrder: number): number;
  folioOf(g: number): number;
  isFolio(g: number): number;
  folioOrder(g: number): number;
  folioFlags(g: number): number;
  pageFlags(g: number): number;
  pageMapcount(g: number): number;
  folioMapping(g: number): number;
  folioIndex(g: number): number;
  entireMapcount(g: number): number;
  folioMapcount(g: number): number;
  folioSetFlags(g: number, set: number, clear: number): void;
  pageSetFlags(g: number, n: number, set: number, clear: number): void;
  pageMapcountAdd(g: number, n: number, delta: number): void;
  entireMapcountAdd(g: number, delta: number): void;
  tagSet(g: number, n: number, tag: number): number;
  tagGet(g: number): number;
  folioCount(): number;
  sectionCount(): number;
  tagChunkCount(): number;
  sectionBytes(): number;
  recordBytes(): number;
  memmapFixedBytes(): number;
  folioStats(out: number): void;
  nextFolio(g: number): number;
  setSoftleafCode(type: number, code: number): void;
  setRmapConfig(deviceNamespace: number, deviceExclusiveMaps: number, swpPfnBits: number): void;
  entryMappedIndex(entryLo: number, entryHi: number, height: number): number;
  firstUnfitPage(g: number, n: number, forbidFlags: number, checkRmap: number, anon: number, file: number, lpi0: number): number;
  codecLeaf(pfn: number, height: number, protLo: number, protHi: number): void;
  codecLeafPfn(lo: number, hi: number, height: number): number;
  codecSwp(type: number, offset: number): void;
  codecSwpType(lo: number, hi: number): number;
  codecSwpOffset(lo: number, hi: number): number;
  codecClassify(lo: number, hi: number, height: number): number;
}

/** Status codes of assembly/status.ts. */
export const WASM_STATUS = { OK: 0, NOMEM: -1, CONFLICT: -2, BUSY: -3, RANGE: -4, NOFOLIO: -5, RANGES: -6 } as const;

const WASM_PAGE = 65536;
const INITIAL_PAGES = 16;
let cached: WebAssembly.Module | undefined;

/** The package root: the nearest folder above this file holding build/release.wasm (src/ and dist/ alike). */
function wasmPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'build', 'release.wasm');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new PvmwError('INTERNAL', 'build/release.wasm not found: run "npm run build:wasm" first');
}

/** Compile the engine module once per process. */
export function wasmModule(): WebAssembly.Module {
  if (!cached) cached = new WebAssembly.Module(readFileSync(wasmPath()));
  return cached;
}

/**
 * Wrap every export so that a WebAssembly trap (a pvmw bug: an out-of-bounds access or unreachable) becomes
 * a PvmwError with code INTERNAL, and the instance refuses further calls: its state can no longer be trusted.
 */
function guard(raw: WasmExports): WasmExports {
  let broken: string | undefined;
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(raw)) {
    if (typeof f !== 'function') continue;
    out[name] = (...args: number[]) => {
      if (broken) throw new PvmwError('INTERNAL', `this engine stopped after a WebAssembly trap in ${broken}; create a new engine`);
      try {
        return (f as (...a: number[]) => unknown)(...args);
      } catch (err) {
        if (err instanceof WebAssembly.RuntimeError) {
          broken = name;
          throw new PvmwError('INTERNAL', `WebAssembly trap in ${name}(${args.join(', ')}): ${err.message}`);
        }
        throw err;
      }
    };
  }
  return out as unknown as WasmExports;
}

/** One engine instance: its own memory (ceiling `maxBytes`) and exports. Views are re-made after growth. */
export class WasmInstance {
  readonly exports: WasmExports;
  readonly memory: WebAssembly.Memory;
  private buf: ArrayBuffer | undefined;
  private u32v!: Uint32Array;
  private u8v!: Uint8Array;

  constructor(maxBytes: number, levels: number) {
    const maximum = Math.floor(maxBytes / WASM_PAGE);
    if (maximum < INITIAL_PAGES + 64) {
      throw new PvmwError('MEMORY_LIMIT', `maxMemoryBytes ${maxBytes} is below the engine's minimum of ${(INITIAL_PAGES + 64) * WASM_PAGE}`);
    }
    this.memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum });
    const inst = new WebAssembly.Instance(wasmModule(), { env: { memory: this.memory } });
    this.exports = guard(inst.exports as unknown as WasmExports);
    if (!this.exports.init(levels)) {
      throw new PvmwError('MEMORY_LIMIT', `maxMemoryBytes ${maxBytes} leaves no room for the engine's tables`);
    }
  }

  private refresh(): void {
    if (this.buf !== this.memory.buffer) {
      this.buf = this.memory.buffer;
      this.u32v = new Uint32Array(this.buf);
      this.u8v = new Uint8Array(this.buf);
    }
  }
  /** A u32 view of linear memory, valid until the next call that may grow memory. */
  u32(): Uint32Array {
    this.refresh();
    return this.u32v;
  }
  u8(): Uint8Array {
    this.refresh();
    return this.u8v;
  }
  /** The u64 result register as [lo, hi]. */
  result(): [number, number] {
    return [this.exports.resultLo() >>> 0, this.exports.resultHi() >>> 0];
  }
}
