import { PvmwError } from '../errors.js';
import {
  type PresentBits,
  type RawEntry,
  PAGE_PRESENT,
  PAGE_PROTNONE,
  PAGE_PSE,
  checkRaw,
  decodePresent,
  decodeSoftleaf,
  entryIsZero,
  pteNone,
  ptePresent,
  rawHex,
} from './entry.js';
import { geometry, type LeafLevel, type LevelName } from './geometry.js';
import type { DeviceModel, EngineSettings } from './settings.js';
import { type SoftleafKind, type SoftleafTable, isDevicePrivateKind, softleafTable } from './softleaf.js';

/**
 * The public decoder: any x86-64 page-table entry at any level → one object that says what it is, which
 * number it carries and in which namespace (decisions.md Terms, D1; spec §3.2–§3.5, §4.4).
 */

/** decisions.md Terms: every number that can be a pfn or a device-private offset carries its namespace. */
export type Namespace = 'pfn' | 'device-private';

export interface DecodeContext {
  /** The configuration's softleaf type table (spec §3.4; softleafTable). */
  table: SoftleafTable;
  /** SWP_PFN_BITS: 34 (4-level) or 40 (5-level), spec §3.3. */
  swpPfnBits: number;
  /** D1: how device-private pages are named. */
  deviceModel: DeviceModel;
}

/** The decode context of an engine's settings. */
export function decodeContext(s: Pick<EngineSettings, 'config' | 'semantics' | 'paging' | 'deviceModel'>): DecodeContext {
  return { table: softleafTable(s.config, s.semantics), swpPfnBits: geometry(s.paging).swpPfnBits, deviceModel: s.deviceModel };
}

/** The bits the walk and its callers read, the same for present and softleaf entries. */
export interface EntryBits {
  write: boolean;
  young: boolean;
  dirty: boolean;
  softDirty: boolean;
  uffdWp: boolean;
  exclusive: boolean;
}

export interface DecodedEntry {
  kind: 'none' | 'table' | 'present' | SoftleafKind | 'unknown';
  level: LevelName;
  /** A present PMD/PUD leaf (PSE). */
  huge: boolean;
  namespace: Namespace | null;
  /** pfn or device-private offset; null for none/table/swap/marker/unknown. */
  number: number | null;
  bits: EntryBits;
  /** All §3.2 bits, for present entries. */
  present?: PresentBits;
  /** Type and offset, for every swap-format entry. */
  swap?: { type: number; offset: number };
  /** Marker bits (§3.3), for marker entries. */
  marker?: { uffdWp: boolean; poisoned: boolean; guard: boolean };
}

const NO_BITS: Readonly<EntryBits> = { write: false, young: false, dirty: false, softDirty: false, uffdWp: false, exclusive: false };

/**
 * Namespace of a pfn-carrying softleaf (spec §4.4, D1): hwpoison, device-exclusive and ordinary migration
 * entries carry pfns; device-private read/write and the series' migration-device-private kinds carry
 * device-private offsets in the `offset` model and pfns in the `pfn` model (device pages have pfns there).
 * Kinds without a number (swap, marker) have no namespace.
 */
export function namespaceOf(kind: SoftleafKind, deviceModel: DeviceModel): Namespace | null {
  if (kind === 'swap' || kind === 'marker') return null;
  return deviceModel === 'offset' && isDevicePrivateKind(kind) ? 'device-private' : 'pfn';
}

/** Softleaf kinds that stand for a writable mapping. */
function softleafWrite(kind: SoftleafKind): boolean {
  return kind === 'migration-write' || kind === 'migration-device-private-write' || kind === 'device-private-write';
}

/**
 * Softleaf kinds whose page is exclusive to this mapping. Choice (documented): besides the swap-format
 * exclusive bit 3, migration read-exclusive and write entries (and their device-private migration variants)
 * count as exclusive, because remove_migration_pte restores the anon rmap as exclusive for every migration
 * type except plain read (spec §3.6).
 */
function softleafExclusive(kind: SoftleafKind): boolean {
  return (
    kind === 'migration-read-exclusive' ||
    kind === 'migration-write' ||
    kind === 'migration-device-private-read-exclusive' ||
    kind === 'migration-device-private-write'
  );
}

function decodePresentLeaf(raw: RawEntry, level: LeafLevel): DecodedEntry {
  const { pfn, bits } = decodePresent(level, raw);
  return {
    kind: 'present',
    level,
    huge: level !== 'pte',
    namespace: 'pfn',
    number: pfn,
    bits: {
      // pte_write is RW (spec §3.2). The shadow-stack case (RW = 0 and D = 1 with SHSTK) is NOT modelled.
      write: bits.write,
      young: bits.young,
      dirty: bits.dirty || bits.savedDirty, // pte_dirty: D or SAVED_DIRTY
      softDirty: bits.softDirty,
      uffdWp: bits.uffdWp,
      exclusive: false, // a present entry carries no exclusivity bit (that lives in the page, not the entry)
    },
    present: bits,
  };
}

function decodeSwapFormat(raw: RawEntry, level: LevelName, ctx: DecodeContext): DecodedEntry {
  const s = decodeSoftleaf(ctx.table, ctx.swpPfnBits, raw);
  const out: DecodedEntry = {
    kind: s.kind,
    level,
    huge: false,
    namespace: s.kind === 'unknown' ? null : namespaceOf(s.kind, ctx.deviceModel),
    number: s.number,
    bits: {
      write: s.kind !== 'unknown' && softleafWrite(s.kind),
      young: s.young,
      dirty: s.dirty,
      softDirty: s.softDirty,
      uffdWp: s.uffdWp,
      exclusive: s.exclusive || (s.kind !== 'unknown' && softleafExclusive(s.kind)),
    },
    swap: { type: s.type, offset: s.offset },
  };
  if (s.kind === 'marker') {
    out.marker = { uffdWp: (s.markerBits & 1) !== 0, poisoned: (s.markerBits & 2) !== 0, guard: (s.markerBits & 4) !== 0 };
  }
  return out;
}

function simple(kind: 'none' | 'table', level: LevelName): DecodedEntry {
  return { kind, level, huge: false, namespace: null, number: null, bits: { ...NO_BITS } };
}

/**
 * Decode an entry at a level (spec §3.2 predicates, §3.4, §3.5):
 * - PTE: none by pte_none (A/D ignored); present by pte_present (P or PROTNONE); else swap format.
 * - PMD/PUD: none iff all zero; P set without PSE → 'table'; P or PROTNONE with PSE → present huge leaf
 *   (protnone is accepted at PUD too, although x86 pud_present looks at P only: bit 8 is never set in a
 *   swap-format entry, so there is no ambiguity); else swap format. Only migration and device-private
 *   entries are valid PMD softleaves (§3.4) — others are decoded anyway, not rejected.
 * - PGD/P4D: none iff all zero; P set → 'table'.
 * BAD_ENTRY for values valid at no level: PSE at PGD/P4D, a non-present PGD/P4D, a PMD with PSE but P and
 * PROTNONE clear (pmd_mkinvalid's transient state during a split, which pvmw never stores), and non-present
 * values with bit 0, 7 or 8 set.
 */
export function decodeEntry(raw: RawEntry, level: LevelName, ctx: DecodeContext): DecodedEntry {
  checkRaw(raw);
  switch (entryClass(raw, level)) {
    case 'none': return simple('none', level);
    case 'table': return simple('table', level);
    case 'present': return decodePresentLeaf(raw, level as LeafLevel);
    default: return decodeSwapFormat(raw, level, ctx);
  }
}

/**
 * What decodeEntry makes of an entry at a level before reading its bits (the rules above): none, a table
 * pointer, a present leaf or a swap-format entry; the same BAD_ENTRY refusals. The halves must be u32.
 */
export function entryClass(raw: RawEntry, level: LevelName): 'none' | 'table' | 'present' | 'swap' {
  const lo = raw.lo;
  switch (level) {
    case 'pte':
      if (pteNone(raw)) return 'none';
      if (ptePresent(raw)) return 'present';
      return 'swap';
    case 'pmd':
    case 'pud': {
      if (entryIsZero(raw)) return 'none';
      const p = (lo & PAGE_PRESENT) !== 0;
      if ((lo & PAGE_PSE) !== 0) {
        if (p || (lo & PAGE_PROTNONE) !== 0) return 'present';
        throw new PvmwError('BAD_ENTRY', `${level.toUpperCase()} ${rawHex(raw)} has PSE set with P and PROTNONE clear (an invalidated huge entry)`);
      }
      if (p) return 'table';
      return 'swap';
    }
    case 'pgd':
    case 'p4d':
      if (entryIsZero(raw)) return 'none';
      if ((lo & PAGE_PRESENT) === 0) {
        throw new PvmwError('BAD_ENTRY', `${level.toUpperCase()} ${rawHex(raw)} is not present and not zero: no swap entries at this level`);
      }
      if ((lo & PAGE_PSE) !== 0) {
        throw new PvmwError('BAD_ENTRY', `${level.toUpperCase()} ${rawHex(raw)} has PSE set: x86-64 has no leaves at this level`);
      }
      return 'table';
    default:
      throw new PvmwError('BAD_SETTING', `level must be pgd, p4d, pud, pmd or pte, got ${JSON.stringify(level)}`);
  }
}
