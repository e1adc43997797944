import { PvmwError, hex } from '../errors.js';
import type { PagingLevels } from './settings.js';

/**
 * x86-64 paging described as data (spec §3.1), after memflow's ArchMmuDef: 5-level paging is one more row,
 * not another code path. Levels are listed from the root down; the leaf-capable levels are PUD, PMD, PTE.
 */
export type LevelName = 'pgd' | 'p4d' | 'pud' | 'pmd' | 'pte';

export interface Level {
  name: LevelName;
  /** Bit position of the VA bits that index this level: index = (va >> shift) & 511. */
  shift: number;
}

export interface Geometry {
  levels: 4 | 5;
  /** Root first. With 4 levels the P4D is folded away (p4d == pgd slot, spec §3.1). */
  table: readonly Level[];
  /** User VA bits (__VIRTUAL_MASK_SHIFT): 47 or 56. */
  vaBits: number;
  /** TASK_SIZE_MAX = 2^vaBits − 4096: first address beyond user space. */
  taskSize: number;
  /** MAX_PHYSMEM_BITS: 46 or 52. */
  physBits: number;
  /** SWP_PFN_BITS = MAX_PHYSMEM_BITS − 12 (spec §3.3): 34 or 40. */
  swpPfnBits: number;
}

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PTRS_PER_TABLE = 512;
export const PMD_SHIFT = 21;
export const PMD_SIZE = 2 ** 21;
export const PUD_SHIFT = 30;
export const PUD_SIZE = 2 ** 30;
/** HPAGE_PMD_ORDER and the order of a 1 GiB hugetlb page. */
export const PMD_ORDER = 9;
export const PUD_ORDER = 18;

const FOUR: Geometry = {
  levels: 4,
  table: [
    { name: 'pgd', shift: 39 },
    { name: 'pud', shift: 30 },
    { name: 'pmd', shift: 21 },
    { name: 'pte', shift: 12 },
  ],
  vaBits: 47,
  taskSize: 2 ** 47 - PAGE_SIZE,
  physBits: 46,
  swpPfnBits: 34,
};

const FIVE: Geometry = {
  levels: 5,
  table: [
    { name: 'pgd', shift: 48 },
    { name: 'p4d', shift: 39 },
    { name: 'pud', shift: 30 },
    { name: 'pmd', shift: 21 },
    { name: 'pte', shift: 12 },
  ],
  vaBits: 56,
  taskSize: 2 ** 56 - PAGE_SIZE,
  physBits: 52,
  swpPfnBits: 40,
};

export function geometry(levels: PagingLevels): Geometry {
  return levels === 5 ? FIVE : FOUR;
}

/** Size in bytes of the VA block one entry at this level covers. */
export function levelSize(g: Geometry, name: LevelName): number {
  const l = g.table.find((x) => x.name === name);
  if (!l) throw new PvmwError('BAD_SETTING', `level ${name} does not exist with ${g.levels}-level paging`);
  return 2 ** l.shift;
}

/** The leaf levels an entry can be set at, and their shift. */
export const LEAF_LEVELS = { pte: 12, pmd: 21, pud: 30 } as const;
export type LeafLevel = keyof typeof LEAF_LEVELS;

export function leafLevel(name: string): LeafLevel {
  if (name === 'pte' || name === 'pmd' || name === 'pud') return name;
  throw new PvmwError('BAD_SETTING', `level must be pte, pmd or pud, got ${JSON.stringify(name)}`);
}

/**
 * Check a user address: a whole number, aligned to `align`, inside [0, TASK_SIZE) (or up to and including
 * TASK_SIZE when it is the exclusive end of a range). Whole numbers above 2^53 are accepted: 5-level user
 * addresses reach 2^56 and page-aligned values there are exact doubles. Messages give addresses in hex.
 */
export function checkAddress(g: Geometry, addr: number, align = PAGE_SIZE, what = 'address', isEnd = false): void {
  if (typeof addr !== 'number' || !Number.isInteger(addr) || addr < 0) {
    throw new PvmwError('BAD_ADDRESS', `${what} ${String(addr)} is not a non-negative whole number`);
  }
  if (addr % align !== 0) throw new PvmwError('BAD_ADDRESS', `${what} ${hex(addr)} is not aligned to ${hex(align)}`);
  if (addr > g.taskSize || (!isEnd && addr === g.taskSize)) {
    throw new PvmwError('BAD_ADDRESS', `${what} ${hex(addr)} is beyond ${g.levels}-level user space (TASK_SIZE ${hex(g.taskSize)})`);
  }
}

/** Check [start, end): both aligned, start < end ≤ TASK_SIZE. */
export function checkRange(g: Geometry, start: number, end: number, align = PAGE_SIZE): void {
  checkAddress(g, start, align, 'start');
  checkAddress(g, end, align, 'end', true);
  if (end <= start) throw new PvmwError('BAD_RANGE', `range [${hex(start)}, ${hex(end)}) is empty or reversed`);
}
