import { PvmwError, hex } from '../errors.js';
import type { LeafLevel } from './geometry.js';
import { type SoftleafKind, type SoftleafTable, SWP_TYPE_COUNT, isMigration, softleafHasPfn } from './softleaf.js';

/**
 * x86-64 page-table entries (spec §3.2–§3.5) on raw 64-bit values held as two unsigned 32-bit halves:
 * `lo` = bits 0..31, `hi` = bits 32..63 (DESIGN.md §3: no BigInt on hot paths; BigInt only at the edges).
 * Bit n ≥ 32 of an entry is bit n−32 of `hi`. Every half this module returns is kept unsigned with `>>> 0`.
 */
export interface RawEntry {
  lo: number;
  hi: number;
}

const TWO20 = 2 ** 20;
const TWO23 = 2 ** 23;
const TWO32 = 2 ** 32;


// ---- Edge helpers (BigInt allowed here only) -------------------------------------------------------------

export function raw(lo: number, hi: number): RawEntry {
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

/** The 64-bit value `b` (0 ≤ b < 2^64) as two halves; anything else is BAD_ENTRY. */
export function rawFromBigInt(b: bigint): RawEntry {
  if (typeof b !== 'bigint' || b < 0n || b >= 1n << 64n) {
    throw new PvmwError('BAD_ENTRY', `entry value ${show(b)} is not a 64-bit unsigned value`);
  }
  return { lo: Number(b & 0xffffffffn), hi: Number(b >> 32n) };
}

export function rawToBigInt(e: RawEntry): bigint {
  return (BigInt(e.hi >>> 0) << 32n) | BigInt(e.lo >>> 0);
}

/** "0x" followed by exactly 16 hex digits. */
export function rawHex(e: RawEntry): string {
  return '0x' + (e.hi >>> 0).toString(16).padStart(8, '0') + (e.lo >>> 0).toString(16).padStart(8, '0');
}

export function rawEquals(a: RawEntry, b: RawEntry): boolean {
  return a.lo >>> 0 === b.lo >>> 0 && a.hi >>> 0 === b.hi >>> 0;
}

/** A value for an error message: hex for whole non-negative numbers, as written otherwise (e.g. -1, 1.5). */
function show(x: unknown): string {
  return (typeof x === 'number' && Number.isInteger(x) && x >= 0) || (typeof x === 'bigint' && x >= 0n) ? hex(x) : String(x);
}

function isU32(x: unknown): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < TWO32;
}

/** Reject a RawEntry whose halves are not unsigned 32-bit integers (BAD_ENTRY). */
export function checkRaw(e: RawEntry): void {
  if (typeof e !== 'object' || e === null || !isU32(e.lo) || !isU32(e.hi)) {
    throw new PvmwError('BAD_ENTRY', `entry halves must be unsigned 32-bit integers, got lo=${show(e?.lo)} hi=${show(e?.hi)}`);
  }
}

// ---- §3.2 present entries --------------------------------------------------------------------------------

/** Masks in the low half (bits 0..31), spec §3.2. Bit 7 is PSE on PMD/PUD and PAT on PTEs; bit 8 is GLOBAL
 *  when P = 1 and PROTNONE when P = 0; bit 12 is PAT on PMD/PUD leaves and part of the pfn on PTEs. */
export const PAGE_PRESENT = 1 << 0;
export const PAGE_RW = 1 << 1;
export const PAGE_USER = 1 << 2;
export const PAGE_PWT = 1 << 3;
export const PAGE_PCD = 1 << 4;
export const PAGE_ACCESSED = 1 << 5;
export const PAGE_DIRTY = 1 << 6;
export const PAGE_PSE = 1 << 7;
export const PAGE_PAT = 1 << 7;
export const PAGE_GLOBAL = 1 << 8;
export const PAGE_PROTNONE = 1 << 8;
export const PAGE_SPECIAL = 1 << 9;
export const PAGE_UFFD_WP = 1 << 10;
export const PAGE_SOFT_DIRTY = 1 << 11;
export const PAGE_PAT_LARGE = 1 << 12;
/** Masks in the high half: SAVED_DIRTY is bit 58, PKEY bits 59..62, NX bit 63. */
export const PAGE_SAVED_DIRTY_HI = 1 << 26;
export const PAGE_PKEY_SHIFT_HI = 27;
export const PAGE_NX_HI = 0x80000000;

/** PFN field (bits 12..51): low-half mask per leaf level (PMD 21..51, PUD 30..51) and the high-half mask. */
export const PFN_LO_MASK: Readonly<Record<LeafLevel, number>> = { pte: 0xfffff000, pmd: 0xffe00000, pud: 0xc0000000 };
export const PFN_HI_MASK = 0x000fffff;
/** Pfns are < 2^40 (40-bit PFN field). */
export const PFN_LIMIT = 2 ** 40;
/** Pages per leaf at each level (spec §3.1): huge pfns must be aligned to this. */
export const LEAF_PAGES: Readonly<Record<LeafLevel, number>> = { pte: 1, pmd: 512, pud: 2 ** 18 };

/** Every bit of a present entry that pvmw models (spec §3.2). */
export interface PresentBits {
  write: boolean; // RW, bit 1
  user: boolean; // bit 2
  pwt: boolean; // bit 3
  pcd: boolean; // bit 4
  young: boolean; // ACCESSED, bit 5
  dirty: boolean; // DIRTY, bit 6 (the hardware bit only; see savedDirty)
  global: boolean; // bit 8, only when P = 1
  pat: boolean; // bit 7 on PTEs, bit 12 on PMD/PUD leaves
  special: boolean; // SOFTW1, bit 9
  uffdWp: boolean; // SOFTW2, bit 10
  softDirty: boolean; // SOFTW3, bit 11
  savedDirty: boolean; // SOFTW5, bit 58
  nx: boolean; // bit 63
  protnone: boolean; // P clear and PROTNONE (bit 8) set: PROT_NONE / NUMA hinting
  pkey: number; // bits 59..62, 0..15
}

function checkLeafLevel(level: string): asserts level is LeafLevel {
  if (level !== 'pte' && level !== 'pmd' && level !== 'pud') {
    throw new PvmwError('BAD_SETTING', `leaf level must be pte, pmd or pud, got ${JSON.stringify(level)}`);
  }
}

function checkPfn(level: LeafLevel, pfn: number): void {
  if (typeof pfn !== 'number' || !Number.isInteger(pfn) || pfn < 0 || pfn >= PFN_LIMIT) {
    throw new PvmwError('BAD_ENTRY', `pfn ${show(pfn)} is outside 0 … ${hex(PFN_LIMIT - 1)}`);
  }
  if (pfn % LEAF_PAGES[level] !== 0) {
    throw new PvmwError('BAD_ENTRY', `pfn ${hex(pfn)} of a ${level.toUpperCase()} leaf is not aligned to ${LEAF_PAGES[level]} pages`);
  }
}

/**
 * Build a present leaf (spec §3.2, the effect of pfn_pte/pfn_pmd/pfn_pud + the pte_mk* helpers). PMD/PUD
 * leaves get PSE and an aligned pfn. A protnone entry has P clear and bit 8 set, and its PFN field is stored
 * inverted within the level's PFN mask (L1TF inversion, §3.2). Out-of-domain input is BAD_ENTRY.
 */
export function encodePresent(level: LeafLevel, pfn: number, bits: Partial<PresentBits> = {}): RawEntry {
  checkLeafLevel(level);
  checkPfn(level, pfn);
  const pkey = bits.pkey ?? 0;
  if (!Number.isInteger(pkey) || pkey < 0 || pkey > 15) {
    throw new PvmwError('BAD_ENTRY', `protection key ${show(pkey)} is outside 0 … 15`);
  }
  if (bits.protnone && bits.global) {
    throw new PvmwError('BAD_ENTRY', `a protnone entry cannot be global: both use bit 8 (pfn ${hex(pfn)})`);
  }
  let lo = bits.protnone ? PAGE_PROTNONE : PAGE_PRESENT | (bits.global ? PAGE_GLOBAL : 0);
  if (bits.write) lo |= PAGE_RW;
  if (bits.user) lo |= PAGE_USER;
  if (bits.pwt) lo |= PAGE_PWT;
  if (bits.pcd) lo |= PAGE_PCD;
  if (bits.young) lo |= PAGE_ACCESSED;
  if (bits.dirty) lo |= PAGE_DIRTY;
  if (bits.special) lo |= PAGE_SPECIAL;
  if (bits.uffdWp) lo |= PAGE_UFFD_WP;
  if (bits.softDirty) lo |= PAGE_SOFT_DIRTY;
  if (level !== 'pte') lo |= PAGE_PSE;
  if (bits.pat) lo |= level === 'pte' ? PAGE_PAT : PAGE_PAT_LARGE;
  let hi = pkey << PAGE_PKEY_SHIFT_HI;
  if (bits.savedDirty) hi |= PAGE_SAVED_DIRTY_HI;
  if (bits.nx) hi |= PAGE_NX_HI;
  // PFN field: pfn bits 0..19 go to lo bits 12..31, pfn bits 20..39 to hi bits 0..19.
  let fieldLo = (pfn % TWO20) * 4096;
  let fieldHi = Math.floor(pfn / TWO20);
  if (bits.protnone) {
    fieldLo = ~fieldLo & PFN_LO_MASK[level];
    fieldHi = ~fieldHi & PFN_HI_MASK;
  }
  return { lo: (lo | fieldLo) >>> 0, hi: (hi | fieldHi) >>> 0 };
}

/**
 * Read a present leaf back (spec §3.2, pte_pfn/pmd_pfn/pud_pfn + the pte_* accessors). Undoes the L1TF
 * inversion (P clear and value ≠ 0). An entry that is not present (P and PROTNONE clear), or a PMD/PUD
 * without PSE (a table pointer), is BAD_ENTRY.
 */
export function decodePresent(level: LeafLevel, e: RawEntry): { pfn: number; bits: PresentBits } {
  checkLeafLevel(level);
  checkRaw(e);
  const { lo, hi } = e;
  if ((lo & (PAGE_PRESENT | PAGE_PROTNONE)) === 0) {
    throw new PvmwError('BAD_ENTRY', `${level.toUpperCase()} ${rawHex(e)} is not a present entry (P and PROTNONE clear)`);
  }
  if (level !== 'pte' && (lo & PAGE_PSE) === 0) {
    throw new PvmwError('BAD_ENTRY', `${level.toUpperCase()} ${rawHex(e)} has PSE clear: it is a table pointer, not a leaf`);
  }
  const p = (lo & PAGE_PRESENT) !== 0;
  const pfn = presentPfn(level, e);
  const bits: PresentBits = {
    write: (lo & PAGE_RW) !== 0,
    user: (lo & PAGE_USER) !== 0,
    pwt: (lo & PAGE_PWT) !== 0,
    pcd: (lo & PAGE_PCD) !== 0,
    young: (lo & PAGE_ACCESSED) !== 0,
    dirty: (lo & PAGE_DIRTY) !== 0,
    global: p && (lo & PAGE_GLOBAL) !== 0,
    pat: (lo & (level === 'pte' ? PAGE_PAT : PAGE_PAT_LARGE)) !== 0,
    special: pteSpecial(e),
    uffdWp: (lo & PAGE_UFFD_WP) !== 0,
    softDirty: (lo & PAGE_SOFT_DIRTY) !== 0,
    savedDirty: (hi & PAGE_SAVED_DIRTY_HI) !== 0,
    nx: (hi & PAGE_NX_HI) !== 0,
    protnone: !p,
    pkey: (hi >>> PAGE_PKEY_SHIFT_HI) & 15,
  };
  return { pfn, bits };
}

/**
 * The pfn of a present leaf (pte_pfn/pmd_pfn/pud_pfn), the L1TF inversion undone (P clear: the PFN field is
 * stored inverted). Unchecked: the caller knows the entry is a present leaf of `level` (decodePresent checks).
 */
export function presentPfn(level: LeafLevel, e: RawEntry): number {
  const p = (e.lo & PAGE_PRESENT) !== 0;
  const fLo = p ? e.lo : ~e.lo;
  const fHi = p ? e.hi : ~e.hi;
  return ((fLo & PFN_LO_MASK[level]) >>> 12) + (fHi & PFN_HI_MASK) * TWO20;
}

// ---- §3.2 derived predicates (NEWEST x86) ----------------------------------------------------------------

/** pte_special (and pmd_special): SOFTW1 of a present entry. */
export function pteSpecial(e: RawEntry): boolean {
  return (e.lo & PAGE_SPECIAL) !== 0;
}

/** pte_none: zero once A and D are masked off (the KNL erratum may set them on a cleared entry). */
export function pteNone(e: RawEntry): boolean {
  return ((e.lo & ~(PAGE_ACCESSED | PAGE_DIRTY)) | e.hi) === 0;
}

/** PMD/PUD/P4D/PGD none: all 64 bits zero. */
export function entryIsZero(e: RawEntry): boolean {
  return (e.lo | e.hi) === 0;
}

/** pte_present: P or PROTNONE. */
export function ptePresent(e: RawEntry): boolean {
  return (e.lo & (PAGE_PRESENT | PAGE_PROTNONE)) !== 0;
}

/** pte_protnone / pmd_protnone: PROTNONE set and P clear. */
export function pteProtnone(e: RawEntry): boolean {
  return (e.lo & (PAGE_PRESENT | PAGE_PROTNONE)) === PAGE_PROTNONE;
}

/** pmd_present: P, PROTNONE or PSE (a huge PMD invalidated during a split keeps PSE). */
export function pmdPresent(e: RawEntry): boolean {
  return (e.lo & (PAGE_PRESENT | PAGE_PROTNONE | PAGE_PSE)) !== 0;
}

/** pmd_leaf / pmd_trans_huge (and pud_leaf): PSE set. */
export function pmdIsLeaf(e: RawEntry): boolean {
  return (e.lo & PAGE_PSE) !== 0;
}
export const pmdTransHuge = pmdIsLeaf;

/** pud_present, p4d_present, pgd_present: P only. */
export function pudPresent(e: RawEntry): boolean {
  return (e.lo & PAGE_PRESENT) !== 0;
}

/** An upper-level entry that points to a lower table: P set (and PSE clear at PUD/PMD). Never a PTE. */
export function isTablePointer(level: 'pgd' | 'p4d' | 'pud' | 'pmd' | 'pte', e: RawEntry): boolean {
  if (level === 'pte') return false;
  if ((e.lo & PAGE_PRESENT) === 0) return false;
  return level === 'pgd' || level === 'p4d' || (e.lo & PAGE_PSE) === 0;
}

// ---- §3.5 swap-format (non-present) entries --------------------------------------------------------------

/** Swap-format flag bits (low half), spec §3.5. */
export const PAGE_SWP_SOFT_DIRTY = 1 << 1;
export const PAGE_SWP_UFFD_WP = 1 << 2;
export const PAGE_SWP_EXCLUSIVE = 1 << 3;
export const SWP_TYPE_BITS = 5;
export const SWP_OFFSET_FIRST_BIT = 9;
export const SWP_OFFSET_BITS = 50;
/** Offsets are 0 … 2^50 − 1. */
export const SWP_OFFSET_LIMIT = 2 ** SWP_OFFSET_BITS;

export interface SwapFlags {
  softDirty?: boolean;
  uffdWp?: boolean;
  exclusive?: boolean;
}

export interface DecodedSwap {
  type: number;
  offset: number;
  softDirty: boolean;
  uffdWp: boolean;
  exclusive: boolean;
}

function checkSwpType(type: number): void {
  if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type >= SWP_TYPE_COUNT) {
    throw new PvmwError('BAD_ENTRY', `swap type ${show(type)} is outside 0 … 31`);
  }
}

function checkSwpOffset(offset: number, limit: number, what: string): void {
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || offset >= limit) {
    throw new PvmwError('BAD_ENTRY', `${what} ${show(offset)} is outside 0 … ${hex(limit - 1)}`);
  }
}

/**
 * Build a swap-format entry (spec §3.5): type in bits 59..63, NOT(offset) in bits 9..58, flags in bits 1..3,
 * bits 0, 7 and 8 zero. Note: type 0 with offset 2^50 − 1 and no flags encodes to 0 (a none entry); the
 * kernel never builds it because the L1TF mitigation limits swap offsets far below 2^50.
 */
export function encodeSwap(type: number, offset: number, flags: SwapFlags = {}): RawEntry {
  checkSwpType(type);
  checkSwpOffset(offset, SWP_OFFSET_LIMIT, 'swap offset');
  const inv = SWP_OFFSET_LIMIT - 1 - offset; // NOT(offset) within 50 bits
  let lo = (inv % TWO23) * (1 << SWP_OFFSET_FIRST_BIT); // inverted offset bits 0..22 → entry bits 9..31
  if (flags.softDirty) lo |= PAGE_SWP_SOFT_DIRTY;
  if (flags.uffdWp) lo |= PAGE_SWP_UFFD_WP;
  if (flags.exclusive) lo |= PAGE_SWP_EXCLUSIVE;
  const hi = Math.floor(inv / TWO23) | (type << (64 - SWP_TYPE_BITS - 32)); // offset bits 23..49 → 32..58
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

/**
 * Read a swap-format entry (spec §3.5). Bits 4..6 are ignored (A/D erratum). An entry with bit 0, 7 or 8 set
 * is not swap format → BAD_ENTRY. (Telling a none entry apart is the caller's business: see pteNone.)
 */
export function decodeSwap(e: RawEntry): DecodedSwap {
  checkRaw(e);
  const { lo, hi } = e;
  if ((lo & (PAGE_PRESENT | PAGE_PSE | PAGE_PROTNONE)) !== 0) {
    throw new PvmwError('BAD_ENTRY', `entry ${rawHex(e)} is not swap format (bit 0, 7 or 8 set)`);
  }
  const inv = (hi & 0x07ffffff) * TWO23 + (lo >>> SWP_OFFSET_FIRST_BIT);
  return {
    type: hi >>> 27,
    offset: SWP_OFFSET_LIMIT - 1 - inv,
    softDirty: (lo & PAGE_SWP_SOFT_DIRTY) !== 0,
    uffdWp: (lo & PAGE_SWP_UFFD_WP) !== 0,
    exclusive: (lo & PAGE_SWP_EXCLUSIVE) !== 0,
  };
}

// ---- §3.3 arch-independent value (edge helper) -----------------------------------------------------------

/** The arch-independent swp_entry_t / softleaf_t value (spec §3.3): (type << 58) | offset, offset < 2^58. */
export function softleafValue(type: number, offset: number): bigint {
  checkSwpType(type);
  checkSwpOffset(offset, 2 ** 58, 'softleaf offset');
  return (BigInt(type) << 58n) | BigInt(offset);
}

// ---- §3.3/§3.4 softleaves with meaning -------------------------------------------------------------------

/** Marker offset bits (spec §3.3). */
export const PTE_MARKER_UFFD_WP = 1;
export const PTE_MARKER_POISONED = 2;
export const PTE_MARKER_GUARD = 4;
export const PTE_MARKER_MASK = 7;

/** Softleaf kinds whose offset carries a pfn or device-private offset (softleaf_has_pfn, spec §0). */
export type PfnSoftleafKind = Exclude<SoftleafKind, 'swap' | 'marker'>;

export type SoftleafSpec =
  | { kind: 'swap'; swapType: number; offset: number; flags?: SwapFlags }
  | { kind: 'marker'; uffdWp?: boolean; poisoned?: boolean; guard?: boolean; flags?: SwapFlags }
  | { kind: PfnSoftleafKind; number: number; young?: boolean; dirty?: boolean; flags?: SwapFlags };

export interface DecodedSoftleaf extends DecodedSwap {
  /** 'unknown' for a type value the configuration's table does not assign. */
  kind: SoftleafKind | 'unknown';
  /** Offset masked to SWP_PFN_BITS for pfn kinds (pfn or device-private offset); null otherwise. */
  number: number | null;
  /** SWP_MIG_YOUNG_BIT / SWP_MIG_DIRTY_BIT of migration kinds (D5: kept); false for every other kind. */
  young: boolean;
  dirty: boolean;
  /** offset & 0b111 for markers; 0 otherwise. */
  markerBits: number;
}

function checkSwpPfnBits(swpPfnBits: number): void {
  // The pfn plus the two migration A/D bits must fit in the 50-bit x86 offset (§3.3, §3.5).
  if (!Number.isInteger(swpPfnBits) || swpPfnBits < 1 || swpPfnBits > SWP_OFFSET_BITS - 2) {
    throw new PvmwError('BAD_SETTING', `SWP_PFN_BITS ${String(swpPfnBits)} is outside 1 … ${SWP_OFFSET_BITS - 2}`);
  }
}

/**
 * Build a softleaf with meaning (spec §3.3–§3.5) for a configuration's type table (softleafTable) and
 * SWP_PFN_BITS (34 for 4-level, 40 for 5-level). Migration kinds (including the series' device-private
 * migration kinds) may carry young/dirty above the pfn (SWP_MIG_YOUNG_BIT = swpPfnBits, DIRTY = +1; D5).
 * A kind the table lacks, a number ≥ 2^swpPfnBits, A/D on a non-migration kind, or a marker without bits
 * is BAD_ENTRY.
 */
export function encodeSoftleaf(table: SoftleafTable, swpPfnBits: number, spec: SoftleafSpec): RawEntry {
  checkSwpPfnBits(swpPfnBits);
  const kind = spec.kind;
  if (kind === 'swap') {
    const t = spec.swapType;
    if (!Number.isInteger(t) || t < 0 || t >= table.maxSwapfiles) {
      throw new PvmwError('BAD_ENTRY', `swap type ${show(t)} is not a swap file type (MAX_SWAPFILES = ${table.maxSwapfiles})`);
    }
    return encodeSwap(t, spec.offset, spec.flags);
  }
  const type = (table.typeOf as Record<string, number | undefined>)[kind];
  if (type === undefined) {
    throw new PvmwError('BAD_ENTRY', `softleaf kind ${JSON.stringify(kind)} does not exist in this kernel configuration`);
  }
  if (spec.kind === 'marker') {
    const bits = (spec.uffdWp ? PTE_MARKER_UFFD_WP : 0) | (spec.poisoned ? PTE_MARKER_POISONED : 0) | (spec.guard ? PTE_MARKER_GUARD : 0);
    if (bits === 0) throw new PvmwError('BAD_ENTRY', `a PTE marker needs at least one bit (uffd-wp, poisoned, guard), got ${hex(bits)}`);
    return encodeSwap(type, bits, spec.flags);
  }
  const limit = 2 ** swpPfnBits;
  checkSwpOffset(spec.number, limit, `${kind} number`);
  if ((spec.young || spec.dirty) && !isMigration(spec.kind)) {
    throw new PvmwError('BAD_ENTRY', `young/dirty bits exist only on migration entries, not on ${kind} (number ${hex(spec.number)})`);
  }
  const offset = spec.number + (spec.young ? limit : 0) + (spec.dirty ? 2 * limit : 0);
  return encodeSwap(type, offset, spec.flags);
}

/** Read a softleaf with meaning (spec §3.3–§3.5): the inverse of encodeSoftleaf. Never rejects a type value. */
export function decodeSoftleaf(table: SoftleafTable, swpPfnBits: number, e: RawEntry): DecodedSoftleaf {
  checkSwpPfnBits(swpPfnBits);
  const s = decodeSwap(e);
  const kind: SoftleafKind | 'unknown' = table.kindOf[s.type] ?? 'unknown';
  const limit = 2 ** swpPfnBits;
  const hasPfn = kind !== 'unknown' && softleafHasPfn(kind);
  const mig = kind !== 'unknown' && isMigration(kind);
  const above = Math.floor(s.offset / limit); // bits from SWP_PFN_BITS up
  return {
    ...s,
    kind,
    number: hasPfn ? s.offset % limit : null,
    young: mig && (above & 1) !== 0,
    dirty: mig && (above & 2) !== 0,
    markerBits: kind === 'marker' ? s.offset % 8 : 0,
  };
}
