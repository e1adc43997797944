import { PvmwError, hex } from '../errors.js';
import type { WasmInstance } from '../wasm/loader.js';
import { decodeEntry, type DecodeContext, type DecodedEntry } from './decode.js';
import { encodePresent, encodeSoftleaf, rawFromBigInt, rawToBigInt, LEAF_PAGES, type PresentBits, type RawEntry, type SoftleafSpec } from './entry.js';
import { FOLIO_FLAG, type Folios, type PageInfo } from './folio.js';
import { checkRange, LEAF_LEVELS, leafLevel, PAGE_SIZE, type Geometry, type LeafLevel, type LevelName } from './geometry.js';
import type { PhysMem } from './physmem.js';
import { isDevicePrivateKind, isMigration, type SoftleafKind } from './softleaf.js';
import { VmaSet, linearPageIndex, type Vma, type VmaSpec } from './vma.js';
import type { RmapState } from '../rmap/rmap-state.js';

/** What the engine shares with each of its address spaces. */
export interface EngineContext {
  geo: Geometry;
  decode: DecodeContext;
  wasm: WasmInstance;
  mem: PhysMem;
  folios: Folios;
  rmap: RmapState;
  /** Engine-wide VMA ids (rmap trees hold VMAs of many mms). */
  nextVmaId: () => number;
}

/** A present leaf: the pfn and any of its §3.2 bits. */
export type PresentSpec = { kind: 'present'; number: number } & Partial<PresentBits>;
/** An entry to install: present, or any softleaf (entry.ts SoftleafSpec). */
export type EntrySpec = PresentSpec | SoftleafSpec;

export interface MapSpec {
  /** Level of the entries (default 'pte'). */
  level?: LeafLevel;
  /** Number of consecutive entries (default 1). pfns and offsets advance by the pages each entry maps. */
  count?: number;
  entry: EntrySpec;
}

/** One level of a translation, root first (like crash's vtop). */
export interface TraceStep {
  level: LevelName;
  raw: RawEntry;
  entry: DecodedEntry;
}

export interface Translation {
  address: number;
  steps: TraceStep[];
  /** The entry where the descent ended (a leaf, or none). */
  leaf: TraceStep;
  /** The folio page the leaf names (maps, or for a softleaf refers to), if it names one. */
  page?: PageInfo;
  /** Whether the leaf is a mapping of that page (counted in its mapcount, kernel-operations.md §0.2). */
  maps: boolean;
}

const HEIGHT: Record<LeafLevel, number> = { pte: 0, pmd: 1, pud: 2 };
const HUGETLB_LEVEL = { '2M': 'pmd', '1G': 'pud' } as const;

/** The level name of a height (0 = PTE) with this geometry. */
export function levelOfHeight(geo: Geometry, h: number): LevelName {
  return geo.table[geo.table.length - 1 - h].name;
}

/**
 * An address space (mm_struct): its page tables in WebAssembly memory and its VMAs. Installing entries keeps
 * the mapcounts of the folios they map (assembly/mapcount.ts decides which entries are mappings); every
 * check runs before anything changes.
 */
export class Mm {
  readonly vmas: VmaSet;
  private rootAddr: number;

  constructor(
    readonly id: number,
    private readonly ctx: EngineContext,
  ) {
    this.vmas = new VmaSet(ctx.nextVmaId, id);
    const root = ctx.wasm.exports.ptAllocRoot();
    if (root === 0) throw new PvmwError('MEMORY_LIMIT', `no memory left for the page tables of mm ${id}`);
    this.rootAddr = root;
  }

  get freed(): boolean {
    return this.rootAddr === 0;
  }

  /** The root table's address in linear memory (for the walk engine). */
  get root(): number {
    if (this.freed) throw new PvmwError('MM_FREED', `mm ${this.id} was freed`);
    return this.rootAddr;
  }

  /**
   * Entry `index` (0 … 511) of the table at linear-memory address `table` (the root, or the address a table
   * entry's pfn field holds). A plain read of engine memory, for walks written outside WebAssembly (the
   * TypeScript reference walk).
   */
  readEntry(table: number, index: number): RawEntry {
    const u32 = this.ctx.wasm.u32();
    const i = (table >>> 2) + index * 2;
    return { lo: u32[i] >>> 0, hi: u32[i + 1] >>> 0 };
  }

  /** Add a VMA (a file VMA goes into its file's i_mmap tree). */
  addVma(spec: VmaSpec): Vma {
    void this.root;
    const vma = this.vmas.insert(spec, this.ctx.geo);
    this.ctx.rmap.iMmap.insert(vma);
    return vma;
  }

  /** Remove a VMA together with every entry inside it (mapcounts follow) and its rmap links. */
  removeVma(vma: Vma): void {
    this.clear(vma.start, vma.end);
    this.detachVma(vma);
  }

  /** Take a VMA out of the mm and the rmap trees, leaving the page tables alone (the caller zapped them). */
  detachVma(vma: Vma): void {
    if (!this.vmas.remove(vma)) return;
    this.ctx.rmap.anon.unlink(vma);
    this.ctx.rmap.iMmap.remove(vma);
  }

  /** Install `count` entries from `addr`, which must all be none. */
  map(addr: number, spec: MapSpec): void {
    const root = this.root;
    const { geo, wasm } = this.ctx;
    const level = leafLevel(spec.level ?? 'pte');
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count >= 2 ** 32) {
      throw new PvmwError('BAD_RANGE', `count must be a whole number from 1 to ${hex(2 ** 32 - 1)}, got ${JSON.stringify(spec.count)}`);
    }
    const size = 2 ** LEAF_LEVELS[level];
    const end = addr + count * size;
    checkRange(geo, addr, end, size);
    const vma = this.vmaFor(addr, end, level);

    const entry = spec.entry;
    const stride = this.stride(entry, level);
    const first = this.encode(level, entry, 0);
    const last = count > 1 ? this.encode(level, entry, (count - 1) * stride) : first; // must be valid too
    // Swap offsets are stored inverted, so type 0 with offset 2^50−1 encodes to all zeroes: a none entry.
    // Values are affine in the number, so only the ends can reach zero.
    for (const [which, raw] of [['first', first], ['last', last]] as const) {
      if (raw.lo === 0 && raw.hi === 0) {
        throw new PvmwError('BAD_ENTRY', `the ${which} entry of this ${level} run encodes to 0, which reads as none (swap type 0, offset ${hex(2 ** 50 - 1)})`);
      }
    }
    this.checkLeafKind(vma, level, first);
    const step = count > 1 ? this.encode(level, entry, stride) : first;
    const stepRaw = rawFromBigInt((rawToBigInt(step) - rawToBigInt(first)) & 0xffff_ffff_ffff_ffffn);
    const anonVmas = this.checkTargets(vma, addr, level, first, count, stride);

    const x = wasm.exports;
    const st = x.ptSetRange(root, addr, HEIGHT[level], count, first.lo, first.hi, stepRaw.lo, stepRaw.hi, 1);
    if (st === -2) throw this.conflict('cannot install', x.errorAt(), x.errorHeight());
    if (st === -1) throw new PvmwError('MEMORY_LIMIT', `installing ${count} ${level} entries at ${hex(addr)} would pass the engine's memory ceiling`);
    if (st !== 0) throw new PvmwError('INTERNAL', `ptSetRange returned ${st}`);
    x.ptAccountRange(root, addr, end);
    for (const id of anonVmas) this.ctx.rmap.anon.adopt(vma, id);
  }

  /** Clear every entry mapping [start, end); returns how many were cleared. */
  clear(start: number, end: number): number {
    const root = this.root;
    checkRange(this.ctx.geo, start, end);
    const x = this.ctx.wasm.exports;
    const st = x.ptClearRange(root, start, end, 1);
    if (st === -2) throw this.conflict('cannot clear part of', x.errorAt(), x.errorHeight());
    if (st !== 0) throw new PvmwError('INTERNAL', `ptClearRange returned ${st}`);
    return x.resultLo() >>> 0;
  }

  /**
   * Split the PMD-level leaf of the 2 MiB block holding `addr` into a PTE table of the same pages
   * (kernel-operations §6.1, split_huge_pmd without freezing; assembly/split.ts): a present THP PMD (P or
   * PROTNONE), a PMD migration entry or a device-private PMD becomes 512 PTEs, pfn/offset + i, the same bits.
   * Mappings move from the folio's entire mapcount to its pages. Anything else there (none, a PTE table, a
   * hugetlb leaf) is ENTRY_CONFLICT, no frame for the table MEMORY_LIMIT; a failure changes nothing.
   */
  splitPmd(addr: number): void {
    this.changePmd(addr, 'ptSplitPmd', 'split', 'a huge PMD, PMD migration or device-private entry', 'a PTE table frame');
  }

  /**
   * Zap and free the PTE table of the 2 MiB block holding `addr` (D4 'free-pte-table'): every mapping in it
   * gives its mapcount back and the pmd entry becomes none. ENTRY_CONFLICT (nothing changed) if the pmd entry
   * is not a table pointer.
   */
  freePteTable(addr: number): void {
    this.changePmd(addr, 'ptFreePteTable', 'free the PTE table', 'a PTE table');
  }

  /**
   * Move the PTE table of the 2 MiB block holding `addr` to another frame (D4 'replace-pte-table'): the same
   * entries and mapcounts, the pmd entry's value changes. ENTRY_CONFLICT if the pmd entry is not a table
   * pointer, MEMORY_LIMIT if no frame is left; a failure changes nothing.
   */
  replacePteTable(addr: number): void {
    this.changePmd(addr, 'ptReplacePteTable', 'replace the PTE table', 'a PTE table', 'a new frame');
  }

  /**
   * One of the table mutations above on the pmd entry of the 2 MiB block holding `addr`: check the address, run
   * it, and explain a refusal by what the pmd entry holds. `needs`: the frame it takes (for MEMORY_LIMIT).
   */
  private changePmd(addr: number, fn: 'ptSplitPmd' | 'ptFreePteTable' | 'ptReplacePteTable', what: string, wants: string, needs?: string): void {
    const root = this.root;
    if (typeof addr !== 'number' || !Number.isInteger(addr) || addr < 0) {
      throw new PvmwError('BAD_ADDRESS', `address ${String(addr)} is not a non-negative whole number`);
    }
    checkRange(this.ctx.geo, addr - (addr % PAGE_SIZE), addr - (addr % PAGE_SIZE) + PAGE_SIZE);
    const block = addr - (addr % 2 ** LEAF_LEVELS.pmd);
    const st = this.ctx.wasm.exports[fn](root, block);
    if (st === 0) return;
    if (st === -1 && needs) throw new PvmwError('MEMORY_LIMIT', `to ${what} at ${hex(block)} needs ${needs}, which would pass the engine's memory ceiling`);
    if (st !== -2) throw new PvmwError('INTERNAL', `${fn} returned ${st}`);
    const t = this.translate(block);
    const s = t.steps.find((step) => step.level === 'pmd');
    const hugetlb = t.page && this.ctx.folios.info(t.page.folio).hugetlb ? 'hugetlb ' : '';
    const found = !s ? `missing (the ${t.leaf.level} entry above it is ${t.leaf.entry.kind === 'none' ? 'none' : 'a leaf'})`
      : s.entry.kind === 'none' ? 'none'
      : s.entry.kind === 'table' ? 'a PTE table'
      : s.entry.kind === 'present' ? (hugetlb ? 'a hugetlb leaf' : 'a huge leaf')
      : `a ${hugetlb}${s.entry.kind} entry`;
    throw new PvmwError('ENTRY_CONFLICT', `cannot ${what}: the pmd entry at ${hex(block)} is ${found}, not ${wants}`);
  }

  /** The entry mapping `addr`: the leaf at any level, or the none entry where the descent stopped. */
  entryAt(addr: number): TraceStep {
    return this.translate(addr).leaf;
  }

  /** Walk the tables for `addr` from the root, reporting every level visited (like crash's vtop). */
  translate(addr: number): Translation {
    const root = this.root;
    const { geo, wasm } = this.ctx;
    checkRange(geo, addr - (addr % PAGE_SIZE), addr - (addr % PAGE_SIZE) + PAGE_SIZE);
    const x = wasm.exports;
    const trace = x.scratchPtr();
    x.ptLookup(root, addr - (addr % PAGE_SIZE), 0, trace);
    const stopHeight = x.resultHeight();
    const u32 = wasm.u32();
    const steps: TraceStep[] = [];
    for (let h = geo.levels - 1; h >= stopHeight; h--) {
      const i = (trace >>> 2) + 2 * (geo.levels - 1 - h);
      const raw = { lo: u32[i] >>> 0, hi: u32[i + 1] >>> 0 };
      const level = levelOfHeight(geo, h);
      steps.push({ level, raw, entry: decodeEntry(raw, level, this.ctx.decode) });
    }
    const leaf = steps[steps.length - 1];
    const t: Translation = { address: addr, steps, leaf, maps: false };
    const { namespace, number } = leaf.entry;
    if (stopHeight <= 2 && namespace && number !== null && this.ctx.mem.rangeOf(namespace, number)) {
      // The page at addr (inside a huge leaf, the page that many pages in); for softleaves, the page named.
      const inLeaf = Math.floor((addr % 2 ** LEAF_LEVELS[leafLevel(leaf.level)]) / PAGE_SIZE);
      t.page = this.ctx.folios.lookup(namespace, number + inLeaf);
      t.maps = x.entryMappedIndex(leaf.raw.lo, leaf.raw.hi, stopHeight) >= 0 && t.page !== undefined;
    }
    return t;
  }

  /** Tables per level (root first) and leaf entries per level. */
  stats(): { tables: Record<string, number>; leaves: Record<LeafLevel, number> } {
    const root = this.root;
    const { geo, wasm } = this.ctx;
    const out = wasm.exports.scratchPtr();
    wasm.exports.ptStats(root, out);
    const u32 = wasm.u32();
    const tables: Record<string, number> = {};
    for (let h = geo.levels - 1; h >= 0; h--) tables[levelOfHeight(geo, h)] = u32[(out >>> 2) + h];
    return { tables, leaves: { pte: u32[(out >>> 2) + 5], pmd: u32[(out >>> 2) + 6], pud: u32[(out >>> 2) + 7] } };
  }

  /** Tear down: clear every entry (mapcounts follow), unlink every VMA from rmap and free all tables. */
  free(): void {
    const root = this.root;
    for (const v of this.vmas.all()) this.detachVma(v);
    const x = this.ctx.wasm.exports;
    x.ptClearRange(root, 0, this.ctx.geo.taskSize, 1);
    x.ptFreeRoot(root);
    this.rootAddr = 0;
  }

  // --- checks -----------------------------------------------------------------------------------------

  /** The one VMA holding [start, end), whose kind must take leaves of this level. */
  private vmaFor(start: number, end: number, level: LeafLevel): Vma {
    const v = this.vmas.find(start);
    if (!v || end > v.end) {
      throw new PvmwError('NO_VMA', `[${hex(start)}, ${hex(end)}) is not inside one VMA of mm ${this.id}`);
    }
    const want = v.flags.hugetlb ? HUGETLB_LEVEL[v.flags.hugetlb] : null;
    if (want ? level !== want : level === 'pud') {
      throw new PvmwError('BAD_ENTRY', want
        ? `hugetlb ${v.flags.hugetlb} VMA ${hex(v.start)}-${hex(v.end)} takes ${want} entries, not ${level}`
        : `${level} leaves exist only in 1G hugetlb VMAs; VMA ${hex(v.start)}-${hex(v.end)} is not one`);
    }
    return v;
  }

  /**
   * Which non-present entries may stand above the PTE level (spec §3.4: valid PMD softleaves are migration
   * and device-private entries). hugetlb leaves follow the PTE rules at their own level (spec §2), so a
   * hugetlb VMA also takes hwpoison entries and markers there.
   */
  private checkLeafKind(vma: Vma, level: LeafLevel, raw: RawEntry): void {
    if (level === 'pte') return;
    const kind = decodeEntry(raw, level, this.ctx.decode).kind;
    if (kind === 'present' || kind === 'table' || kind === 'none' || kind === 'unknown') return;
    if (isMigration(kind) || isDevicePrivateKind(kind)) return;
    const hugetlb = vma.flags.hugetlb !== null;
    if (hugetlb && (kind === 'hwpoison' || kind === 'marker')) return;
    throw new PvmwError('BAD_ENTRY', `${kind} entries are not valid ${level} leaves${hugetlb ? ' of a hugetlb VMA' : ''} (spec §3.4: only migration and device-private entries are)`);
  }

  /** Pages the number advances by per entry (0: the same value each time). */
  private stride(entry: EntrySpec, level: LeafLevel): number {
    if (entry.kind === 'marker') return 0;
    if (entry.kind === 'swap') return 1;
    return LEAF_PAGES[level];
  }

  private encode(level: LeafLevel, entry: EntrySpec, advance: number): RawEntry {
    const { decode } = this.ctx;
    if (entry.kind === 'present') {
      const { kind: _k, number, ...bits } = entry;
      return encodePresent(level, number + advance, bits);
    }
    if (entry.kind === 'marker') return encodeSoftleaf(decode.table, decode.swpPfnBits, entry);
    if (entry.kind === 'swap') return encodeSoftleaf(decode.table, decode.swpPfnBits, { ...entry, offset: entry.offset + advance });
    return encodeSoftleaf(decode.table, decode.swpPfnBits, { ...entry, number: entry.number + advance });
  }

  /**
   * The numbers the entries name must be in memory of the right kind; entries that name folio pages must name
   * pages of folios, and mappings and migration entries must name folios rmap can find from this VMA
   * (anon or the same file, and folio index + page = linear page index: kernel-operations.md §0.3).
   * Returns the anon_vma ids of the anon folios named, which the VMA is then linked to (AnonVmas.adopt).
   */
  private checkTargets(vma: Vma, addr: number, level: LeafLevel, first: RawEntry, count: number, stride: number): number[] {
    const { decode, mem, wasm } = this.ctx;
    const d = decodeEntry(first, level, decode);
    if (d.kind === 'swap' || d.kind === 'marker' || d.namespace === null || d.number === null) return [];
    const pages = (count - 1) * stride + LEAF_PAGES[level];
    const range = mem.require(d.namespace, d.number, pages);
    const kind = d.kind as SoftleafKind | 'present';
    const device = kind !== 'present' && isDevicePrivateKind(kind);
    if (device && range.kind !== 'device-private') {
      throw new PvmwError('PFN_RANGE', `${kind} entry names ${hex(d.number)}, which is not device-private memory`);
    }
    if (!device && range.kind === 'device-private' && !(kind !== 'present' && isMigration(kind))) {
      throw new PvmwError('PFN_RANGE', `${kind} entry names ${hex(d.number)}, which is device-private memory`);
    }
    if (!device && range.kind === 'device-private' && decode.table.typeOf['migration-device-private-read'] !== undefined) {
      // With the series' types, a device page's migration entry is a device-private migration entry (§4.3 patch 9).
      throw new PvmwError('BAD_ENTRY', `${kind} entry names device-private page ${hex(d.number)}: with series semantics that takes a migration-device-private entry`);
    }
    if (kind === 'present' && d.present?.special) return []; // pte_special: no struct page behind it
    const x = wasm.exports;
    const g0 = range.start + (d.number - range.base);
    const forbid = level === 'pte' ? FOLIO_FLAG.hugetlb : 0;
    const lpi = linearPageIndex(vma, addr);
    const vmaKind = vma.anon ? 1 : vma.flags.shared ? 0 : 2;
    const bad = x.firstUnfitPage(g0, pages, forbid, kind === 'hwpoison' ? 0 : 1, vmaKind, vma.file ?? 0, lpi);
    if (bad >= 0) {
      const n = range.base + (bad - range.start);
      const what = `${d.namespace === 'pfn' ? 'pfn' : 'device-private offset'} ${hex(n)}`;
      if (x.folioOf(bad) < 0) throw new PvmwError('NO_FOLIO', `${what} belongs to no folio`);
      const f = this.ctx.folios.info(x.folioOf(bad));
      if (level === 'pte' && f.hugetlb) throw new PvmwError('BAD_ENTRY', `hugetlb folio page ${hex(n)} cannot be mapped by a PTE`);
      const at = addr + (bad - g0) * PAGE_SIZE;
      const why = (f.anon && vmaKind === 0) || (!f.anon && (vmaKind === 1 || f.file !== vma.file))
        ? `the folio is ${f.anon ? 'anon' : `of file ${f.file}`}, the VMA ${vma.anon ? 'anon' : `${vma.flags.shared ? 'shared' : 'private'} of file ${vma.file}`}`
        : `its page index ${hex(f.index + (bad - f.id))} is not the linear page index ${hex(lpi + (bad - g0))} of ${hex(at)}`;
      throw new PvmwError('BAD_ENTRY', `${what} cannot be mapped at ${hex(at)}: rmap would not find it there (${why})`);
    }
    const anonVmas: number[] = [];
    if ((vma.anon || !vma.flags.shared) && kind !== 'hwpoison') {
      // One call per run of folios with the same anon_vma.
      let cur = 0xffff_ffff;
      for (let g = x.firstOtherAnonVma(g0, pages, cur); g >= 0; g = x.firstOtherAnonVma(g, g0 + pages - g, cur)) {
        cur = x.folioMapping(x.folioOf(g)) >>> 0;
        if (!anonVmas.includes(cur)) anonVmas.push(cur);
      }
    }
    if (level === 'pte') return anonVmas;
    const order = level === 'pmd' ? 9 : 18;
    const hugetlbVma = vma.flags.hugetlb !== null;
    for (let i = 0; i < count; i++) {
      const g = g0 + i * stride;
      if (x.isFolio(g) === 0 || x.folioOrder(g) !== order) {
        throw new PvmwError('BAD_ENTRY', `a ${level} leaf must map a whole order-${order} folio; ${hex(d.number + i * stride)} is not the head of one`);
      }
      if (hugetlbVma !== ((x.folioFlags(g) & FOLIO_FLAG.hugetlb) !== 0)) {
        throw new PvmwError('BAD_ENTRY', hugetlbVma
          ? `hugetlb VMA ${hex(vma.start)}-${hex(vma.end)} can only map hugetlb folios; ${hex(d.number + i * stride)} is not one`
          : `hugetlb folio ${hex(d.number + i * stride)} can only be mapped in a hugetlb VMA`);
      }
    }
    return anonVmas;
  }

  private conflict(what: string, at: number, height: number): PvmwError {
    const level = levelOfHeight(this.ctx.geo, height);
    return new PvmwError('ENTRY_CONFLICT', `${what} ${hex(at)}: the ${level} entry there is in the way (a leaf, a table, or not none)`);
  }
}
