// Three changes to the PMD level of one address space (kernel-operations.md §6.1, decisions.md D4): splitting a
// PMD-level leaf into a PTE table of the same pages, freeing a PTE table, and moving a PTE table to another
// frame. The walk injects them at its re-check points (assembly/walk.ts); the host calls them through the
// pt* wrappers below. Like pagetable.ts, every call checks and reserves first, so a failure changes nothing.
// A failure is E_CONFLICT (errAt = va, errHeight = the height of the entry in the way) or E_NOMEM.

import { countAdd, countOf, reserveFrames } from './frames';
import {
  _PAGE_PRESENT, _PAGE_PROTNONE, _PAGE_PSE, PTE_PFN_MASK, SWP_FLAG_BITS, TABLE_FLAGS,
  isTable, leafPfn, mkLeaf, mkSwp, swpOffset, swpType,
} from './entry';
import { account, NS_PFN, swpPfnMaskValue } from './mapcount';
import { folioFlags, folioOf } from './memmap';
import { indexOf } from './ranges';
import { softleafCode, isRamMigrationCode, isDevicePrivateCode } from './softleaf';
import { OK, E_CONFLICT, E_NOMEM, fail } from './status';
import { newTable, dropTable, rootHeight, slotOf, tableOf } from './pagetable';

/** PAT of a huge leaf (bit 12) and of a 4 KiB PTE (bit 7), spec §3.2. */
const PAGE_PAT_LARGE: u64 = 1 << 12;
const PAGE_PAT: u64 = 1 << 7;
/** src/model/folio.ts FOLIO_FLAG.hugetlb. */
const FOLIO_HUGETLB: u32 = 1 << 11;

/** How a PMD entry splits: not at all, as a present huge leaf, or as a swap-format softleaf. */
const SPLIT_NONE: i32 = 0;
const SPLIT_PRESENT: i32 = 1;
const SPLIT_SOFTLEAF: i32 = 2;

/**
 * The PMD slot covering va, or 0 (after fail(E_CONFLICT, va, height)) if an upper entry is none or a leaf
 * (a 1 GiB hugetlb PUD), so that no PMD slot exists.
 */
function pmdSlot(root: usize, va: u64): usize {
  let table = root;
  for (let k = rootHeight(); k > 1; k--) {
    const e = load<u64>(slotOf(table, va, k));
    if (e == 0 || !isTable(e, k)) {
      fail(E_CONFLICT, <f64>va, k);
      return 0;
    }
    table = tableOf(e);
  }
  return slotOf(table, va, 1);
}

/** Does pfn (RAM namespace) belong to a hugetlb folio? */
function hugetlbPfn(pfn: u64): bool {
  const g = indexOf(NS_PFN, <f64>pfn);
  if (g < 0) return false;
  const head = folioOf(g);
  return head >= 0 && (folioFlags(head) & FOLIO_HUGETLB) != 0;
}

/** Which split applies to PMD entry e (spec §3.2, §3.4: valid PMD softleaves are migration and device-private). */
function splitKind(e: u64): i32 {
  if (e == 0 || isTable(e, 1)) return SPLIT_NONE;
  const visible = (e & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0;
  if ((e & _PAGE_PSE) != 0) {
    // A present (or PROTNONE) huge leaf; hugetlb PMDs are never split. PSE alone (a PMD invalidated in the
    // middle of a split) is nothing this model holds.
    if (!visible || hugetlbPfn(leafPfn(e, 1))) return SPLIT_NONE;
    return SPLIT_PRESENT;
  }
  if (visible) return SPLIT_NONE; // not swap format
  const code = softleafCode(swpType(e));
  // Ordinary migration entries name RAM pfns; a hugetlb one stays whole.
  if (isRamMigrationCode(code)) return hugetlbPfn(swpOffset(e) & swpPfnMaskValue()) ? SPLIT_NONE : SPLIT_SOFTLEAF;
  // Device-private entries and the series' device-private migration entries.
  if (isDevicePrivateCode(code)) return SPLIT_SOFTLEAF;
  return SPLIT_NONE;
}

/**
 * Replace the PMD-level leaf covering va by a PTE table of 512 entries for the same pages:
 * a present huge leaf (P or PROTNONE) of a non-hugetlb folio → 512 present PTEs, pfn + i, the same bits
 * without PSE and with PAT moved from bit 12 to bit 7 (PROTNONE PTEs stored L1TF-inverted);
 * a migration or device-private PMD → 512 swap-format PTEs of the same type and flag bits, offset + i.
 * Mapcounts follow the entries (CONFIG_PAGE_MAPCOUNT): a mapping's entire mapcount −1 and every page +1;
 * migration entries count nothing. E_CONFLICT if the entry is anything else, E_NOMEM if no frame is left.
 */
export function pmdSplit(root: usize, va: u64): i32 {
  const slot = pmdSlot(root, va);
  if (slot == 0) return E_CONFLICT;
  const old = load<u64>(slot);
  const kind = splitKind(old);
  if (kind == SPLIT_NONE) return fail(E_CONFLICT, <f64>va, 1);
  if (!reserveFrames(1)) return fail(E_NOMEM, <f64>va, 1);
  const t = newTable();
  if (kind == SPLIT_PRESENT) {
    const pfn = leafPfn(old, 1);
    let prot = old & ~(PTE_PFN_MASK | _PAGE_PSE);
    if ((old & PAGE_PAT_LARGE) != 0) prot |= PAGE_PAT;
    for (let i: u64 = 0; i < 512; i++) store<u64>(t + (<usize>i << 3), mkLeaf(pfn + i, 0, prot));
  } else {
    // The pfn part of a PMD entry's offset is 512-aligned: adding i leaves the bits above it alone.
    const type = swpType(old);
    const offset = swpOffset(old);
    const flags = old & SWP_FLAG_BITS;
    for (let i: u64 = 0; i < 512; i++) store<u64>(t + (<usize>i << 3), mkSwp(type, offset + i) | flags);
  }
  countAdd(t, 512);
  account(old, 1, -1);
  for (let i: usize = 0; i < 512; i++) account(load<u64>(t + (i << 3)), 0, 1);
  store<u64>(slot, <u64>t | TABLE_FLAGS);
  return OK;
}

/** The PTE table the PMD slot covering va points to, or 0 (after fail(E_CONFLICT)) if there is none. */
function pteTableAt(root: usize, va: u64): usize {
  const slot = pmdSlot(root, va);
  if (slot == 0) return 0;
  if (!isTable(load<u64>(slot), 1)) {
    fail(E_CONFLICT, <f64>va, 1);
    return 0;
  }
  return slot;
}

/**
 * Zap and free the PTE table covering va: every mapping in it gives its mapcount back, the PMD becomes none.
 * Empty upper tables stay. E_CONFLICT if the PMD does not point to a PTE table.
 */
export function pteTableFree(root: usize, va: u64): i32 {
  const slot = pteTableAt(root, va);
  if (slot == 0) return E_CONFLICT;
  const t = tableOf(load<u64>(slot));
  for (let i: usize = 0; i < 512; i++) {
    const e = load<u64>(t + (i << 3));
    if (e != 0) account(e, 0, -1);
  }
  memory.fill(t, 0, 4096);
  countAdd(t, -<i32>countOf(t));
  store<u64>(slot, 0);
  countAdd(slot & ~<usize>4095, -1); // the PMD table holding the slot
  dropTable(t);
  return OK;
}

/**
 * Move the PTE table covering va to a new frame: same entries and count, the PMD keeps its flags and points to
 * the new frame, the old one is freed. Mapcounts do not change. E_CONFLICT if the PMD does not point to a PTE
 * table, E_NOMEM if no frame is left.
 */
export function pteTableReplace(root: usize, va: u64): i32 {
  const slot = pteTableAt(root, va);
  if (slot == 0) return E_CONFLICT;
  if (!reserveFrames(1)) return fail(E_NOMEM, <f64>va, 1);
  const e = load<u64>(slot);
  const t = tableOf(e);
  const t2 = newTable();
  memory.copy(t2, t, 4096);
  const n = countOf(t);
  countAdd(t2, <i32>n);
  store<u64>(slot, (e & ~PTE_PFN_MASK) | <u64>t2);
  memory.fill(t, 0, 4096);
  countAdd(t, -<i32>n);
  dropTable(t);
  return OK;
}

// Host-facing forms: the host passes addresses as numbers.
export function ptSplitPmd(root: f64, va: f64): i32 {
  return pmdSplit(<usize>root, <u64>va);
}
export function ptFreePteTable(root: f64, va: f64): i32 {
  return pteTableFree(<usize>root, <u64>va);
}
export function ptReplacePteTable(root: f64, va: f64): i32 {
  return pteTableReplace(<usize>root, <u64>va);
}
