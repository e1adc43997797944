// page_vma_mapped_walk (spec §1.5, NEWEST) over the sparse tables, with the helpers of §1.4. The key and its
// matching rule (pfn-keyed, folio-keyed range or identity: D2) are in walk-match.ts, the D4 injection points in
// walk-inject.ts, and the drivers (many walks per call, or one walk a call at a time) in walk-batch.ts. One
// walk at a time runs on this module's state. The TypeScript reference (src/walk/reference.ts) is written
// independently from the spec; tests compare the two.

import { isTable, pteNone, ptePresent, pmdPresent, pmdLeaf, leafPfn, swpType, swpOffset, PTE_PFN_MASK } from './entry';
import { softleafCode, isDevicePrivateCode, isMigrationCode, SL_DP_WRITE, SL_DP_READ, SL_DEV_EXCL } from './softleaf';
import { rootHeight, slotOf } from './pagetable';
import { swpPfnMaskValue, NS_PFN } from './mapcount';
import {
  keyMatches, keyNr, keyPgoff, lookups, resetLookups, semanticsIs, nsOfCode, SEM_V6_14,
} from './walk-match';
import { arrive, injectReset, INJ_HUGE_READ, INJ_DEVICE_READ, INJ_MAP_PTE, INJ_MAP_PTE_LOCK, INJ_NEXT_PTE_LOCK } from './walk-inject';

export const PVMW_SYNC: u32 = 1 << 0;
export const PVMW_MIGRATION: u32 = 1 << 1;
export const PVMW_PGTABLE_CROSSED: u32 = 1 << 16;

export const LOCK_NONE: u32 = 0;
export const LOCK_PTE: u32 = 1;
export const LOCK_PMD: u32 = 2;
export const LOCK_HUGETLB: u32 = 3;

const PAGE: u64 = 4096;
const PMD_SIZE: u64 = 1 << 21;

// --- the walk's inputs and state (struct page_vma_mapped_walk) -------------------------------------------

let wRoot: usize = 0;
let vStart: u64 = 0;
let vEnd: u64 = 0;
let vPgoff: u64 = 0;
/** Height of the VMA's hugetlb leaves (1: 2 MiB, 2: 1 GiB), 0 for a non-hugetlb VMA. */
let vHuge: u32 = 0;
let flags: u32 = 0;

let address: u64 = 0;
let pmdSlot: usize = 0;
let pteSlot: usize = 0;
let lockKind: u32 = LOCK_NONE;
let lockTable: usize = 0;
/** map_pte's remembered PMD value and the PTE table whose lock it would take. */
let pmdval: u64 = 0;
let pendingTable: usize = 0;
/** Height and raw value of the last match. */
let matchHeight: u32 = 0;
let matchEntry: u64 = 0;

// Cost counters (issue 3 item 6): entries read per height, memmap lookups, restarts, tables crossed.
const reads = memory.data(4 * 5);
let restarts: u32 = 0;
let crossed: u32 = 0;

@inline function read(slot: usize, h: u32): u64 {
  const p = reads + (<usize>h << 2);
  store<u32>(p, load<u32>(p) + 1);
  return load<u64>(slot);
}

@inline function arrive_(point: u32): void {
  arrive(point, wRoot, address);
}

// --- locks -----------------------------------------------------------------------------------------------

@inline function lock(kind: u32, table: usize): void {
  lockKind = kind;
  lockTable = table;
}
@inline function unlock(): void {
  lockKind = LOCK_NONE;
  lockTable = 0;
}

/** page_vma_mapped_walk_done: unmap (nothing to do here) and drop the lock. */
function walkDone(): void {
  unlock();
}
/** not_found: done, and false. */
function notFound(): bool {
  walkDone();
  return false;
}

/** step_forward: to the start of the next size-aligned block; a wrap ends the walk. */
function stepForward(size: u64): void {
  const next = (address + size) & ~(size - 1);
  address = next == 0 ? u64.MAX_VALUE : next;
}

/** vma_address_end (spec §1.3). */
function vmaAddressEnd(): u64 {
  if (keyNr() == 1) return address + PAGE;
  const d = <i64>(keyPgoff() + keyNr()) - <i64>vPgoff;
  if (d < 0) return vEnd;
  const end = vStart + (<u64>d << 12);
  return end > vEnd ? vEnd : end;
}

// --- matching (check_pte / check_pmd, §1.4) --------------------------------------------------------------

/** check_pte: the entry at pteSlot (height h: 0, or a hugetlb leaf) covering pteNr pages. */
function checkPte(h: u32, pteNr: u64): bool {
  const e = read(pteSlot, h);
  const present = h == 0 ? ptePresent(e) : (e & 0x101) != 0;
  if ((flags & PVMW_MIGRATION) != 0) {
    if (present || e == 0) return false;
    const c = softleafCode(swpType(e));
    if (!isMigrationCode(c) && !(semanticsIs(SEM_V6_14) && c == SL_DEV_EXCL)) return false;
    if (!keyMatches(flags, nsOfCode(c), swpOffset(e) & swpPfnMaskValue(), pteNr, isDevicePrivateCode(c))) return false;
  } else if (present) {
    if (!keyMatches(flags, NS_PFN, leafPfn(e, h), pteNr, false)) return false;
  } else {
    if (h == 0 ? pteNone(e) : e == 0) return false;
    const c = softleafCode(swpType(e));
    if (c != SL_DP_WRITE && c != SL_DP_READ && c != SL_DEV_EXCL) return false;
    if (!keyMatches(flags, nsOfCode(c), swpOffset(e) & swpPfnMaskValue(), pteNr, isDevicePrivateCode(c))) return false;
  }
  matchHeight = h;
  matchEntry = e;
  return true;
}

/** check_pmd for a PMD-level candidate: its 512-page block against the key. */
function checkPmd(e: u64): bool {
  let ok: bool;
  if (pmdPresent(e)) ok = keyMatches(flags, NS_PFN, leafPfn(e, 1), 512, false);
  else {
    const c = softleafCode(swpType(e));
    ok = keyMatches(flags, nsOfCode(c), swpOffset(e) & swpPfnMaskValue(), 512, isDevicePrivateCode(c));
  }
  if (ok) {
    matchHeight = 1;
    matchEntry = e;
  }
  return ok;
}

@inline function isPmdMigration(e: u64): bool {
  return !pmdPresent(e) && e != 0 && isMigrationCode(softleafCode(swpType(e)));
}
@inline function isPmdDevicePrivate(e: u64): bool {
  if (pmdPresent(e) || e == 0) return false;
  const c = softleafCode(swpType(e));
  return c == SL_DP_WRITE || c == SL_DP_READ;
}

// --- map_pte (§1.4) --------------------------------------------------------------------------------------

/** Map the PTE table under pmdSlot: remember the PMD value and the table (whose lock map_pte takes) and point
 *  pteSlot at address. False, with pteSlot 0, if the PMD no longer points to a table. */
function mapTable(): bool {
  const e = read(pmdSlot, 1);
  if (!isTable(e, 1)) {
    pteSlot = 0;
    return false;
  }
  pmdval = e;
  pendingTable = <usize>(e & PTE_PFN_MASK);
  pteSlot = slotOf(pendingTable, address, 0);
  return true;
}

/** map_pte: true with pteSlot set (and the lock held); false with pteSlot 0 (no table) or set (no lock). */
function mapPte(): bool {
  arrive_(INJ_MAP_PTE);
  if ((flags & PVMW_SYNC) != 0) {
    // pte_offset_map_lock: map and lock in one step.
    if (!mapTable()) return false;
    lock(LOCK_PTE, pendingTable);
    return true;
  }
  while (true) {
    // pte_offset_map_rw_nolock: remember the PMD value and the lock.
    if (!mapTable()) return false;
    const pte = read(pteSlot, 0);
    if (pteNone(pte)) return false;
    if (ptePresent(pte)) {
      if ((flags & PVMW_MIGRATION) != 0) return false;
    } else if ((flags & PVMW_MIGRATION) == 0) {
      const c = softleafCode(swpType(pte));
      if (c != SL_DP_WRITE && c != SL_DP_READ && c != SL_DEV_EXCL) return false;
    }
    arrive_(INJ_MAP_PTE_LOCK);
    lock(LOCK_PTE, pendingTable);
    if (read(pmdSlot, 1) == pmdval) return true;
    unlock(); // the PMD changed under us: map again
  }
}

// --- the walk (§1.5) -------------------------------------------------------------------------------------

const RESTART: u32 = 0;
const THIS_PTE: u32 = 1;
const NEXT_PTE: u32 = 2;

/** One call of page_vma_mapped_walk. True: a match (matchHeight/matchEntry, the lock held). */
function pageVmaMappedWalk(): bool {
  // step 1: a PMD-level match is the only mapping of the range in this VMA.
  if (pmdSlot != 0 && pteSlot == 0) return notFound();
  // step 2: hugetlb.
  if (vHuge != 0) {
    if (pteSlot != 0) return notFound();
    let table = wRoot;
    for (let h = rootHeight(); h > vHuge; h--) {
      const e = read(slotOf(table, address, h), h);
      if (!isTable(e, h)) return false; // hugetlb_walk found no leaf slot: nothing to release
      table = <usize>(e & PTE_PFN_MASK);
    }
    pteSlot = slotOf(table, address, vHuge);
    lock(LOCK_HUGETLB, vHuge == 1 ? table : wRoot);
    if (!checkPte(vHuge, <u64>1 << (9 * <u64>vHuge))) return notFound();
    return true;
  }
  // step 3
  const end = vmaAddressEnd();
  // step 4
  let phase = pteSlot != 0 ? NEXT_PTE : RESTART;
  while (true) {
    if (phase == RESTART) {
      // step 5: descend (a do-while, as the kernel's: the first address is examined even at or past end).
      let descended = false;
      do {
        let table = wRoot;
        let h = rootHeight();
        let absent = false;
        for (; h > 1; h--) {
          const e = read(slotOf(table, address, h), h);
          if ((e & 1) == 0) {
            absent = true;
            break;
          }
          table = <usize>(e & PTE_PFN_MASK);
        }
        if (absent) {
          stepForward(<u64>1 << (12 + 9 * <u64>h)); // steps 5a–5c
          continue;
        }
        pmdSlot = slotOf(table, address, 1);
        let pmde = read(pmdSlot, 1); // step 5d: lockless
        if (pmdLeaf(pmde) || isPmdMigration(pmde)) {
          // step 5e
          arrive_(INJ_HUGE_READ);
          lock(LOCK_PMD, table);
          pmde = read(pmdSlot, 1);
          if (!pmdPresent(pmde)) {
            if ((flags & PVMW_MIGRATION) == 0) return notFound();
            if (!isPmdMigration(pmde) || !checkPmd(pmde)) return notFound();
            return true;
          }
          if (pmdLeaf(pmde)) {
            if ((flags & PVMW_MIGRATION) != 0) return notFound();
            if (!checkPmd(pmde)) return notFound();
            return true;
          }
          unlock(); // split under us: on to the PTE level
        } else if (!pmdPresent(pmde)) {
          // step 5f
          if (isPmdDevicePrivate(pmde)) {
            arrive_(INJ_DEVICE_READ);
            lock(LOCK_PMD, table);
            pmde = read(pmdSlot, 1);
            if (isPmdDevicePrivate(pmde)) {
              if ((flags & PVMW_MIGRATION) != 0) return notFound();
              if (!checkPmd(pmde)) return notFound();
              return true;
            }
            unlock(); // changed under us: on to the PTE level
          } else {
            // none or another non-present value. (With PVMW_SYNC the kernel takes and drops the PMD lock
            // here, sync_with_folio_pmd_zap; in a single-threaded simulation that has no visible effect.)
            stepForward(PMD_SIZE);
            continue;
          }
        }
        // step 5g
        if (!mapPte()) {
          if (pteSlot == 0) {
            restarts++;
            continue; // the table vanished: restart at the same address
          }
          phase = NEXT_PTE;
        } else {
          phase = THIS_PTE;
        }
        descended = true;
        break;
      } while (address < end);
      if (!descended) return false; // step 6: loop exhausted
    }
    if (phase == THIS_PTE) {
      // step 5h
      if (checkPte(0, 1)) return true;
      phase = NEXT_PTE;
    }
    // step 9: next_pte
    let e: u64 = 0;
    let crossedTable = false;
    do {
      address += PAGE;
      if (address >= end) return notFound();
      if ((address & (PMD_SIZE - 1)) == 0) {
        walkDone();
        pteSlot = 0;
        flags |= PVMW_PGTABLE_CROSSED;
        crossed++;
        crossedTable = true;
        break;
      }
      pteSlot += 8;
      e = read(pteSlot, 0);
    } while (pteNone(e));
    if (crossedTable) {
      phase = RESTART;
      continue;
    }
    if (lockKind == LOCK_NONE) {
      arrive_(INJ_NEXT_PTE_LOCK);
      lock(LOCK_PTE, pendingTable);
      if (read(pmdSlot, 1) != pmdval) {
        walkDone();
        pteSlot = 0;
        restarts++;
        phase = RESTART;
        continue;
      }
    }
    phase = THIS_PTE;
  }
  return false; // not reached: every path above returns
}

// --- setting a walk up from a job record (walk-batch.ts) -------------------------------------------------

/** vma_address (spec §1.3), or u64.MAX_VALUE for -EFAULT. */
function vmaAddress(pgoff: u64, nr: u64): u64 {
  if (pgoff >= vPgoff) {
    const a = vStart + ((pgoff - vPgoff) << 12);
    return a < vStart || a >= vEnd ? u64.MAX_VALUE : a;
  }
  return pgoff + nr - 1 >= vPgoff ? vStart : u64.MAX_VALUE;
}

/**
 * Set up a walk (struct page_vma_mapped_walk's inputs): the mm's root, the VMA, the key (setKey in
 * walk-match.ts: pfn-keyed number/nr_pages/pgoff, or folio and page), flags, and the start address (−1:
 * vma_address of the key). False: -EFAULT, the key lies outside the VMA; no walk.
 */
export function walkInit(root: usize, start: u64, end: u64, pgoff: u64, hugeHeight: u32, fl: u32, given: f64): bool {
  wRoot = root;
  vStart = start;
  vEnd = end;
  vPgoff = pgoff;
  vHuge = hugeHeight;
  flags = fl;
  address = given >= 0 ? <u64>given : vmaAddress(keyPgoff(), keyNr());
  pmdSlot = 0;
  pteSlot = 0;
  unlock();
  memory.fill(reads, 0, 4 * 5);
  injectReset();
  resetLookups();
  restarts = 0;
  crossed = 0;
  return address != u64.MAX_VALUE;
}

/** Write the last match as a match record (walk-batch.ts) for job j at `m`. */
export function writeMatch(m: usize, j: u32): void {
  store<u32>(m, j);
  store<u32>(m + 4, matchHeight | (lockKind << 8));
  store<u32>(m + 8, flags);
  store<u32>(m + 12, <u32>lockTable);
  store<f64>(m + 16, <f64>address);
  store<u64>(m + 24, matchEntry);
}

/** Write the walk's counters (reads per height, lookups, restarts, crossed) at the start of a counter record. */
export function writeCounters(c: usize): void {
  memory.copy(c, reads, 4 * 5);
  store<u32>(c + 20, lookups());
  store<u32>(c + 24, restarts);
  store<u32>(c + 28, crossed);
}

/** The walk's current address (the start address right after setup). */
export function walkAddress(): f64 {
  return <f64>address;
}

/** One call of page_vma_mapped_walk (for the drivers). */
export function walkStep(): bool {
  return pageVmaMappedWalk();
}

/** page_vma_mapped_walk_restart (§1.4): after the caller changed the tables, re-descend at the address. */
export function walkRestart(): void {
  unlock();
  pmdSlot = 0;
  pteSlot = 0;
}

/** page_vma_mapped_walk_done (§1.4), for a caller that stops before the walk returns false. */
export function walkEnd(): void {
  walkDone();
}
