import { PvmwError, hex } from '../errors.js';
import type { WasmInstance } from '../wasm/loader.js';
import type { Namespace } from './decode.js';
import type { EngineSettings } from './settings.js';
import type { Geometry } from './geometry.js';

/**
 * Physical and device memory as ranges of numbered pages (D1). System RAM is pfns 0 … ramPages−1. Device-
 * private memory comes in chunks (lib/test_hmm.c allocates 256 MiB at a time, spec §7.1): in the `pfn` model a
 * chunk is a pfn range taken from the top of the physical address space downwards, as
 * request_free_mem_region() does; in the `offset` model it is a range of device-private offsets from 0
 * upwards (the series' maple tree, §4.3 patch 13), so offsets collide with real pfns.
 * Each range owns a stretch of the engine's global page index (the memmap, assembly/memmap.ts).
 */
export type RangeKind = 'ram' | 'device-private';

export interface MemoryRange {
  readonly namespace: Namespace;
  readonly kind: RangeKind;
  /** First pfn or device-private offset. */
  readonly base: number;
  readonly pages: number;
  /** First global memmap index. */
  readonly start: number;
}

export const NS_CODE: Record<Namespace, number> = { pfn: 0, 'device-private': 1 };

export class PhysMem {
  private readonly ranges: MemoryRange[] = [];

  constructor(
    private readonly wasm: WasmInstance,
    private readonly settings: EngineSettings,
    private readonly geo: Geometry,
  ) {
    const maxPfn = 2 ** geo.swpPfnBits;
    if (settings.ramPages > maxPfn) {
      throw new PvmwError('BAD_SETTING', `ramPages ${hex(settings.ramPages)} exceeds the ${geo.physBits}-bit physical address space`);
    }
    this.add('pfn', 'ram', 0, settings.ramPages);
  }

  private add(namespace: Namespace, kind: RangeKind, base: number, pages: number): MemoryRange {
    const i = this.wasm.exports.rangeAdd(NS_CODE[namespace], kind === 'ram' ? 0 : 1, base, pages);
    if (i < 0) {
      throw new PvmwError('MEMORY_LIMIT', `cannot add ${kind} range ${hex(base)}+${hex(pages)}: the engine's page index space or range table is full`);
    }
    const r: MemoryRange = { namespace, kind, base, pages, start: this.wasm.exports.rangeStart(i) };
    this.ranges.push(r);
    return r;
  }

  /** Add one chunk of device-private memory (spec §7.1, D1) and return its range. */
  addDeviceChunk(): MemoryRange {
    const pages = this.settings.deviceChunkPages;
    const k = this.devices().length;
    if (this.settings.deviceModel === 'offset') return this.add('device-private', 'device-private', k * pages, pages);
    const base = 2 ** this.geo.swpPfnBits - (k + 1) * pages;
    if (base < this.settings.ramPages) {
      throw new PvmwError('PFN_RANGE', `no free physical range below ${hex(base + pages)} for device chunk ${k}: RAM ends at pfn ${hex(this.settings.ramPages)}`);
    }
    return this.add('pfn', 'device-private', base, pages);
  }

  all(): readonly MemoryRange[] {
    return this.ranges;
  }
  devices(): MemoryRange[] {
    return this.ranges.filter((r) => r.kind === 'device-private');
  }

  /** The range holding (namespace, number), or undefined. */
  rangeOf(namespace: Namespace, number: number): MemoryRange | undefined {
    return this.ranges.find((r) => r.namespace === namespace && number >= r.base && number < r.base + r.pages);
  }

  /** The range holding `pages` pages from (namespace, number), or a PFN_RANGE error naming the number. */
  require(namespace: Namespace, number: number, pages = 1): MemoryRange {
    if (!Number.isInteger(number) || number < 0) {
      throw new PvmwError('PFN_RANGE', `${namespace === 'pfn' ? 'pfn' : 'device-private offset'} ${String(number)} is not a non-negative whole number`);
    }
    const r = this.rangeOf(namespace, number);
    if (!r || number + pages > r.base + r.pages) {
      const what = namespace === 'pfn' ? 'pfn' : 'device-private offset';
      const where = namespace === 'pfn' ? 'physical or device memory' : 'device-private memory';
      const last = pages > 1 ? ` (… ${hex(number + pages - 1)})` : '';
      throw new PvmwError('PFN_RANGE', `${what} ${hex(number)}${last} is beyond ${where}`);
    }
    return r;
  }

  /** Global memmap index of (namespace, number); the number must be in a range. */
  index(namespace: Namespace, number: number): number {
    const r = this.require(namespace, number);
    return r.start + (number - r.base);
  }

  /** (namespace, number, range) of a global memmap index. */
  numberOf(g: number): { namespace: Namespace; number: number; range: MemoryRange } {
    for (const r of this.ranges) {
      if (g >= r.start && g < r.start + r.pages) return { namespace: r.namespace, number: r.base + (g - r.start), range: r };
    }
    throw new PvmwError('NO_FOLIO', `memmap index ${hex(g)} is in no memory range`);
  }
}
