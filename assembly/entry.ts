// x86-64 entry encode/decode on the hot path (spec §3.2, §3.5). Heights count from the leaf: 0 = PTE,
// 1 = PMD, 2 = PUD, 3 and 4 = P4D/PGD. The TypeScript codec (src/model/entry.ts) is the independent
// reference; tests compare the two.

export const _PAGE_PRESENT: u64 = 1 << 0;
export const _PAGE_RW: u64 = 1 << 1;
export const _PAGE_USER: u64 = 1 << 2;
export const _PAGE_ACCESSED: u64 = 1 << 5;
export const _PAGE_DIRTY: u64 = 1 << 6;
export const _PAGE_PSE: u64 = 1 << 7;
export const _PAGE_PROTNONE: u64 = 1 << 8;
/** PFN field of a 4 KiB entry or table pointer: bits 12..51. */
export const PTE_PFN_MASK: u64 = 0x000f_ffff_ffff_f000;
/** Flags of a pointer to a lower table (_PAGE_TABLE: present, writable, user, accessed, dirty). */
export const TABLE_FLAGS: u64 = 0x67;

/** pte_none: zero once A and D are masked off (the KNL erratum may set them spuriously). */
@inline export function pteNone(e: u64): bool {
  return (e & ~(_PAGE_ACCESSED | _PAGE_DIRTY)) == 0;
}

/** pte_present: P, or PROTNONE with P clear. */
@inline export function ptePresent(e: u64): bool {
  return (e & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0;
}

/** pmd_present: P, PROTNONE or PSE (a huge PMD invalidated during a split keeps PSE). */
@inline export function pmdPresent(e: u64): bool {
  return (e & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE)) != 0;
}

/** pmd_trans_huge / pmd_leaf: PSE set. */
@inline export function pmdLeaf(e: u64): bool {
  return (e & _PAGE_PSE) != 0;
}

/** Does the entry at height h (≥ 1) point to a lower table? Above the PUD every present entry does. */
@inline export function isTable(e: u64, h: u32): bool {
  if ((e & _PAGE_PRESENT) == 0) return false;
  return h >= 3 || (e & _PAGE_PSE) == 0;
}

/** The pfn of a present (or PROTNONE) leaf at height h, with L1TF inversion undone (spec §3.2). */
@inline export function leafPfn(e: u64, h: u32): u64 {
  let v = e;
  if (v != 0 && (v & _PAGE_PRESENT) == 0) v = ~v;
  // PMD leaves keep PAT at bit 12, PUD leaves below bit 30: mask the low pfn bits of the huge page.
  const low: u64 = h == 0 ? 0 : ((<u64>1 << (9 * <u64>h)) - 1) << 12;
  return (v & PTE_PFN_MASK & ~low) >> 12;
}

/** A present leaf for `pfn` at height h with the given low protection bits (PSE added for h ≥ 1). */
@inline export function mkLeaf(pfn: u64, h: u32, prot: u64): u64 {
  const field = PTE_PFN_MASK & ~(h == 0 ? 0 : ((<u64>1 << (9 * <u64>h)) - 1) << 12);
  let e = (pfn << 12) & field;
  if ((prot & _PAGE_PRESENT) == 0 && (prot & _PAGE_PROTNONE) != 0) e = ~e & field; // L1TF: invert the field
  return e | prot | (h > 0 ? _PAGE_PSE : 0);
}

// Swap format (§3.5): type in bits 59..63, NOT(offset) in bits 9..58, flag bits 1..3.
export const SWP_TYPE_SHIFT: u64 = 59;
export const SWP_OFFSET_SHIFT: u64 = 14;
export const SWP_FLAG_BITS: u64 = 0xe; // soft-dirty, uffd-wp, exclusive

@inline export function swpType(e: u64): u32 {
  return <u32>(e >> SWP_TYPE_SHIFT);
}
@inline export function swpOffset(e: u64): u64 {
  return (~e << 5) >> SWP_OFFSET_SHIFT;
}
@inline export function mkSwp(type: u32, offset: u64): u64 {
  return ((~offset << SWP_OFFSET_SHIFT) >> 5) | (<u64>type << SWP_TYPE_SHIFT);
}
