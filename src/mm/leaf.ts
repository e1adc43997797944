import type { Engine } from '../model/engine.js';
import { decodeEntry, entryClass, type DecodedEntry, type Namespace } from '../model/decode.js';
import {
  checkRaw, encodePresent, encodeSoftleaf, presentPfn, pteProtnone, pteSpecial, type PresentBits, type RawEntry, type SoftleafSpec,
} from '../model/entry.js';
import { FOLIO_FLAG, FOLIO_ORDER_MASK, type FolioId, type FolioInfo } from '../model/folio.js';
import { LEAF_LEVELS, type LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { forEachLeaf, setLeaves, type Leaf, type LeafList } from '../model/pte-batch.js';
import type { Vma } from '../model/vma.js';
import { opsState } from './state.js';

/**
 * The per-entry vocabulary of the operations (kernel-operations.md §0.2): a leaf read from the tables with its
 * decoded entry, the folio and page it names, and its entry kind in the spec's abbreviations; building present
 * and softleaf entries; the shared zero pages; and the end of a folio's life.
 */
export type EntryKindName =
  | 'NONE' | 'ZP' | 'P' | 'PL' | 'PMD' | 'HZP' | 'HT' | 'PN'
  | 'MIG-R' | 'MIG-RX' | 'MIG-W' | 'DP-R' | 'DP-W' | 'DX' | 'SWAP' | 'HWP' | 'MK-UW' | 'MK-PSN' | 'MK-GRD' | 'SPECIAL' | 'UNKNOWN';

export interface LeafView extends Leaf {
  entry: DecodedEntry;
  /** The folio the entry names (maps, or for a softleaf refers to), if any. */
  folio?: FolioInfo;
  /** Page of that folio at the leaf's first page. */
  page: number;
  kind: EntryKindName;
  /** That folio's id (`folio?.id`) without reading the folio; -1 if the entry names no folio page. */
  folioId: FolioId;
  /** That folio's FOLIO_FLAG bits (`anon`, `hugetlb` …), likewise; 0 if none. */
  folioFlags: number;
}

const MIG: Record<string, EntryKindName> = {
  'migration-read': 'MIG-R', 'migration-read-exclusive': 'MIG-RX', 'migration-write': 'MIG-W',
  'migration-device-private-read': 'MIG-R', 'migration-device-private-read-exclusive': 'MIG-RX', 'migration-device-private-write': 'MIG-W',
};

/**
 * What the views of one batch of leaves share: the engine, the zero pages, the folio infos read so far, and
 * the last folio looked at (a large folio's leaves come one after another).
 */
class LeafBatch {
  readonly zero: ZeroPages | undefined;
  lastHead = -1;
  lastWord = 0;
  lastInfo: FolioInfo | undefined;

  constructor(
    readonly engine: Engine,
    private readonly infos: Map<FolioId, FolioInfo> | undefined,
  ) {
    this.zero = zeros.get(engine); // no zero page made yet: no entry can be one
  }

  /** flagWord of a folio (FOLIO_FLAG bits | order). */
  word(head: FolioId): number {
    if (head !== this.lastHead) {
      this.lastHead = head;
      this.lastWord = this.engine.folios.flagWord(head);
      this.lastInfo = undefined;
    }
    return this.lastWord;
  }

  /** The info of a folio whose flagWord is `word`. */
  info(head: FolioId, word: number): FolioInfo {
    if (head === this.lastHead && this.lastInfo) return this.lastInfo;
    let f = this.infos?.get(head);
    if (!f) {
      f = this.engine.folios.infoOf(head, word);
      this.infos?.set(head, f);
    }
    if (head === this.lastHead) this.lastInfo = f;
    return f;
  }
}

/**
 * A leaf viewed: the entry is decoded when first asked for (it depends on the raw value alone), and the folio
 * is read when first asked for, or at once (`readFolio`: a snapshot taken as the leaf is viewed).
 */
class View implements LeafView {
  page = 0;
  kind: EntryKindName = 'UNKNOWN';
  folioId: FolioId = -1;
  folioFlags = 0;
  #entry: DecodedEntry | undefined;
  #folio: FolioInfo | undefined;
  /** flagWord of the folio. */
  #word = 0;
  readonly #batch: LeafBatch;

  constructor(
    public va: number,
    public level: LeafLevel,
    public raw: RawEntry,
    batch: LeafBatch,
    readFolio: boolean,
  ) {
    this.#batch = batch;
    const engine = batch.engine;
    let namespace: Namespace | null = 'pfn';
    let number: number | null;
    const cls = entryClass(raw, level);
    if (cls === 'present') number = presentPfn(level, raw); // decodeEntry: a present leaf names a pfn
    else ({ namespace, number } = this.entry);
    if (namespace !== null && number !== null) {
      const g = engine.folios.indexAt(namespace, number);
      const head = g < 0 ? -1 : engine.folios.headOfIndex(g);
      if (head >= 0) {
        this.#word = batch.word(head);
        this.folioId = head;
        this.folioFlags = this.#word & ~FOLIO_ORDER_MASK;
        this.page = g - head; // a folio's id is its head page's memmap index
        if (readFolio) this.#folio = batch.info(head, this.#word);
      }
    }
    this.kind = cls === 'present' ? this.presentKind(batch) : softleafKind(this.entry);
  }

  /** The kind of a present leaf (§0.2): special (the zero pages), protnone, hugetlb, PMD, or a small or large folio's PTE. */
  private presentKind(batch: LeafBatch): EntryKindName {
    if (pteSpecial(this.raw)) {
      const zero = batch.zero;
      if (zero && this.folioId >= 0 && this.folioId === zero.zero) return 'ZP';
      if (zero && this.folioId >= 0 && this.folioId === zero.huge) return 'HZP';
      return 'SPECIAL';
    }
    if (pteProtnone(this.raw)) return 'PN';
    if ((this.folioFlags & FOLIO_FLAG.hugetlb) !== 0) return 'HT';
    if (this.level !== 'pte') return 'PMD';
    return this.folioId >= 0 && (this.#word & FOLIO_ORDER_MASK) > 0 ? 'PL' : 'P';
  }

  get entry(): DecodedEntry {
    return (this.#entry ??= decodeEntry(this.raw, this.level, this.#batch.engine.decodeContext));
  }
  set entry(e: DecodedEntry) {
    this.#entry = e;
  }

  get folio(): FolioInfo | undefined {
    if (this.folioId < 0) return undefined;
    return (this.#folio ??= this.#batch.info(this.folioId, this.#word));
  }
  set folio(f: FolioInfo | undefined) {
    this.#folio = f;
  }
}

/** The kind of a leaf that is not present, from its decoded entry (§0.2). */
function softleafKind(e: DecodedEntry): EntryKindName {
  switch (e.kind) {
    case 'none': return 'NONE';
    case 'swap': return 'SWAP';
    case 'hwpoison': return 'HWP';
    case 'device-private-read': return 'DP-R';
    case 'device-private-write': return 'DP-W';
    case 'device-exclusive': return 'DX';
    case 'marker': return e.marker?.guard ? 'MK-GRD' : e.marker?.poisoned ? 'MK-PSN' : 'MK-UW';
    default: return MIG[e.kind] ?? 'UNKNOWN';
  }
}

/** Decode a leaf and find what it names. `cache`: folio infos already read (one batch of leaves). */
export function viewLeaf(engine: Engine, leaf: Leaf, cache?: Map<FolioId, FolioInfo>): LeafView {
  checkRaw(leaf.raw); // leaves read from the tables (leavesIn, leafViewer) have u32 halves
  return new View(leaf.va, leaf.level, leaf.raw, new LeafBatch(engine, cache), true);
}

/**
 * Every leaf starting in [start, end) of an mm, viewed. Each folio's info is read as its leaves are viewed (a
 * snapshot), unless `readFolios` is false: then when `folio` is first asked for, for callers that change no
 * folio before they read its info (`folioId` and `folioFlags` are there at once either way).
 */
export function leavesIn(engine: Engine, mm: Mm, start: number, end: number, readFolios = true): LeafView[] {
  const out: LeafView[] = [];
  visitLeaves(engine, mm, start, end, (l) => out.push(l), readFolios);
  return out;
}

/**
 * leavesIn handing each view to `visit` as it is made, for callers that keep none of them (nothing piles up).
 * `visit` may read the engine but must not change the tables of [start, end).
 */
export function visitLeaves(engine: Engine, mm: Mm, start: number, end: number, visit: (l: LeafView) => void, readFolios = true): void {
  const view = leafViewer(engine, readFolios);
  forEachLeaf(engine.wasmInstance(), mm.root, start, end, (va, level, lo, hi) => visit(view(va, level, lo, hi)));
}

/** A viewer of leaves read earlier (one batch: folio infos shared as in leavesIn, `readFolios` likewise). */
export function leafViewer(engine: Engine, readFolios = true): (va: number, level: LeafLevel, lo: number, hi: number) => LeafView {
  const batch = new LeafBatch(engine, undefined);
  return (va, level, lo, hi) => new View(va, level, { lo, hi }, batch, readFolios);
}

/** Write leaves of an mm (mapcounts follow); a raw of {0, 0} clears. */
export function writeLeaves(engine: Engine, mm: Mm, leaves: readonly Leaf[] | LeafList): void {
  if (leaves.length > 0) setLeaves(engine.wasmInstance(), mm.root, leaves);
}

export const NONE_RAW: RawEntry = { lo: 0, hi: 0 };

/** vm_page_prot of a VMA as present-entry bits: private mappings never grant write (§3.2 note). */
export function vmaPageProt(vma: Vma): Partial<PresentBits> {
  const f = vma.flags;
  const none = !f.read && !f.write && !f.exec;
  return { user: true, write: f.shared && f.write, nx: !f.exec, protnone: none };
}

export function presentRaw(level: LeafLevel, pfn: number, bits: Partial<PresentBits>): RawEntry {
  return encodePresent(level, pfn, bits);
}

export function softleafRaw(engine: Engine, spec: SoftleafSpec): RawEntry {
  return encodeSoftleaf(engine.decodeContext.table, engine.decodeContext.swpPfnBits, spec);
}

export function leafPages(level: LeafLevel): number {
  return 2 ** (LEAF_LEVELS[level] - 12);
}

/**
 * The shared zero page and huge zero page (ZP, HZP): folios of their own, tag ZERO, mapped only by special
 * entries (no mapcount, no rmap). Made on first use.
 */
export interface ZeroPages {
  zero: FolioId;
  huge: FolioId;
  zeroPfn: number;
  hugePfn: number;
}
const zeros = new WeakMap<Engine, ZeroPages>();

/** The zero pages if an operation has made them, without making them. */
export function peekZeroPages(engine: Engine): ZeroPages | undefined {
  return zeros.get(engine);
}
export function zeroPages(engine: Engine): ZeroPages {
  let z = zeros.get(engine);
  if (!z) {
    const alloc = opsState(engine).alloc;
    const zero = alloc.alloc({ order: 0 }) ?? -1;
    const huge = alloc.alloc({ order: 9 }) ?? -1;
    z = { zero, huge, zeroPfn: zero >= 0 ? engine.folio(zero).number : -1, hugePfn: huge >= 0 ? engine.folio(huge).number : -1 };
    zeros.set(engine, z);
  }
  return z;
}

/**
 * The folio's last reference went (kernel-operations.md §0.3): free it if nothing maps it and nothing holds it:
 * not a zero page, no pins, not locked (a migration in flight holds it), not a page-cache folio (the cache
 * keeps it), and no swap entry or migration entry names it (the caller knows: `stillNamed`). Returns whether
 * it was freed.
 */
export function putFolio(engine: Engine, id: FolioId): boolean {
  if (!engine.folios.exists(id)) return false;
  const z = zeros.get(engine);
  if (z && (id === z.zero || id === z.huge)) return false;
  if (engine.folios.mapcount(id) > 0) return false; // most puts: still mapped elsewhere, no need to read the rest
  const f = engine.folio(id);
  const s = opsState(engine);
  if (s.pinned(id) || f.flags.locked || !f.anon) return false;
  if (f.flags.ksm && f.anonVma !== null) engine.rmap.ksm.remove(f.anonVma);
  s.alloc.free(id);
  return true;
}
