// page_vma_mapped_walk (spec §1.5, NEWEST) over the sparse tables, with the helpers of §1.4, in three key
// modes (D2): pfn-keyed (the kernel's walk; `series` adds the PVMW_DEVICE_PRIVATE namespace check), and
// folio-keyed with `range` or `identity` matching. One walk at a time runs on module state; walkRun drives it
// to the end writing every true return, walkBatch runs many walks in one call. The TypeScript reference
// (src/walk/reference.ts) is written independently from the spec; tests compare the two.

import { isTable, pteNone, ptePresent, pmdPresent, pmdLeaf, leafPfn, swpType, swpOffset, PTE_PFN_MASK } from './entry';
import { softleafCode } from './softleaf';
import { rootHeight, slotOf } from './pagetable';
import { folioOf, folioOrder, folioIndex } from './memmap';
import { indexOf, numberOfIndex, namespaceOfIndex } from './ranges';
import { deviceNamespace, swpPfnMaskValue, NS_PFN } from './mapcount';
import { pmdSplit, pteTableFree, pteTableReplace } from './split';
import { E_NOFOLIO, fail, setResult } from './status';

export const PVMW_SYNC: u32 = 1 << 0;
export const PVMW_MIGRATION: u32 = 1 << 1;
export const PVMW_DEVICE_PRIVATE: u32 = 1 << 2;
export const PVMW_PGTABLE_CROSSED: u32 = 1 << 16;

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

export const LOCK_NONE: u32 = 0;
export const LOCK_PTE: u32 = 1;
export const LOCK_PMD: u32 = 2;
export const LOCK_HUGETLB: u32 = 3;

const PAGE: u64 = 4096;
const PMD_SIZE: u64 = 1 << 21;

// Softleaf codes (src/model/softleaf.ts SOFTLEAF_CODE).
const SL_MIG_READ: u32 = 3;
const SL_MIG_WRITE: u32 = 5;
const SL_DP_WRITE: u32 = 6;
const SL_DP_READ: u32 = 7;
const SL_DEV_EXCL: u32 = 8;
const SL_MIG_DP_READ: u32 = 9;
const SL_MIG_DP_WRITE: u32 = 11;

// --- the walk's inputs and state (struct page_vma_mapped_walk) -------------------------------------------

let wRoot: usize = 0;
let vStart: u64 = 0;
let vEnd: u64 = 0;
let vPgoff: u64 = 0;
/** Height of the VMA's hugetlb leaves (1: 2 MiB, 2: 1 GiB), 0 for a non-hugetlb VMA. */
let vHuge: u32 = 0;
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
let lookups: u32 = 0;
let restarts: u32 = 0;
let crossed: u32 = 0;

@inline function read(slot: usize, h: u32): u64 {
  const p = reads + (<usize>h << 2);
  store<u32>(p, load<u32>(p) + 1);
  return load<u64>(slot);
}

// --- D4 race injection -----------------------------------------------------------------------------------

export const INJ_HUGE_READ: u32 = 1;
export const INJ_DEVICE_READ: u32 = 2;
export const INJ_MAP_PTE: u32 = 3;
export const INJ_MAP_PTE_LOCK: u32 = 4;
export const INJ_NEXT_PTE_LOCK: u32 = 5;
export const CHG_SPLIT_PMD: u32 = 1;
export const CHG_FREE_PTE_TABLE: u32 = 2;
export const CHG_REPLACE_PTE_TABLE: u32 = 3;
const MAX_INJ: u32 = 8;
const injPoint = memory.data(4 * 8);
const injChange = memory.data(4 * 8);
const injNth = memory.data(4 * 8);
const arrivals = memory.data(4 * 8);
let nInj: u32 = 0;

export function injectClear(): void {
  nInj = 0;
}
export function injectAdd(point: u32, change: u32, nth: u32): bool {
  if (nInj >= MAX_INJ) return false;
  store<u32>(injPoint + (nInj << 2), point);
  store<u32>(injChange + (nInj << 2), change);
  store<u32>(injNth + (nInj << 2), nth);
  nInj++;
  return true;
}

/** The walk reaches an injection point: apply the changes due at this arrival (the engine mutation). */
function arrive(point: u32): void {
  if (nInj == 0) return;
  const a = arrivals + (<usize>point << 2);
  const n = load<u32>(a) + 1;
  store<u32>(a, n);
  for (let i: u32 = 0; i < nInj; i++) {
    if (load<u32>(injPoint + (i << 2)) != point || load<u32>(injNth + (i << 2)) != n) continue;
    const c = load<u32>(injChange + (i << 2));
    if (c == CHG_SPLIT_PMD) pmdSplit(wRoot, address);
    else if (c == CHG_FREE_PTE_TABLE) pteTableFree(wRoot, address);
    else if (c == CHG_REPLACE_PTE_TABLE) pteTableReplace(wRoot, address);
  }
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
  if (kNr == 1) return address + PAGE;
  const d = <i64>(kPgoff + kNr) - <i64>vPgoff;
  if (d < 0) return vEnd;
  const end = vStart + (<u64>d << 12);
  return end > vEnd ? vEnd : end;
}

// --- matching (check_pte / check_pmd, §1.4) --------------------------------------------------------------

/** Does a candidate (namespace, first number, pages, device-private-ness) match the key? */
function keyMatches(ns: u32, number: u64, pages: u64, devicePrivate: bool): bool {
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
  lookups++;
  const g = indexOf(ns, <f64>number);
  if (g < 0 || folioOf(g) != kFolio) return false;
  return kPage < 0 || (kPage >= g && kPage < g + <f64>pages);
}

@inline function isDevicePrivateCode(c: u32): bool {
  return c == SL_DP_WRITE || c == SL_DP_READ || (c >= SL_MIG_DP_READ && c <= SL_MIG_DP_WRITE);
}
@inline function isMigrationCode(c: u32): bool {
  return (c >= SL_MIG_READ && c <= SL_MIG_WRITE) || (c >= SL_MIG_DP_READ && c <= SL_MIG_DP_WRITE);
}
@inline function nsOfCode(c: u32): u32 {
  return c == SL_DP_WRITE || c == SL_DP_READ || (c >= SL_MIG_DP_READ && c <= SL_MIG_DP_WRITE) ? deviceNamespace() : NS_PFN;
}

/** check_pte: the entry at pteSlot (height h: 0, or a hugetlb leaf) covering pteNr pages. */
function checkPte(h: u32, pteNr: u64): bool {
  const e = read(pteSlot, h);
  const present = h == 0 ? ptePresent(e) : (e & 0x101) != 0;
  if ((flags & PVMW_MIGRATION) != 0) {
    if (present || e == 0) return false;
    const c = softleafCode(swpType(e));
    if (!isMigrationCode(c) && !(semantics == SEM_V6_14 && c == SL_DEV_EXCL)) return false;
    if (!keyMatches(nsOfCode(c), swpOffset(e) & swpPfnMaskValue(), pteNr, isDevicePrivateCode(c))) return false;
  } else if (present) {
    if (!keyMatches(NS_PFN, leafPfn(e, h), pteNr, false)) return false;
  } else {
    if (h == 0 ? pteNone(e) : e == 0) return false;
    const c = softleafCode(swpType(e));
    if (c != SL_DP_WRITE && c != SL_DP_READ && c != SL_DEV_EXCL) return false;
    if (!keyMatches(nsOfCode(c), swpOffset(e) & swpPfnMaskValue(), pteNr, isDevicePrivateCode(c))) return false;
  }
  matchHeight = h;
  matchEntry = e;
  return true;
}

/** check_pmd for a PMD-level candidate: its 512-page block against the key. */
function checkPmd(e: u64): bool {
  let ok: bool;
  if (pmdPresent(e)) ok = keyMatches(NS_PFN, leafPfn(e, 1), 512, false);
  else {
    const c = softleafCode(swpType(e));
    ok = keyMatches(nsOfCode(c), swpOffset(e) & swpPfnMaskValue(), 512, isDevicePrivateCode(c));
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

/** map_pte: true with pteSlot set (and the lock held); false with pteSlot 0 (no table) or set (no lock). */
function mapPte(): bool {
  arrive(INJ_MAP_PTE);
  if ((flags & PVMW_SYNC) != 0) {
    // pte_offset_map_lock: map and lock in one step.
    const e = read(pmdSlot, 1);
    if (!isTable(e, 1)) {
      pteSlot = 0;
      return false;
    }
    pmdval = e;
    pendingTable = <usize>(e & PTE_PFN_MASK);
    pteSlot = slotOf(pendingTable, address, 0);
    lock(LOCK_PTE, pendingTable);
    return true;
  }
  while (true) {
    // pte_offset_map_rw_nolock: remember the PMD value and the lock.
    const e = read(pmdSlot, 1);
    if (!isTable(e, 1)) {
      pteSlot = 0;
      return false;
    }
    pmdval = e;
    pendingTable = <usize>(e & PTE_PFN_MASK);
    pteSlot = slotOf(pendingTable, address, 0);
    const pte = read(pteSlot, 0);
    if (pteNone(pte)) return false;
    if (ptePresent(pte)) {
      if ((flags & PVMW_MIGRATION) != 0) return false;
    } else if ((flags & PVMW_MIGRATION) == 0) {
      const c = softleafCode(swpType(pte));
      if (c != SL_DP_WRITE && c != SL_DP_READ && c != SL_DEV_EXCL) return false;
    }
    arrive(INJ_MAP_PTE_LOCK);
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
          arrive(INJ_HUGE_READ);
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
            arrive(INJ_DEVICE_READ);
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
      arrive(INJ_NEXT_PTE_LOCK);
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

// --- driving walks: one walk per job, many jobs per call -------------------------------------------------

/** vma_address (spec §1.3), or u64.MAX_VALUE for -EFAULT. */
function vmaAddress(pgoff: u64, nr: u64): u64 {
  if (pgoff >= vPgoff) {
    const a = vStart + ((pgoff - vPgoff) << 12);
    return a < vStart || a >= vEnd ? u64.MAX_VALUE : a;
  }
  return pgoff + nr - 1 >= vPgoff ? vStart : u64.MAX_VALUE;
}

/**
 * Job records (JOB_BYTES each), written by the host (src/walk/pvmw.ts):
 *   0 u32 root · 4 u32 key mode | hugetlb height << 8 | stop after the first match << 16 · 8 u32 flags
 *   16 f64 VMA start · 24 f64 VMA end · 32 f64 VMA pgoff
 *   40 f64 number (pfn key) or folio id (folio keys) · 48 f64 nr_pages (pfn key) or page index, −1 for none
 *   56 f64 pgoff (pfn key) · 64 f64 start address, −1 for vma_address
 * Match records (MATCH_BYTES): 0 u32 job · 4 u32 height | lock kind << 8 · 8 u32 flags · 12 u32 lock table
 *   16 f64 address · 24 u64 entry.
 * Counter records (COUNTER_BYTES): u32 reads at heights 0..4, memmap lookups, restarts, tables crossed,
 *   matches, status (0 walked, 1 -EFAULT: the key lies outside the VMA, no walk) · 40 f64 start address.
 */
export const JOB_BYTES: u32 = 80;
export const MATCH_BYTES: u32 = 32;
export const COUNTER_BYTES: u32 = 48;

function setup(job: usize): bool {
  wRoot = <usize>load<u32>(job);
  const info = load<u32>(job + 4);
  kMode = info & 0xff;
  vHuge = (info >> 8) & 0xff;
  flags = load<u32>(job + 8);
  vStart = <u64>load<f64>(job + 16);
  vEnd = <u64>load<f64>(job + 24);
  vPgoff = <u64>load<f64>(job + 32);
  const number = load<f64>(job + 40);
  const nrOrPage = load<f64>(job + 48);
  if (kMode == KEY_PFN) {
    kNumber = <u64>number;
    kNr = <u64>nrOrPage;
    kPgoff = <u64>load<f64>(job + 56);
  } else {
    // The walk holds the folio (and page), no pfn; `range` derives its numbers from the folio once.
    kFolio = number;
    kPage = nrOrPage;
    const first = kPage >= 0 ? kPage : kFolio;
    kNr = kPage >= 0 ? 1 : <u64>1 << folioOrder(kFolio);
    kPgoff = <u64>folioIndex(kFolio) + <u64>(first - kFolio);
    kNumber = <u64>numberOfIndex(first);
    kNs = namespaceOfIndex(first);
  }
  const given = load<f64>(job + 64);
  address = given >= 0 ? <u64>given : vmaAddress(kPgoff, kNr);
  pmdSlot = 0;
  pteSlot = 0;
  unlock();
  memory.fill(reads, 0, 4 * 5);
  memory.fill(arrivals, 0, 4 * 8);
  lookups = 0;
  restarts = 0;
  crossed = 0;
  return address != u64.MAX_VALUE;
}

// --- one walk, step by step (callers that act between matches, like try_to_unmap_one) ------------------

/** Start the walk of the job at `job` (the host checked it); its start address goes to `counters` + 40.
 *  False: -EFAULT, the key lies outside the VMA. */
export function walkBegin(job: usize, counters: usize): bool {
  const walked = setup(job);
  store<f64>(counters + 40, walked ? <f64>address : -1);
  return walked;
}

/** One call of page_vma_mapped_walk; on true the match is written at `out` (a match record, job 0). */
export function walkNext(out: usize): bool {
  if (!pageVmaMappedWalk()) return false;
  store<u32>(out, 0);
  store<u32>(out + 4, matchHeight | (lockKind << 8));
  store<u32>(out + 8, flags);
  store<u32>(out + 12, <u32>lockTable);
  store<f64>(out + 16, <f64>address);
  store<u64>(out + 24, matchEntry);
  return true;
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

/** The counters of the step-wise walk, written as a counter record at `out`. */
export function walkCounters(out: usize): void {
  memory.copy(out, reads, 4 * 5);
  store<u32>(out + 20, lookups);
  store<u32>(out + 24, restarts);
  store<u32>(out + 28, crossed);
}

/**
 * Run jobs [0, nJobs) at `jobs`, writing every match at `out` (room for `cap`) and each job's counters at
 * `counters`. Returns the number of jobs completed: fewer than nJobs when the next job's matches did not fit
 * (its partial matches are dropped; run it again with fresh room). The total matches written go to the result
 * register. Folio keys must name folios (the host checks); E_NOFOLIO otherwise.
 */
export function walkBatch(jobs: usize, nJobs: u32, out: usize, cap: u32, counters: usize): i32 {
  let n: u32 = 0;
  for (let j: u32 = 0; j < nJobs; j++) {
    const job = jobs + <usize>j * JOB_BYTES;
    const mode = load<u32>(job + 4) & 0xff;
    if (mode != KEY_PFN && folioOf(load<f64>(job + 40)) != load<f64>(job + 40)) return fail(E_NOFOLIO, load<f64>(job + 40));
    const c = counters + <usize>j * COUNTER_BYTES;
    const stopFirst = (load<u32>(job + 4) & (1 << 16)) != 0;
    let found: u32 = 0;
    const walked = setup(job);
    store<f64>(c + 40, walked ? <f64>address : -1);
    if (walked) {
      while (pageVmaMappedWalk()) {
        if (n + found >= cap) {
          walkDone();
          setResult(<u64>n);
          return <i32>j;
        }
        const m = out + <usize>(n + found) * MATCH_BYTES;
        store<u32>(m, j);
        store<u32>(m + 4, matchHeight | (lockKind << 8));
        store<u32>(m + 8, flags);
        store<u32>(m + 12, <u32>lockTable);
        store<f64>(m + 16, <f64>address);
        store<u64>(m + 24, matchEntry);
        found++;
        if (stopFirst) {
          walkDone();
          break;
        }
      }
      store<u32>(c + 36, 0);
    } else {
      store<u32>(c + 36, 1);
    }
    memory.copy(c, reads, 4 * 5);
    store<u32>(c + 20, lookups);
    store<u32>(c + 24, restarts);
    store<u32>(c + 28, crossed);
    store<u32>(c + 32, found);
    n += found;
  }
  setResult(<u64>n);
  return <i32>nJobs;
}
