// Fixtures of the fault tests (ops-fault-*.test.ts, ops-wp-fault.test.ts; kernel-operations.md §5): one anon or
// file VMA of 4 PMDs at 1 GiB, the faulting leaf, and hand-made states (rewritten bits, a fork of one page).
import { Engine, Mm, PMD_SIZE, type PresentBits, type Vma, type VmaFlags } from '../src/index.js';
import { presentRaw, writeLeaves } from '../src/mm/leaf.js';
import { faultLeafAt } from '../src/mm/wp-fault.js';
import { rmapWalk } from '../src/rmap/rmap-walk.js';

export const P = 4096;
export const A = 0x4000_0000; // VMA start, 1 GiB aligned
export const END = A + 4 * PMD_SIZE;

export function setup(o: { ram?: number; flags?: Partial<VmaFlags>; start?: number; end?: number; file?: number; pgoff?: number } = {}) {
  const e = new Engine({ ramPages: o.ram ?? 1 << 14, deviceChunkPages: 4096 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: o.start ?? A, end: o.end ?? END, flags: o.flags, file: o.file, pgoff: o.pgoff });
  return { e, mm, vma };
}

export const at = (e: Engine, mm: Mm, addr: number) => faultLeafAt(e, mm, addr);
export const bits = (e: Engine, mm: Mm, addr: number) => at(e, mm, addr).entry.present!;

/** Rewrite the leaf at addr with some bits changed (what mprotect / fork / NUMA hinting would leave). */
export function rewrite(e: Engine, mm: Mm, addr: number, change: Partial<PresentBits>): void {
  const v = at(e, mm, addr);
  writeLeaves(e, mm, [{ va: v.va, level: v.level, raw: presentRaw(v.level, v.entry.number!, { ...v.entry.present!, ...change }) }]);
}

/** fork by hand: a child mm whose VMA is linked by anon_vma_fork and maps the page at addr read-only in both. */
export function forkPage(e: Engine, mm: Mm, vma: Vma, addr: number): { child: Mm; cv: Vma } {
  const child = e.createMm();
  const cv = child.addVma({ start: vma.start, end: vma.end, flags: { ...vma.flags } });
  e.rmap.anon.fork(cv, vma);
  const v = at(e, mm, addr);
  const raw = presentRaw(v.level, v.entry.number!, { ...v.entry.present!, write: false });
  writeLeaves(e, mm, [{ va: v.va, level: v.level, raw }]);
  writeLeaves(e, child, [{ va: v.va, level: v.level, raw }]);
  e.folios.setAnonExclusive(v.folio!.id, 0, v.folio!.nrPages, false);
  return { child, cv };
}

/** Does rmap reach the page mapped at addr of mm (an rmap walk of its folio reports that address)? */
export function rmapReaches(e: Engine, mm: Mm, addr: number): boolean {
  const v = at(e, mm, addr);
  let found = false;
  rmapWalk(e, [v.folio!.id], { rmapOne: (c, ms) => ((found ||= c.mm === mm && ms.some((m) => m.address === v.va)), true) });
  return found;
}
