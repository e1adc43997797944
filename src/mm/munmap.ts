import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Vma } from '../model/vma.js';
import { err, ok, type SysResult } from './errno.js';
import { opsState } from './state.js';
import { isolateRange, vmaMaySplit } from './vma-split.js';
import { zapPageRange } from './zap.js';

/**
 * munmap(2) and process exit (kernel-operations.md §2.1 arguments, §2.2 splits, §2.3 procedure, §2.4/§2.5 zap).
 * Not modelled: mseal (EPERM), rss, MMU notifiers.
 */

/** vm.max_map_count's default (DEFAULT_MAX_MAP_COUNT). */
export const DEFAULT_MAX_MAP_COUNT = 65530;

export interface MapCountOptions {
  /** vm.max_map_count (default 65530): a munmap that needs two splits of one VMA at this count is ENOMEM. */
  maxMapCount?: number;
}

/** A whole number argument (the kernel sees unsigned longs; a non-number is input it could never see). */
export function checkWhole(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new PvmwError(name === 'addr' ? 'BAD_ADDRESS' : 'BAD_RANGE', `${name} ${String(v)} is not a whole number`);
  }
  return v;
}

/** PAGE_ALIGN. */
export function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * munmap(engine, mm, addr, len) (§2.1, in the kernel's order): `addr` not page aligned → EINVAL; addr beyond
 * TASK_SIZE or len beyond TASK_SIZE − addr (a negative value is a huge unsigned one) → EINVAL; len 0 → EINVAL;
 * nothing mapped there → 0. Then doVmiMunmap.
 */
export function munmap(engine: Engine, mm: Mm, addr: number, len: number, opts: MapCountOptions = {}): SysResult {
  checkWhole('addr', addr);
  checkWhole('len', len);
  const task = engine.geometry.taskSize;
  if (addr < 0 || addr % PAGE_SIZE !== 0) return err('EINVAL');
  if (addr > task || len < 0 || len > task - addr) return err('EINVAL');
  const size = pageAlign(len);
  if (size === 0) return err('EINVAL');
  return doVmiMunmap(engine, mm, addr, addr + size, opts);
}

/**
 * do_vmi_munmap for a checked, page-aligned [start, end) (munmap, and mmap MAP_FIXED over existing mappings):
 * 1. no VMA overlaps → 0;
 * 2. the range strictly inside one VMA (two splits) while map_count ≥ max_map_count → ENOMEM;
 * 3. a VMA refusing a split at start or end (hugetlb, unaligned: may_split) → EINVAL — checked for both ends
 *    before anything changes (the kernel may have split the first end already; pvmw changes nothing);
 * 4. split the ends (§2.2: a straddling THP PMD becomes PTEs), zap every covered VMA with markers dropped,
 *    free the page tables that emptied, detach the VMAs (AVCs unlinked, out of i_mmap) — §2.3.
 */
export function doVmiMunmap(engine: Engine, mm: Mm, start: number, end: number, opts: MapCountOptions = {}): SysResult {
  const vmas = mm.vmas.overlapping(start, end);
  if (vmas.length === 0) return ok(0);
  const first = vmas[0];
  const last = vmas[vmas.length - 1];
  if (first.start < start && end < first.end && mm.vmas.size >= (opts.maxMapCount ?? DEFAULT_MAX_MAP_COUNT)) return err('ENOMEM');
  if ((first.start < start && !vmaMaySplit(first, start)) || (last.end > end && !vmaMaySplit(last, end))) return err('EINVAL');
  const inside = isolateRange(engine, mm, start, end);
  if (!inside) return err('EINVAL');
  unmapVmas(engine, mm, inside);
  return ok(0);
}

/** §2.3 steps 2–4 for whole VMAs: zap (markers dropped), free emptied tables, detach. */
function unmapVmas(engine: Engine, mm: Mm, vmas: readonly Vma[]): void {
  for (const v of vmas) {
    zapPageRange(engine, mm, v, v.start, v.end, { dropMarkers: true });
    mm.clear(v.start, v.end); // every leaf is gone: this only frees the tables that emptied (free_pgtables)
    mm.detachVma(v);
  }
}

/**
 * exit_mmap (§2.3 last line): zap every VMA as munmap does (so swap counts, file dirtiness and folio
 * references follow §2.4/§2.5), then free the mm: its VMAs leave the rmap trees and its tables are freed.
 */
export function exitMmap(engine: Engine, mm: Mm): void {
  for (const v of mm.vmas.all()) zapPageRange(engine, mm, v, v.start, v.end, { dropMarkers: true });
  opsState(engine).everPinned.delete(mm.id);
  engine.freeMm(mm.id);
}
