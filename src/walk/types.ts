import type { RawEntry } from '../model/entry.js';
import type { FolioId } from '../model/folio.js';
import type { LeafLevel } from '../model/geometry.js';

/**
 * The walk's vocabulary (spec §1.1, §1.2; decisions.md D2, D4, Terms). Both walks, the WebAssembly engine
 * (assembly/walk.ts via src/walk/pvmw.ts) and the TypeScript reference (src/walk/reference.ts), take these
 * inputs and give these results, so tests can compare them field by field.
 */

/** Input flags (spec §1.2). PVMW_DEVICE_PRIVATE exists only with `series` semantics. */
export const PVMW_SYNC = 1 << 0;
export const PVMW_MIGRATION = 1 << 1;
export const PVMW_DEVICE_PRIVATE = 1 << 2;
/** Result flag: the walk moved from one PTE table to the next since it started. */
export const PVMW_PGTABLE_CROSSED = 1 << 16;
export const PVMW_INPUT_FLAGS = PVMW_SYNC | PVMW_MIGRATION | PVMW_DEVICE_PRIVATE;

/**
 * What a walk looks for (decisions.md Terms "key", D2).
 * - pfn-keyed: the kernel's walk state (pfn, nr_pages, pgoff, flags). With `series` semantics, `number` is a
 *   device-private offset when flags has PVMW_DEVICE_PRIVATE. `pgoff` only serves vma_address_end.
 * - folio-keyed: the review proposal (spec §4.5): a folio and optionally one page of it (the
 *   page_mapped_in_vma case), no pfn; matching by `range` or by `identity` (D2).
 */
export type WalkKey =
  | { kind: 'pfn'; number: number; nrPages: number; pgoff: number; flags: number }
  | { kind: 'folio'; folio: FolioId; page?: number; strategy: 'range' | 'identity'; flags: number };

/**
 * The lock a true return holds (spec §1.5): the PTE-table lock of one PTE table, the PMD lock (split PMD
 * lock: one per PMD table), or the hugetlb lock (huge_pte_lockptr: the PMD table's lock for 2 MiB pages,
 * mm->page_table_lock for 1 GiB pages). `table` is the linear-memory address of the table whose lock it is;
 * for mm->page_table_lock it is the mm's root table address.
 */
export type LockKind = 'pte' | 'pmd' | 'hugetlb';
export interface WalkLock {
  kind: LockKind;
  table: number;
}

/** One true return of page_vma_mapped_walk. */
export interface WalkMatch {
  /** pvmw->address: VA of the entry found. */
  address: number;
  /** Level of the entry: 'pte' for PTE matches, 'pmd' for PMD-level matches, the leaf level for hugetlb. */
  level: LeafLevel;
  /** The entry as read under the lock. */
  raw: RawEntry;
  lock: WalkLock;
  /** pvmw->flags at the return: the input flags plus result flags (PVMW_PGTABLE_CROSSED). */
  flags: number;
}

/** Work done by one walk (issue 3 item 6): what `compare` shows besides time. */
export interface WalkCounters {
  /** Entries read at each level, root first: pgd, (p4d), pud, pmd, pte. */
  entriesRead: Record<string, number>;
  /** memmap lookups ((namespace, number) → folio): the identity strategy's cost. */
  memmapLookups: number;
  matches: number;
  /** Descents restarted from the root after a re-check failed (map_pte: table gone; next_pte: PMD changed). */
  restarts: number;
  /** PTE tables crossed (PVMW_PGTABLE_CROSSED events). */
  tablesCrossed: number;
}

/**
 * D4: a concurrent change met at one of the points where the kernel re-checks, applied once, the `nth` time
 * (default 1) the walk reaches that point.
 * - 'pmd-huge-read': §1.5 step 5e, after the lockless read saw a huge PMD or PMD migration entry, before the
 *   PMD lock is taken;
 * - 'pmd-device-read': step 5f, after the lockless read saw a device-private PMD, before the lock;
 * - 'map-pte': step 5g, before map_pte maps the PTE table;
 * - 'map-pte-lock': map_pte step 4 (without PVMW_SYNC), after the lockless PTE read, before the lock;
 * - 'next-pte-lock': step 9.iv, after the next non-none PTE was found, before the lock.
 * Changes: 'split-pmd' (a huge, migration or device-private PMD becomes a PTE table of the same pages:
 * split_huge_pmd), 'free-pte-table' (the PTE table is zapped and freed: the PMD becomes none),
 * 'replace-pte-table' (the PTE table is moved to a new frame with the same entries: the PMD value changes).
 */
export type InjectionPoint = 'pmd-huge-read' | 'pmd-device-read' | 'map-pte' | 'map-pte-lock' | 'next-pte-lock';
export type InjectionChange = 'split-pmd' | 'free-pte-table' | 'replace-pte-table';
export interface Injection {
  point: InjectionPoint;
  change: InjectionChange;
  nth?: number;
}

export interface WalkResult {
  matches: WalkMatch[];
  counters: WalkCounters;
  /** The start address (vma_address), or null when the key lies outside the VMA (-EFAULT): no walk ran. */
  start: number | null;
}
