// Splitting a folio in the memmap: the memmap half of a uniform folio split (kernel-operations.md §6.2 step 5,
// __split_folio_to_order). The operations layer (src/mm/split-folio.ts) has already taken every mapping away
// (§6.2 step 3); here the folio's page words and records become those of 2^(order − newOrder) folios of
// newOrder, each with
//   * mapping = the old mapping, index = the old index + its first page's offset,
//   * the old folio flags (bits 9..19: anon, dirty, swapbacked, locked, mlocked, device-private …),
//   * its pages' own AnonExclusive and hwpoison bits (a head's move from its page word to its record),
//   * mapcounts 0 (there are no mappings), content tags untouched (they are per page, D8).
// The non-uniform (buddy) split is not done here.

import {
  allocRecord, folioCountAdd, freeRecord, isFolio, recAt, recordFramesNeeded, wordAt, wordOf, FOLIO_FLAGS_MASK,
  INDEX_HI_SHIFT, PG_ANON_EXCLUSIVE, PG_HWPOISON, PG_ORDER_MASK, W_ANON_EXCLUSIVE, W_HWPOISON, W_MAPCOUNT, W_ORDER_SHIFT,
  W_TAIL,
} from './memmap';
import { reserveBlock } from './frames';
import { OK, E_BUSY, E_CONFLICT, E_NOFOLIO, E_NOMEM, fail } from './status';

/**
 * Split the folio whose head is g into folios of `newOrder`. Fails, changing nothing, with E_NOFOLIO (g is not
 * a folio's head), E_CONFLICT (newOrder is not below the folio's order), E_BUSY (errAt = the first page still
 * mapped: a split folio must have every mapcount 0) or E_NOMEM (the new records would pass the ceiling; they
 * are reserved before anything changes). The first new folio keeps the id g; the others are g + k·2^newOrder.
 */
export function folioSplit(gf: f64, newOrder: u32): i32 {
  const g = <u64>gf;
  if (!isFolio(gf)) return fail(E_NOFOLIO, gf);
  const slot0 = wordOf(g) - 1; // a head's word is its record slot + 1
  const r = recAt(slot0);
  const info = load<u32>(r + 8);
  const order = info & PG_ORDER_MASK;
  if (newOrder >= order) return fail(E_CONFLICT, gf);
  const n = <u64>1 << order;
  // Mapcounts: the head page's own, the entire and the large one (second record), then every tail's own.
  if (load<u32>(r + 12) != 0 || load<u32>(r + 16) != 0 || load<u32>(r + 20) != 0) return fail(E_BUSY, gf);
  for (let i: u64 = 1; i < n; i++) {
    if ((load<u32>(wordAt(g + i)) & W_MAPCOUNT) != 0) return fail(E_BUSY, <f64>(g + i));
  }
  const count: u32 = 1 << (order - newOrder);
  // Order 0: every piece takes a single record and the pair is freed; else the head piece keeps the pair.
  const frames = newOrder == 0 ? recordFramesNeeded(count, 0) : recordFramesNeeded(0, count - 1);
  if (frames < 0 || (frames > 0 && !reserveBlock(<u32>frames))) return fail(E_NOMEM, gf);

  const mapping = load<u32>(r);
  const index = (<u64>(info >> INDEX_HI_SHIFT) << 32) | <u64>load<u32>(r + 4);
  const flags = info & FOLIO_FLAGS_MASK;
  const headBits = info & (PG_ANON_EXCLUSIVE | PG_HWPOISON);
  if (newOrder == 0) freeRecord(slot0, true);
  const m = <u64>1 << newOrder;
  const tail = W_TAIL | (newOrder << W_ORDER_SHIFT);
  for (let k: u32 = 0; k < count; k++) {
    const h = g + (<u64>k << newOrder);
    const hp = wordAt(h);
    let pageBits = headBits;
    if (k != 0) {
      const w = load<u32>(hp);
      pageBits = ((w & W_ANON_EXCLUSIVE) != 0 ? PG_ANON_EXCLUSIVE : 0) | ((w & W_HWPOISON) != 0 ? PG_HWPOISON : 0);
    }
    const slot = k == 0 && newOrder != 0 ? slot0 : allocRecord(newOrder != 0);
    const pr = recAt(slot);
    const idx = index + (<u64>k << newOrder);
    store<u32>(pr, mapping);
    store<u32>(pr + 4, <u32>idx);
    store<u32>(pr + 8, newOrder | flags | pageBits | (<u32>(idx >> 32) << INDEX_HI_SHIFT));
    store<u32>(pr + 12, 0);
    store<u32>(hp, slot + 1);
    for (let i: u64 = 1; i < m; i++) {
      const p = wordAt(h + i);
      store<u32>(p, (load<u32>(p) & (W_ANON_EXCLUSIVE | W_HWPOISON)) | tail);
    }
  }
  folioCountAdd(count - 1);
  return OK;
}
