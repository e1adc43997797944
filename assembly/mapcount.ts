// rmap accounting of installed entries (kernel-operations.md §0.2, §0.4; spec §6.5 with CONFIG_PAGE_MAPCOUNT):
// which entries are mappings of a folio page, and the mapcount change a mapping makes. Present entries
// (P or PROTNONE; not pte_special, the zero page and PFNMAP), device-private entries and, from 6.15 on,
// device-exclusive entries map a page; migration, swap, hwpoison entries and markers do not. A PTE mapping
// counts on the page (and the folio's large mapcount); a PMD or PUD leaf counts on the folio's entire
// mapcount. Installing adds, clearing subtracts: one decision for both.

import { ptePresent, pteNone, pmdPresent, leafPfn, swpType, swpOffset } from './entry';
import { softleafCode, SL_DP_WRITE, SL_DP_READ, SL_DEV_EXCL } from './softleaf';
import { folioOf, folioOrder, folioFlags, folioMapping, folioIndex, pageMapcountAdd, entireMapcountAdd } from './memmap';
import { indexOf } from './ranges';

/** Softleaf codes (src/model/softleaf.ts SOFTLEAF_CODE). */
export const NS_PFN: u32 = 0;
export const NS_DEVICE_PRIVATE: u32 = 1;
const PAGE_SPECIAL: u64 = 1 << 9;

/** Namespace of the numbers in device-private entries: pfn (today's kernel) or offset (the series). */
let deviceNs: u32 = NS_PFN;
/** Whether device-exclusive entries are mappings (6.15+: yes; v6.14: no). */
let exclusiveMaps: bool = true;
/** SWP_PFN_MASK: the pfn bits of a pfn-carrying softleaf's offset. */
let swpPfnMask: u64 = (<u64>1 << 34) - 1;

/** The namespace device-private entries name pages in. */
export function deviceNamespace(): u32 {
  return deviceNs;
}
/** SWP_PFN_MASK of this geometry. */
export function swpPfnMaskValue(): u64 {
  return swpPfnMask;
}

export function setRmapConfig(deviceNamespace: u32, deviceExclusiveMaps: bool, swpPfnBits: u32): void {
  deviceNs = deviceNamespace;
  exclusiveMaps = deviceExclusiveMaps;
  swpPfnMask = (<u64>1 << swpPfnBits) - 1;
}

/** The global memmap index of the page a leaf at height h maps, or -1 if it maps none. */
export function mappedIndex(e: u64, h: u32): f64 {
  if (h == 0 ? pteNone(e) : e == 0) return -1;
  if (h == 0 ? ptePresent(e) : pmdPresent(e)) {
    if ((e & PAGE_SPECIAL) != 0) return -1;
    return indexOf(NS_PFN, <f64>leafPfn(e, h));
  }
  const code = softleafCode(swpType(e));
  const number = <f64>(swpOffset(e) & swpPfnMask);
  if (code == SL_DP_WRITE || code == SL_DP_READ) return indexOf(deviceNs, number);
  if (code == SL_DEV_EXCL && exclusiveMaps) return indexOf(NS_PFN, number);
  return -1;
}

/** Apply the mapcount change of one leaf. Returns 1 if it was a mapping of a folio page. */
export function account(e: u64, h: u32, delta: i32): u32 {
  const g = mappedIndex(e, h);
  if (g < 0) return 0;
  const head = folioOf(g);
  if (head < 0) return 0;
  if (h == 0) pageMapcountAdd(g, 1, delta);
  else entireMapcountAdd(head, delta);
  return 1;
}

/** Folio flag bits of src/model/folio.ts FOLIO_FLAG used here. */
const FOLIO_ANON: u32 = 1 << 9;
const FOLIO_KSM: u32 = 1 << 10;

/**
 * First page in [g, g + n) that cannot be mapped where the host means to: it belongs to no folio, or its
 * folio carries any of `forbidFlags` (hugetlb pages are never PTE-mapped), or, with `checkRmap`, the folio
 * would be unreachable by rmap from that VMA (kernel-operations.md §0.3): an anon folio in a shared file VMA,
 * a file folio in an anonymous VMA or of another file (private file VMAs take both: COW copies are anon), or a page index (folio index + page offset) other than the linear page
 * index it is mapped at, lpi0 + (page − g). KSM folios have no meaningful index. Returns -1 if all fit.
 */
export function firstUnfitPage(gf: f64, n: f64, forbidFlags: u32, checkRmap: bool, vmaKind: u32, file: u32, lpi0: f64): f64 {
  let i: f64 = 0;
  while (i < n) {
    const head = folioOf(gf + i);
    if (head < 0) return gf + i;
    const flags = folioFlags(head);
    if ((flags & forbidFlags) != 0) return gf + i;
    if (checkRmap) {
      const isAnon = (flags & FOLIO_ANON) != 0;
      // vmaKind: 0 shared file VMA (its file's folios), 1 anonymous VMA (anon folios), 2 private file VMA (both).
      if (isAnon ? vmaKind == 0 : vmaKind == 1 || folioMapping(head) != file) return gf + i;
      if ((flags & FOLIO_KSM) == 0 && folioIndex(head) - head != lpi0 - gf) return gf + i;
    }
    i = head + <f64>(<u64>1 << folioOrder(head)) - gf; // on to the next folio
  }
  return -1;
}

/** mappedIndex for the host, the entry given as two u32 halves. */
export function entryMappedIndex(lo: u32, hi: u32, h: u32): f64 {
  return mappedIndex((<u64>hi << 32) | <u64>lo, h);
}

/**
 * First page in [g, g + n) whose folio is anon, not KSM, and has a mapping (anon_vma id) other than `mapping`,
 * or -1. The host runs it to learn the anon_vmas of the folios it is about to map, one distinct id per call.
 */
export function firstOtherAnonVma(gf: f64, n: f64, mapping: u32): f64 {
  let i: f64 = 0;
  while (i < n) {
    const head = folioOf(gf + i);
    if (head < 0) {
      i += 1;
      continue;
    }
    const flags = folioFlags(head);
    if ((flags & (FOLIO_ANON | FOLIO_KSM)) == FOLIO_ANON && folioMapping(head) != mapping) return gf + i;
    i = head + <f64>(<u64>1 << folioOrder(head)) - gf;
  }
  return -1;
}
