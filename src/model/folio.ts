import { PvmwError, hex } from '../errors.js';
import type { WasmInstance } from '../wasm/loader.js';
import type { Namespace } from './decode.js';
import { PMD_ORDER, PUD_ORDER } from './geometry.js';
import { NS_CODE, type PhysMem } from './physmem.js';

/**
 * Folios (spec §6.5, kernel-operations.md §0.3): naturally aligned blocks of 2^order pages of RAM or
 * device-private memory, anon (mapping = an anon_vma id, index = linear page index) or file (mapping = a file
 * id, index = page-cache index). A folio's id is the global memmap index of its head page (decisions.md Terms:
 * a dense integer naming the folio inside one engine). Mapcounts are kept per page (CONFIG_PAGE_MAPCOUNT, D5),
 * plus the entire and large mapcounts of large folios; content tags are per page (D8).
 */
export type FolioId = number;
export type HugetlbSize = '2M' | '1G';

/** Folio flag bits of the head descriptor (assembly/memmap.ts FOLIO_FLAGS_MASK: bits 9..19). */
export const FOLIO_FLAG = {
  anon: 1 << 9,
  ksm: 1 << 10,
  hugetlb: 1 << 11,
  dirty: 1 << 12,
  swapbacked: 1 << 13,
  locked: 1 << 14,
  lru: 1 << 15,
  mlocked: 1 << 16,
  devicePrivate: 1 << 17,
  hugetlb1G: 1 << 18,
} as const;
/** The order bits of flagWord (assembly/memmap.ts PG_ORDER_MASK). */
export const FOLIO_ORDER_MASK = 0x1f;
export type FolioFlagName = 'ksm' | 'dirty' | 'swapbacked' | 'locked' | 'lru' | 'mlocked';
/** The folio flags a caller may set (the rest follow from the folio's kind). */
export const SETTABLE_FOLIO_FLAGS: readonly FolioFlagName[] = ['ksm', 'dirty', 'swapbacked', 'locked', 'lru', 'mlocked'];
/** Per-page flags as assembly/memmap.ts pageFlags reports them. */
const PG_ANON_EXCLUSIVE = 1 << 7;
const PG_HWPOISON = 1 << 8;
/** Normal folios go up to PMD order (THP); hugetlb folios are 2 MiB or 1 GiB. */
export const MAX_FOLIO_ORDER = PMD_ORDER;
const HUGETLB_ORDER: Record<HugetlbSize, number> = { '2M': PMD_ORDER, '1G': PUD_ORDER };
/** folio->index is kept in 44 bits (4-level VAs need 35, 5-level 44). */
export const INDEX_LIMIT = 2 ** 44;
export const MAPPING_LIMIT = 2 ** 32;

export interface FolioSpec {
  /** Namespace of `number` (default 'pfn'). Device-private folios in the offset model use 'device-private'. */
  namespace?: Namespace;
  /** First pfn or device-private offset; must be aligned to the folio size. */
  number: number;
  /** Order 0 … 9 (default 0); not with hugetlb. */
  order?: number;
  hugetlb?: HugetlbSize;
  /** File id: a page-cache folio. Without it the folio is anonymous. */
  file?: number;
  /** anon_vma id of an anonymous folio (default 0). */
  anonVma?: number;
  /** folio->index (default 0). */
  index?: number;
  /** Folio flags; anon folios are swapbacked unless `swapbacked: false` is given (a lazyfree folio). */
  flags?: Partial<Record<FolioFlagName, boolean>>;
}

export interface FolioInfo {
  id: FolioId;
  namespace: Namespace;
  number: number;
  order: number;
  nrPages: number;
  devicePrivate: boolean;
  hugetlb: HugetlbSize | null;
  anon: boolean;
  file: number | null;
  anonVma: number | null;
  index: number;
  /** folio_mapcount: all mappings. */
  mapcount: number;
  /** PMD/PUD mappings (large folios). */
  entireMapcount: number;
  flags: Record<FolioFlagName, boolean>;
}

export interface PageInfo {
  folio: FolioId;
  /** Page number inside the folio. */
  page: number;
  /** folio_precise_page_mapcount: the page's PTE mappings plus the folio's entire mapcount. */
  mapcount: number;
  anonExclusive: boolean;
  hwpoison: boolean;
  /** Content tag (D8); 0 is ZERO. */
  tag: number;
}

function wholeIn(name: string, v: unknown, limit: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= limit) {
    throw new PvmwError('BAD_SETTING', `${name} must be a whole number from 0 to ${hex(limit - 1)}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export class Folios {
  constructor(
    private readonly wasm: WasmInstance,
    private readonly mem: PhysMem,
  ) {}

  /** Create a folio. Every check happens first; a failure leaves memory unchanged. */
  create(spec: FolioSpec): FolioId {
    return this.createRange(spec, 1);
  }

  /**
   * Create `count` folios of the same kind back to back from spec.number, each one's index following the
   * previous folio's pages (a file's page cache, or an anon range). One WebAssembly call creates them all;
   * the ids are first + k·2^order. A failure creates none.
   */
  createRange(spec: FolioSpec, count: number): FolioId {
    if (!Number.isInteger(count) || count < 1 || count >= 2 ** 32) {
      throw new PvmwError('BAD_RANGE', `folio count must be a whole number from 1 to ${hex(2 ** 32 - 1)}, got ${JSON.stringify(count)}`);
    }
    const namespace = spec.namespace ?? 'pfn';
    if (namespace !== 'pfn' && namespace !== 'device-private') {
      throw new PvmwError('BAD_SETTING', `namespace must be pfn or device-private, got ${JSON.stringify(namespace)}`);
    }
    let order: number;
    let flags = 0;
    if (spec.hugetlb !== undefined) {
      if (!(spec.hugetlb in HUGETLB_ORDER)) throw new PvmwError('BAD_ORDER', `hugetlb size must be 2M or 1G, got ${JSON.stringify(spec.hugetlb)}`);
      if (spec.order !== undefined && spec.order !== HUGETLB_ORDER[spec.hugetlb]) {
        throw new PvmwError('BAD_ORDER', `a ${spec.hugetlb} hugetlb folio has order ${HUGETLB_ORDER[spec.hugetlb]}, not ${spec.order}`);
      }
      order = HUGETLB_ORDER[spec.hugetlb];
      flags |= FOLIO_FLAG.hugetlb | (spec.hugetlb === '1G' ? FOLIO_FLAG.hugetlb1G : 0);
    } else {
      order = spec.order ?? 0;
      if (!Number.isInteger(order) || order < 0 || order > MAX_FOLIO_ORDER) {
        throw new PvmwError('BAD_ORDER', `folio order ${JSON.stringify(spec.order)} does not exist (0 … ${MAX_FOLIO_ORDER}, or hugetlb 2M/1G)`);
      }
    }
    const nr = 2 ** order;
    const range = this.mem.require(namespace, spec.number, nr * count);
    if (spec.number % nr !== 0) {
      throw new PvmwError('BAD_ORDER', `${namespace === 'pfn' ? 'pfn' : 'offset'} ${hex(spec.number)} is not aligned to an order-${order} folio (${hex(nr)} pages)`);
    }
    if (range.kind === 'device-private') {
      if (spec.hugetlb) throw new PvmwError('BAD_ORDER', `device-private memory at ${hex(spec.number)} cannot hold hugetlb folios`);
      flags |= FOLIO_FLAG.devicePrivate;
    }
    let mapping = 0;
    if (spec.file !== undefined) {
      mapping = wholeIn('file', spec.file, MAPPING_LIMIT);
      if (spec.anonVma !== undefined) throw new PvmwError('BAD_SETTING', `a folio is anon or file, not both (file ${spec.file}, anonVma ${spec.anonVma})`);
    } else {
      // Anon folios are swap-backed from birth (folio_add_new_anon_rmap); only MADV_FREE clears it (lazyfree).
      flags |= FOLIO_FLAG.anon | (spec.flags?.swapbacked === false ? 0 : FOLIO_FLAG.swapbacked);
      mapping = wholeIn('anonVma', spec.anonVma ?? 0, MAPPING_LIMIT);
    }
    const index = wholeIn('index', spec.index ?? 0, INDEX_LIMIT);
    if (index + (count - 1) * nr >= INDEX_LIMIT) {
      throw new PvmwError('BAD_SETTING', `the last folio's index ${hex(index + (count - 1) * nr)} passes ${hex(INDEX_LIMIT - 1)}`);
    }
    for (const [k, v] of Object.entries(spec.flags ?? {})) {
      if (!SETTABLE_FOLIO_FLAGS.includes(k as FolioFlagName)) throw new PvmwError('BAD_SETTING', `unknown folio flag ${JSON.stringify(k)}`);
      if (v) flags |= FOLIO_FLAG[k as FolioFlagName];
    }
    const g = range.start + (spec.number - range.base);
    const x = this.wasm.exports;
    const st = x.folioCreateRange(g, order, count, flags, mapping >>> 0, index, nr);
    if (st === -3) {
      const busy = this.mem.numberOf(x.errorAt());
      throw new PvmwError('FOLIO_BUSY', `${hex(busy.number)} already belongs to folio ${hex(x.folioOf(x.errorAt()))}; cannot create an order-${order} folio at ${hex(spec.number)}`);
    }
    if (st === -1) throw new PvmwError('MEMORY_LIMIT', `creating the folio at ${hex(spec.number)} would pass the engine's memory ceiling`);
    if (st !== 0) throw new PvmwError('INTERNAL', `folioCreate returned ${st}`);
    return g;
  }

  /** Is `id` the id of a live folio? */
  exists(id: FolioId): boolean {
    return Number.isInteger(id) && id >= 0 && id < 2 ** 32 && this.wasm.exports.isFolio(id) !== 0;
  }

  require(id: FolioId): void {
    if (!this.exists(id)) {
      throw new PvmwError('NO_FOLIO', `no folio has id ${Number.isInteger(id) && id >= 0 ? hex(id) : JSON.stringify(id)}`);
    }
  }

  info(id: FolioId): FolioInfo {
    this.require(id);
    return this.infoOf(id, this.flagWord(id));
  }

  /** info of a folio known to be live (a head from headOf or headOfIndex) whose flagWord was read already. */
  infoOf(id: FolioId, word: number): FolioInfo {
    const x = this.wasm.exports;
    const w = word & ~FOLIO_ORDER_MASK;
    const order = word & FOLIO_ORDER_MASK;
    const { namespace, number } = this.mem.numberOf(id);
    const anon = (w & FOLIO_FLAG.anon) !== 0;
    const mapping = x.folioMapping(id) >>> 0;
    const flags: Record<FolioFlagName, boolean> = {
      ksm: (w & FOLIO_FLAG.ksm) !== 0,
      dirty: (w & FOLIO_FLAG.dirty) !== 0,
      swapbacked: (w & FOLIO_FLAG.swapbacked) !== 0,
      locked: (w & FOLIO_FLAG.locked) !== 0,
      lru: (w & FOLIO_FLAG.lru) !== 0,
      mlocked: (w & FOLIO_FLAG.mlocked) !== 0,
    };
    return {
      id,
      namespace,
      number,
      order,
      nrPages: 2 ** order,
      devicePrivate: (w & FOLIO_FLAG.devicePrivate) !== 0,
      hugetlb: (w & FOLIO_FLAG.hugetlb) === 0 ? null : (w & FOLIO_FLAG.hugetlb1G) !== 0 ? '1G' : '2M',
      anon,
      file: anon ? null : mapping,
      anonVma: anon ? mapping : null,
      index: x.folioIndex(id),
      mapcount: x.folioMapcount(id) >>> 0,
      entireMapcount: order === 0 ? 0 : x.entireMapcount(id) >>> 0, // order 0 has none (assembly/memmap.ts)
      flags,
    };
  }

  /** The folio and page holding (namespace, number), or undefined if that page belongs to no folio. */
  lookup(namespace: Namespace, number: number): PageInfo | undefined {
    const g = this.mem.index(namespace, number);
    const x = this.wasm.exports;
    const head = x.folioOf(g);
    if (head < 0) return undefined;
    const w = x.pageFlags(g) >>> 0;
    return {
      folio: head,
      page: g - head,
      mapcount: (x.pageMapcount(g) >>> 0) + (x.entireMapcount(head) >>> 0),
      anonExclusive: (w & PG_ANON_EXCLUSIVE) !== 0,
      hwpoison: (w & PG_HWPOISON) !== 0,
      tag: x.tagGet(g) >>> 0,
    };
  }

  /** The head (folio id) of the folio holding (namespace, number), or -1 if that page is in no folio. */
  headOf(namespace: Namespace, number: number): FolioId {
    return this.wasm.exports.folioOf(this.mem.index(namespace, number));
  }

  /** The global memmap index of (namespace, number), or -1 if it lies beyond physical and device memory. */
  indexAt(namespace: Namespace, number: number): number {
    return this.wasm.exports.indexOf(NS_CODE[namespace], number);
  }

  /** The head (folio id) of the folio holding global memmap index g (from indexAt), or -1. */
  headOfIndex(g: number): FolioId {
    return this.wasm.exports.folioOf(g);
  }

  /**
   * A cheap look at a folio's kind (no FolioInfo): its FOLIO_FLAG bits | its order (bits 0..4). `head` must be a
   * folio's id, as headOf and headOfIndex return.
   */
  flagWord(head: FolioId): number {
    const x = this.wasm.exports;
    return (x.folioFlags(head) >>> 0) | (x.folioOrder(head) & FOLIO_ORDER_MASK);
  }

  /** folio_mapcount (FolioInfo.mapcount) of a live folio, read alone. */
  mapcount(id: FolioId): number {
    this.require(id);
    return this.wasm.exports.folioMapcount(id) >>> 0;
  }

  /** Every live folio's id, in memmap order. */
  *all(): Generator<FolioId> {
    const x = this.wasm.exports;
    for (let g = x.nextFolio(0); g >= 0; g = x.nextFolio(g + 1)) yield g;
  }

  /** Free a folio that nothing maps. */
  free(id: FolioId): void {
    const f = this.info(id);
    if (f.mapcount !== 0) throw new PvmwError('FOLIO_BUSY', `folio ${hex(id)} is still mapped ${f.mapcount} times`);
    this.wasm.exports.folioFree(id);
  }

  /**
   * Split a large folio that nothing maps into 2^(order − newOrder) folios of `newOrder` (the memmap half of
   * kernel-operations.md §6.2 step 5, uniform split; assembly/folio-split.ts): each keeps the mapping, takes
   * index = old index + its offset, the folio flags, its pages' AnonExclusive / hwpoison bits and content tags.
   * Returns the new folios' ids in page order (the first is `id`). A mapped folio is FOLIO_BUSY, a hugetlb one
   * or a newOrder not below the order BAD_ORDER, passing the memory ceiling MEMORY_LIMIT; nothing changes then.
   */
  split(id: FolioId, newOrder: number): FolioId[] {
    const f = this.info(id);
    if (!Number.isInteger(newOrder) || newOrder < 0 || newOrder >= f.order || f.hugetlb) {
      throw new PvmwError('BAD_ORDER', `folio ${hex(id)} of order ${f.order}${f.hugetlb ? ' (hugetlb)' : ''} cannot be split to order ${JSON.stringify(newOrder)}`);
    }
    const x = this.wasm.exports;
    const st = x.folioSplit(id, newOrder);
    if (st === -3) throw new PvmwError('FOLIO_BUSY', `folio ${hex(id)} is still mapped (page ${hex(x.errorAt() - id)}); it cannot be split`);
    if (st === -1) throw new PvmwError('MEMORY_LIMIT', `splitting folio ${hex(id)} would pass the engine's memory ceiling`);
    if (st !== 0) throw new PvmwError('INTERNAL', `folioSplit returned ${st}`);
    const step = 2 ** newOrder;
    return Array.from({ length: f.nrPages / step }, (_, k) => id + k * step);
  }

  /** Is page `page` of a folio AnonExclusive (kernel-operations.md §0.3)? */
  anonExclusive(id: FolioId, page: number): boolean {
    return (this.wasm.exports.pageFlags(id + page) & PG_ANON_EXCLUSIVE) !== 0;
  }

  /** Set or clear AnonExclusive on `count` pages of a folio from page `page` (kernel-operations.md §0.3). */
  setAnonExclusive(id: FolioId, page: number, count: number, on: boolean): void {
    this.require(id);
    this.wasm.exports.pageSetFlags(id + page, count, on ? PG_ANON_EXCLUSIVE : 0, on ? 0 : PG_ANON_EXCLUSIVE);
  }

  /** Set and clear settable folio flags. */
  setFlags(id: FolioId, flags: Partial<Record<FolioFlagName, boolean>>): void {
    this.require(id);
    let set = 0;
    let clear = 0;
    for (const [k, v] of Object.entries(flags)) {
      if (!SETTABLE_FOLIO_FLAGS.includes(k as FolioFlagName)) throw new PvmwError('BAD_SETTING', `unknown folio flag ${JSON.stringify(k)}`);
      if (v) set |= FOLIO_FLAG[k as FolioFlagName];
      else clear |= FOLIO_FLAG[k as FolioFlagName];
    }
    this.wasm.exports.folioSetFlags(id, set, clear);
  }

  /** Set folio->mapping (an anon_vma id, a KSM stable node id, or for file folios the file id) and folio->index. */
  setMapping(id: FolioId, mapping: number, index: number): void {
    this.require(id);
    wholeIn('mapping', mapping, MAPPING_LIMIT);
    wholeIn('index', index, INDEX_LIMIT);
    this.wasm.exports.folioSetMapping(id, mapping, index);
  }

  /** Set the content tag (D8) of `count` pages of a folio from page `page`. */
  setTag(id: FolioId, page: number, count: number, tag: number): void {
    const f = this.info(id);
    if (!Number.isInteger(page) || !Number.isInteger(count) || page < 0 || count < 1 || page + count > f.nrPages) {
      throw new PvmwError('BAD_RANGE', `pages ${page} … ${page + count - 1} are not inside folio ${hex(id)} of ${f.nrPages} pages`);
    }
    wholeIn('tag', tag, 2 ** 32);
    if (this.wasm.exports.tagSet(id + page, count, tag >>> 0) === -1) {
      throw new PvmwError('MEMORY_LIMIT', `tagging folio ${hex(id)} would pass the engine's memory ceiling`);
    }
  }
}
