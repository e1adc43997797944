import { PvmwError, hex } from '../errors.js';
import { WasmInstance } from '../wasm/loader.js';
import { decodeContext, type DecodeContext, type Namespace } from './decode.js';
import { Folios, type FolioId, type FolioInfo, type FolioSpec, type PageInfo } from './folio.js';
import { geometry, type Geometry } from './geometry.js';
import { Mm, type EngineContext } from './mm.js';
import { PhysMem, NS_CODE, type MemoryRange } from './physmem.js';
import { resolveSettings, type EngineOptions, type EngineSettings } from './settings.js';
import { softleafCodes, softleafTable, type SoftleafTable } from './softleaf.js';
import { checkInvariants, type InvariantReport } from './invariants.js';
import { RmapState } from '../rmap/rmap-state.js';

export type MmId = number;

/** Bytes of WebAssembly memory by purpose (the memory budget of the model issue). */
export interface MemoryUsage {
  /** The whole linear memory. */
  wasmBytes: number;
  /** Page tables in use (4 KiB each). */
  tableBytes: number;
  tables: number;
  /** memmap: page words (4 bytes per page, in sections of 2^15 pages created on demand) and folio records
   *  (16 bytes per folio, 32 per large folio, in 64 KiB chunks). */
  memmapBytes: number;
  /** Of memmapBytes, the folio records. */
  recordBytes: number;
  /** Content tags: 4 KiB chunks of 4 bytes per page, created on the first non-zero tag of 1024 pages, and the
   *  directory frame of each 2^15 pages that holds tags. */
  tagBytes: number;
  /** Fixed: table-count array, section table, range table, static data. */
  fixedBytes: number;
  /** Frames on the free list, ready for reuse. */
  freeBytes: number;
  /** Memory grown ahead of need (linear memory grows by at least 1/8 at a time). */
  headroomBytes: number;
  folios: number;
}

/**
 * One simulated machine (DESIGN.md §1): physical and device-private memory with its folios, and any number
 * of address spaces (mms) with their page tables and VMAs, all in one WebAssembly instance of its own.
 * Two engines never share state.
 */
export class Engine {
  readonly settings: EngineSettings;
  readonly geometry: Geometry;
  readonly softleaf: SoftleafTable;
  readonly decodeContext: DecodeContext;
  readonly folios: Folios;
  readonly memory: PhysMem;
  private readonly wasm: WasmInstance;
  private readonly ctx: EngineContext;
  /** anon_vmas, i_mmap trees and KSM stable nodes (spec §6.1). */
  readonly rmap = new RmapState();
  private readonly mms = new Map<MmId, Mm>();
  private nextMm = 1;
  private nextVma = 1;

  constructor(options: EngineOptions = {}) {
    this.settings = resolveSettings(options);
    this.geometry = geometry(this.settings.paging);
    this.softleaf = softleafTable(this.settings.config, this.settings.semantics);
    this.decodeContext = decodeContext(this.settings);
    this.wasm = new WasmInstance(this.settings.maxMemoryBytes, this.geometry.levels);
    const x = this.wasm.exports;
    softleafCodes(this.softleaf).forEach((code, type) => x.setSoftleafCode(type, code));
    const deviceNs: Namespace = this.settings.deviceModel === 'offset' ? 'device-private' : 'pfn';
    // Device-exclusive entries count as mappings from 6.15 on (spec §1.7); v6.14 predates that.
    x.setRmapConfig(NS_CODE[deviceNs], this.settings.semantics === 'v6.14' ? 0 : 1, this.geometry.swpPfnBits);
    x.setWalkSemantics({ newest: 0, series: 1, 'v6.14': 2 }[this.settings.semantics]);
    this.memory = new PhysMem(this.wasm, this.settings, this.geometry);
    this.folios = new Folios(this.wasm, this.memory);
    this.ctx = {
      geo: this.geometry, decode: this.decodeContext, wasm: this.wasm, mem: this.memory, folios: this.folios,
      rmap: this.rmap, nextVmaId: () => this.nextVma++,
    };
  }

  // --- address spaces ---------------------------------------------------------------------------------

  /** A new, empty address space. */
  createMm(): Mm {
    const mm = new Mm(this.nextMm, this.ctx);
    this.mms.set(this.nextMm++, mm);
    return mm;
  }

  /** The live mm with this id. */
  mm(id: MmId): Mm {
    const mm = this.mms.get(id);
    if (!mm || mm.freed) throw new PvmwError('MM_FREED', `mm ${JSON.stringify(id)} ${mm ? 'was freed' : 'does not exist'}`);
    return mm;
  }

  allMms(): Mm[] {
    return [...this.mms.values()].filter((m) => !m.freed);
  }

  /** Tear an mm down: its entries are cleared (mapcounts follow) and its tables freed. */
  freeMm(id: MmId): void {
    this.mm(id).free();
  }

  // --- memory and folios ------------------------------------------------------------------------------

  /** Add a chunk of device-private memory (settings.deviceChunkPages pages) in the engine's device model. */
  addDeviceMemory(): MemoryRange {
    return this.memory.addDeviceChunk();
  }

  createFolio(spec: FolioSpec): FolioId {
    return this.folios.create(spec);
  }

  /** Create `count` folios back to back (one WebAssembly call); returns the first id (ids step by 2^order). */
  createFolios(spec: FolioSpec, count: number): FolioId {
    return this.folios.createRange(spec, count);
  }

  folio(id: FolioId): FolioInfo {
    return this.folios.info(id);
  }

  /** The folio and page named by (namespace, number), or undefined for a page in no folio; a number beyond
   *  physical and device memory is a PFN_RANGE error. */
  page(namespace: Namespace, number: number): PageInfo | undefined {
    return this.folios.lookup(namespace, number);
  }

  freeFolio(id: FolioId): void {
    this.folios.free(id);
  }

  // --- accounting -------------------------------------------------------------------------------------

  memoryUsage(): MemoryUsage {
    const x = this.wasm.exports;
    const tables = x.tablesInUse() >>> 0;
    const recordBytes = x.recordBytes();
    const memmapBytes = (x.sectionCount() >>> 0) * (x.sectionBytes() >>> 0) + recordBytes;
    const tagBytes = (x.tagChunkCount() >>> 0) * 4096;
    const freeBytes = (x.framesFree() >>> 0) * 4096;
    return {
      wasmBytes: x.memoryBytes(),
      tableBytes: tables * 4096,
      tables,
      memmapBytes,
      recordBytes,
      tagBytes,
      fixedBytes: x.framesBase() + x.memmapFixedBytes(),
      freeBytes,
      headroomBytes: x.memoryBytes() - x.framesTop(),
      folios: x.folioCount() >>> 0,
    };
  }

  /** Folios by order and by kind. */
  folioCensus(): { byOrder: number[]; anon: number; file: number; hugetlb: number; devicePrivate: number; ksm: number } {
    const x = this.wasm.exports;
    const out = x.scratchPtr();
    x.folioStats(out);
    const u = this.wasm.u32().subarray(out >>> 2, (out >>> 2) + 32);
    const flag = (bit: number) => u[19 + bit - 9];
    const total = Array.from(u.subarray(0, 19)).reduce((a, b) => a + b, 0);
    return {
      byOrder: Array.from(u.subarray(0, 19)),
      anon: flag(9),
      file: total - flag(9),
      ksm: flag(10),
      hugetlb: flag(11),
      devicePrivate: flag(17),
    };
  }

  /** Recompute every mapping from the page tables and check the engine's state against it (invariants.ts). */
  checkInvariants(limit?: number): InvariantReport {
    return checkInvariants(this, limit);
  }

  /** The engine's WebAssembly instance, for the layers that drive it in bulk (the walk). @internal */
  wasmInstance(): WasmInstance {
    return this.wasm;
  }

  toString(): string {
    return `pvmw engine (${this.geometry.levels}-level, ${this.settings.semantics}, device model ${this.settings.deviceModel}, RAM ${hex(this.settings.ramPages)} pages)`;
  }
}
