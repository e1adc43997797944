import type { Engine } from '../model/engine.js';
import { decodeEntry, type DecodedEntry } from '../model/decode.js';
import { encodePresent, encodeSoftleaf, type PresentBits, type RawEntry, type SoftleafSpec } from '../model/entry.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import { LEAF_LEVELS, type LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { scanLeaves, setLeaves, type Leaf } from '../model/pte-batch.js';
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
}

const MIG: Record<string, EntryKindName> = {
  'migration-read': 'MIG-R', 'migration-read-exclusive': 'MIG-RX', 'migration-write': 'MIG-W',
  'migration-device-private-read': 'MIG-R', 'migration-device-private-read-exclusive': 'MIG-RX', 'migration-device-private-write': 'MIG-W',
};

/** Decode a leaf and find what it names. `cache`: folio infos already read (one batch of leaves). */
export function viewLeaf(engine: Engine, leaf: Leaf, cache?: Map<FolioId, FolioInfo>): LeafView {
  const entry = decodeEntry(leaf.raw, leaf.level, engine.decodeContext);
  const v: LeafView = { va: leaf.va, level: leaf.level, raw: leaf.raw, entry, folio: undefined, page: 0, kind: 'UNKNOWN' };
  if (entry.namespace !== null && entry.number !== null && engine.memory.rangeOf(entry.namespace, entry.number)) {
    const head = engine.folios.headOf(entry.namespace, entry.number);
    if (head >= 0) {
      let f = cache?.get(head);
      if (!f) {
        f = engine.folio(head);
        cache?.set(head, f);
      }
      v.folio = f;
      v.page = entry.number - f.number;
    }
  }
  v.kind = kindOf(engine, v);
  return v;
}

function kindOf(engine: Engine, v: LeafView): EntryKindName {
  const e = v.entry;
  switch (e.kind) {
    case 'none': return 'NONE';
    case 'present': {
      if (e.present?.special) {
        const zero = zeros.get(engine); // no zero page made yet: no entry can be one
        if (zero && v.folio?.id === zero.zero) return 'ZP';
        if (zero && v.folio?.id === zero.huge) return 'HZP';
        return 'SPECIAL';
      }
      if (e.present?.protnone) return 'PN';
      if (v.folio?.hugetlb) return 'HT';
      if (v.level !== 'pte') return 'PMD';
      return v.folio && v.folio.order > 0 ? 'PL' : 'P';
    }
    case 'swap': return 'SWAP';
    case 'hwpoison': return 'HWP';
    case 'device-private-read': return 'DP-R';
    case 'device-private-write': return 'DP-W';
    case 'device-exclusive': return 'DX';
    case 'marker': return e.marker?.guard ? 'MK-GRD' : e.marker?.poisoned ? 'MK-PSN' : 'MK-UW';
    default: return MIG[e.kind] ?? 'UNKNOWN';
  }
}

/** Every leaf starting in [start, end) of an mm, viewed. */
export function leavesIn(engine: Engine, mm: Mm, start: number, end: number): LeafView[] {
  const cache = new Map<FolioId, FolioInfo>();
  return scanLeaves(engine.wasmInstance(), mm.root, start, end).map((l) => viewLeaf(engine, l, cache));
}

/** Write leaves of an mm (mapcounts follow); a raw of {0, 0} clears. */
export function writeLeaves(engine: Engine, mm: Mm, leaves: readonly Leaf[]): void {
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
  const f = engine.folio(id);
  const s = opsState(engine);
  const z = zeros.get(engine);
  if (z && (id === z.zero || id === z.huge)) return false;
  if (f.mapcount > 0 || s.pinned(id) || f.flags.locked || !f.anon) return false;
  if (f.flags.ksm && f.anonVma !== null) engine.rmap.ksm.remove(f.anonVma);
  s.alloc.free(id);
  return true;
}
