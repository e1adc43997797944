import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { err, ok, type SysResult } from './errno.js';
import { ksmUnmerge, vmaKsmCompatible } from './ksm.js';
import { isolateRange, vmaMergeAround } from './vma-split.js';

/**
 * madvise(MADV_MERGEABLE / MADV_UNMERGEABLE) (kernel-operations.md §7.1 argument rules, §8.1 VM_MERGEABLE,
 * §8.3 breaking sharing): ksm_madvise per VMA, then the flag change on exactly the range (VMAs split at its
 * ends and merged with compatible neighbours afterwards, §2.2).
 * - MADV_MERGEABLE: VMAs already mergeable, or not KSM-compatible (shared, hugetlb), are left as they are
 *   (no error); the others get VM_MERGEABLE. No mapping changes; ksmScan does the merging.
 * - MADV_UNMERGEABLE: in a mergeable VMA with an anon_vma every KSM page of the range is unshared first
 *   (ksmUnmerge; its ENOMEM is returned at once, earlier VMAs already done), then VM_MERGEABLE is cleared.
 * Unknown advice, an unaligned start or a length that overflows: EINVAL. A hole in the range: the mapped
 * parts are done, then ENOMEM.
 */
export type KsmAdvice = 'MADV_MERGEABLE' | 'MADV_UNMERGEABLE';

export function ksmMadvise(engine: Engine, mm: Mm, start: number, len: number, advice: KsmAdvice): SysResult {
  if (typeof start !== 'number' || !Number.isSafeInteger(start) || start < 0) {
    throw new PvmwError('BAD_ADDRESS', `madvise start ${String(start)} is not a non-negative whole number`);
  }
  if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0) {
    throw new PvmwError('BAD_RANGE', `madvise length ${String(len)} is not a non-negative whole number`);
  }
  if (advice !== 'MADV_MERGEABLE' && advice !== 'MADV_UNMERGEABLE') return err('EINVAL');
  if (start % PAGE_SIZE !== 0) return err('EINVAL');
  const end = start + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (end > engine.geometry.taskSize) return end >= 2 ** 64 ? err('EINVAL') : err('ENOMEM');
  if (end === start) return ok();
  let covered = 0;
  for (const vma of mm.vmas.overlapping(start, end)) {
    const s = Math.max(start, vma.start);
    const e = Math.min(end, vma.end);
    covered += e - s;
    const merge = advice === 'MADV_MERGEABLE';
    if (vma.flags.mergeable === merge) continue;
    if (merge && !vmaKsmCompatible(vma)) continue;
    if (!merge && engine.rmap.anon.of(vma)) {
      const r = ksmUnmerge(engine, mm, s, e);
      if (!r.ok) return r;
    }
    const inside = isolateRange(engine, mm, s, e);
    if (!inside) continue; // only hugetlb refuses a split, and hugetlb is never mergeable
    for (const v of inside) v.flags.mergeable = merge;
    for (const v of inside) if (mm.vmas.find(v.start) === v) vmaMergeAround(engine, mm, v);
  }
  return covered === end - start ? ok() : err('ENOMEM');
}
