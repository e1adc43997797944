import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { FolioId } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import type { Vma } from '../model/vma.js';
import { copyPageRange, planCopyPageRange, type CopyFolios, type CopyFolioSize, type CopyPlan } from './copy-page-range.js';
import type { Errno } from './errno.js';
import { opsState } from './state.js';

/**
 * fork's address-space copy, dup_mmap (kernel-operations.md §1.1), with anon_vma_fork (§1.2) and
 * copy_page_range (§1.3–§1.6, copy-page-range.ts). Content tags are not copied (§12.2: both processes map the
 * same pages) except by eager copies of pinned pages.
 *
 * The kernel fails part-way and tears the child down; pvmw reaches the same outcome without ever changing the
 * parent on failure: every VMA's copy is planned first (read only), the folios for eager copies are allocated
 * next, and only then are child VMAs made and entries written. A failure frees the folios and the child mm.
 * Not modelled: VM_ACCOUNT commit charge, mempolicy, userfaultfd context, hugetlb reservations, the fork-wide
 * MMU-notifier PROTECTION_PAGE invalidation of COW VMAs (§1.3; no notifier exists yet), rss counters.
 */
export type DupMmapResult = { ok: true; child: Mm } | { ok: false; errno: Errno };

export function dupMmap(engine: Engine, parent: Mm): DupMmapResult {
  const state = opsState(engine);
  const child = engine.createMm();
  // The child has pinned nothing (MMF_HAS_PINNED is not inherited).
  state.everPinned.delete(child.id);
  const fail = (errno: Errno, reserved?: ReservedFolios): DupMmapResult => {
    reserved?.release();
    engine.freeMm(child.id);
    return { ok: false, errno };
  };

  // §1.1 step 2, planned: VM_DONTCOPY leaves a hole; VM_WIPEONFORK copies no tables.
  const copies: { vma: Vma; plan: CopyPlan | null }[] = [];
  const needs: Record<CopyFolioSize, number> = { small: 0, '2M': 0, '1G': 0 };
  for (const vma of parent.vmas.all()) {
    if (vma.flags.dontcopy) continue;
    const plan = vma.flags.wipeonfork ? null : planCopyPageRange(engine, parent, vma);
    if (typeof plan === 'string') return fail(plan);
    if (plan) for (const k of Object.keys(needs) as CopyFolioSize[]) needs[k] += plan.needs[k];
    copies.push({ vma, plan });
  }

  // Eager-copy folios (§1.4 row 3, §1.6): an allocation failure is fork's ENOMEM.
  const reserved = new ReservedFolios(engine);
  if (!reserved.reserve(needs)) return fail('ENOMEM', reserved);

  for (const { vma, plan } of copies) {
    // Steps 2.3, 2.5, 2.7, 2.8: same bounds, pgoff, flags (VM_LOCKED cleared) and file; a file VMA joins
    // i_mmap after the parent's by insertion order (D6).
    const cvma = child.addVma({
      start: vma.start, end: vma.end, pgoff: vma.pgoff, flags: { ...vma.flags, locked: false }, file: vma.file ?? undefined,
    });
    // Step 2.4: WIPEONFORK: no anon_vma, no chains; else anon_vma_fork (§1.2).
    if (!vma.flags.wipeonfork) engine.rmap.anon.fork(cvma, vma);
    // Step 2.9.
    if (plan) copyPageRange(engine, plan, child, cvma, reserved);
  }
  reserved.release();
  return { ok: true, child };
}

/** Folios allocated before the copy starts; the copy takes them in allocation order, the rest are freed. */
class ReservedFolios implements CopyFolios {
  private readonly lists: Record<CopyFolioSize, FolioId[]> = { small: [], '2M': [], '1G': [] };
  private readonly next: Record<CopyFolioSize, number> = { small: 0, '2M': 0, '1G': 0 };

  constructor(private readonly engine: Engine) {}

  reserve(needs: Record<CopyFolioSize, number>): boolean {
    const alloc = opsState(this.engine).alloc;
    for (const size of Object.keys(needs) as CopyFolioSize[]) {
      for (let i = 0; i < needs[size]; i++) {
        const id = alloc.alloc(size === 'small' ? { order: 0 } : { hugetlb: size });
        if (id === null) return false;
        this.lists[size].push(id);
      }
    }
    return true;
  }

  take(size: CopyFolioSize): FolioId {
    const id = this.lists[size][this.next[size]++];
    if (id === undefined) throw new PvmwError('INTERNAL', `fork took more ${size} folios than it planned`);
    return id;
  }

  /** Free every folio not taken. */
  release(): void {
    const alloc = opsState(this.engine).alloc;
    for (const size of Object.keys(this.lists) as CopyFolioSize[]) {
      for (const id of this.lists[size].slice(this.next[size])) alloc.free(id);
      this.lists[size] = [];
      this.next[size] = 0;
    }
  }
}
