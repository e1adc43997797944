import type { WasmInstance } from './loader.js';

/** Record sizes of assembly/walk.ts. */
export const JOB_BYTES = 80;
export const MATCH_BYTES = 32;
export const COUNTER_BYTES = 48;

/** A walk job as assembly/walk.ts reads it. */
export interface WalkJob {
  root: number;
  mode: number;
  huge: number;
  stopFirst: boolean;
  flags: number;
  vmaStart: number;
  vmaEnd: number;
  vmaPgoff: number;
  number: number;
  nrOrPage: number;
  pgoff: number;
  address: number;
}

/**
 * Encode job i in the record layout of assembly/walk.ts, through u32 and f64 views of one buffer (views made
 * once by the caller, not per job).
 */
export function encodeJob(u32: Uint32Array, f64: Float64Array, i: number, j: WalkJob): void {
  const w = (i * JOB_BYTES) / 4;
  const d = (i * JOB_BYTES) / 8;
  u32[w] = j.root;
  u32[w + 1] = j.mode | (j.huge << 8) | (j.stopFirst ? 1 << 16 : 0);
  u32[w + 2] = j.flags;
  u32[w + 3] = 0;
  f64[d + 2] = j.vmaStart;
  f64[d + 3] = j.vmaEnd;
  f64[d + 4] = j.vmaPgoff;
  f64[d + 5] = j.number;
  f64[d + 6] = j.nrOrPage;
  f64[d + 7] = j.pgoff;
  f64[d + 8] = j.address;
  f64[d + 9] = 0;
}

/**
 * The buffers of batched walks in one engine's linear memory: jobs in, matches and counters out. Allocated once
 * on first use and reused; the host fills jobs through typed views (no call per job) and runs a whole chunk of
 * jobs in one WebAssembly call.
 */
export class WalkBuffers {
  readonly jobCap: number;
  readonly matchCap: number;
  private jobs = 0;
  private out = 0;
  private counters = 0;

  constructor(private readonly wasm: WasmInstance, jobCap = 4096, matchCap = 1 << 16) {
    this.jobCap = jobCap;
    this.matchCap = matchCap;
  }

  private ensure(): void {
    if (this.jobs !== 0) return;
    const x = this.wasm.exports;
    const frames = (n: number) => Math.ceil(n / 4096);
    this.jobs = x.bufferAlloc(frames(this.jobCap * JOB_BYTES));
    this.out = x.bufferAlloc(frames(this.matchCap * MATCH_BYTES));
    this.counters = x.bufferAlloc(frames(this.jobCap * COUNTER_BYTES));
    if (this.jobs === 0 || this.out === 0 || this.counters === 0) this.jobs = 0;
  }

  /** Whether the buffers could be had (false: the memory ceiling). */
  ready(): boolean {
    this.ensure();
    return this.jobs !== 0;
  }

  /** Write job i of the next run. */
  setJob(i: number, j: WalkJob): void {
    const buf = this.wasm.memory.buffer;
    encodeJob(new Uint32Array(buf, this.jobs, (this.jobCap * JOB_BYTES) / 4), new Float64Array(buf, this.jobs, (this.jobCap * JOB_BYTES) / 8), i, j);
  }

  /** Copy n encoded jobs (JOB_BYTES each, from encodeJob) into the job buffer with one copy. */
  setJobs(encoded: Uint8Array): void {
    new Uint8Array(this.wasm.memory.buffer, this.jobs, encoded.length).set(encoded);
  }

  /** Step-wise walk of job 0: begin (false: -EFAULT), next (one match into match record 0), restart, end. */
  begin(): boolean {
    return this.wasm.exports.walkBegin(this.jobs, this.counters) !== 0;
  }
  /** The start address of job 0 of the last run or begin (−1: -EFAULT). */
  start(): number {
    return new Float64Array(this.wasm.memory.buffer, this.counters + 40, 1)[0];
  }
  next(): boolean {
    return this.wasm.exports.walkNext(this.out) !== 0;
  }
  stepCounters(): Uint32Array {
    this.wasm.exports.walkCounters(this.counters);
    return this.counterView();
  }

  /** Run jobs [0, n): returns jobs completed and matches written (see assembly/walk.ts walkBatch). */
  run(n: number): { done: number; matches: number } {
    const x = this.wasm.exports;
    const done = x.walkBatch(this.jobs, n, this.out, this.matchCap, this.counters);
    return { done, matches: x.resultLo() >>> 0 };
  }

  /** Views of the output of the last run (valid until the next call that may grow memory). */
  matchView(): { u32: Uint32Array; f64: Float64Array } {
    const buf = this.wasm.memory.buffer;
    return { u32: new Uint32Array(buf, this.out, (this.matchCap * MATCH_BYTES) / 4), f64: new Float64Array(buf, this.out, (this.matchCap * MATCH_BYTES) / 8) };
  }
  counterView(): Uint32Array {
    return new Uint32Array(this.wasm.memory.buffer, this.counters, (this.jobCap * COUNTER_BYTES) / 4);
  }
}
