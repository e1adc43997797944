// The key of a walk and its matching rule (spec §1.4 check_pte/check_pmd step 6, D2, D3): pfn-keyed (the
// kernel's; `series` adds the PVMW_DEVICE_PRIVATE namespace check), or folio-keyed with `range` (numbers derived
// from the folio once) or `identity` (each candidate resolved to its folio through the memmap).

import { folioOf, folioOrder, folioIndex } from './memmap';
import { indexOf, numberOfIndex, namespaceOfIndex } from './ranges';
import { deviceNamespace, NS_PFN } from './mapcount';
import { isDevicePrivateCode } from './softleaf';

export const PVMW_DEVICE_PRIVATE: u32 = 1 << 2;

export const SEM_NEWEST: u32 = 0;
export const SEM_SERIES: u32 = 1;
export const SEM_V6_14: u32 = 2;
let semantics: u32 = SEM_NEWEST;
export function setWalkSemantics(s: u32): void {
  semantics = s;
}

export const KEY_PFN: u32 = 0;
export const KEY_FOLIO_RANGE: u32 = 1;
export const KEY_FOLIO_IDENTITY: u32 = 2;

export function semanticsIs(s: u32): bool {
  return semantics == s;
}

/** pfn key: its number; range key: the folio's first number (or the page's). */
let kMode: u32 = KEY_PFN;
/** pfn key: its number; range key: the folio's first number (or the page's). */
let kNumber: u64 = 0;
/** range key: the folio's namespace. */
let kNs: u32 = 0;
let kNr: u64 = 1;
let kPgoff: u64 = 0;
/** identity key: the folio (head index) and the page (global index), or -1. */
let kFolio: f64 = -1;
let kPage: f64 = -1;
let nLookups: u32 = 0;

/**
 * Set the key: pfn-keyed (number, nr_pages, pgoff), or folio-keyed (number = the folio's id, nrOrPage = a
 * page's global index or −1). The folio-keyed walk holds the folio and page, no pfn; `range` derives its
 * numbers from the folio here, once.
 */
export function setKey(mode: u32, number: f64, nrOrPage: f64, pgoff: f64): void {
  kMode = mode;
  if (mode == KEY_PFN) {
    kNumber = <u64>number;
    kNr = <u64>nrOrPage;
    kPgoff = <u64>pgoff;
    return;
  }
  kFolio = number;
  kPage = nrOrPage;
  const first = kPage >= 0 ? kPage : kFolio;
  kNr = kPage >= 0 ? 1 : <u64>1 << folioOrder(kFolio);
  kPgoff = <u64>folioIndex(kFolio) + <u64>(first - kFolio);
  kNumber = <u64>numberOfIndex(first);
  kNs = namespaceOfIndex(first);
}

export function keyNr(): u64 {
  return kNr;
}
export function keyPgoff(): u64 {
  return kPgoff;
}
export function lookups(): u32 {
  return nLookups;
}
export function resetLookups(): void {
  nLookups = 0;
}

/** Does a candidate (namespace, first number, pages, device-private-ness) match the key? */
export function keyMatches(flags: u32, ns: u32, number: u64, pages: u64, devicePrivate: bool): bool {
  if (kMode == KEY_PFN) {
    // SERIES step 5: the candidate's device-private-ness must equal PVMW_DEVICE_PRIVATE (D3 at PMD level).
    if (semantics == SEM_SERIES && devicePrivate != ((flags & PVMW_DEVICE_PRIVATE) != 0)) return false;
    return number <= kNumber + kNr - 1 && kNumber <= number + pages - 1;
  }
  if (kMode == KEY_FOLIO_RANGE) {
    if (ns != kNs) return false;
    return number <= kNumber + kNr - 1 && kNumber <= number + pages - 1;
  }
  // identity: the folio that owns the candidate's first page (huge leaves map whole folios).
  nLookups++;
  const g = indexOf(ns, <f64>number);
  if (g < 0 || folioOf(g) != kFolio) return false;
  return kPage < 0 || (kPage >= g && kPage < g + <f64>pages);
}

/** The namespace of a pfn-carrying softleaf's number (spec §4.4). */
@inline export function nsOfCode(c: u32): u32 {
  return isDevicePrivateCode(c) ? deviceNamespace() : NS_PFN;
}
