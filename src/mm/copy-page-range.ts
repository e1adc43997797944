import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { decodePresent, PAGE_SWP_EXCLUSIVE, PAGE_SWP_UFFD_WP, type PfnSoftleafKind, type PresentBits, type RawEntry } from '../model/entry.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import { PMD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import type { Vma } from '../model/vma.js';
import type { Errno } from './errno.js';
import { splitHugePmd } from './huge-pmd.js';
import { leavesIn, presentRaw, softleafRaw, vmaPageProt, writeLeaves, type LeafView } from './leaf.js';
import { dupWouldFail, maybePinned, newAnonRmap, tryDupAnon } from './rmap-primitives.js';
import { opsState } from './state.js';

/**
 * copy_page_range for one parent/child VMA pair (kernel-operations.md §1.3–§1.6), in two steps so that fork can
 * fail without touching the parent (§1.1 step 4):
 * 1. planCopyPageRange reads the parent's leaves of the VMA once (leavesIn) and finds what the copy needs: new
 *    folios for eager copies of pinned exclusive pages (§1.4 row 3, §1.5 row 2, §1.6), the pinned huge PMDs to
 *    split first (§1.5 row 2), and the reasons it would fail (ENOMEM: a device-exclusive entry whose folio lock
 *    is busy, a hwpoisoned page to copy).
 * 2. copyPageRange applies the plan: parent changes and child entries are computed per leaf, then written with
 *    one writeLeaves call per side (mapcounts follow the entries). The eager copies come from folios the caller
 *    allocated beforehand (CopyFolios).
 * The child VMA is never uffd-wp registered (userfaultfd is not modelled), so the child's copies drop the
 * uffd-wp bit and uffd-wp markers (§1.4 P and MK-UW rows; the kernel does the same for every non-present copy).
 */

export type CopyFolioSize = 'small' | '2M' | '1G';

export interface CopyPlan {
  src: Mm;
  vma: Vma;
  leaves: LeafView[];
  /** Folios the eager copies take: order 0 (PTE level) or hugetlb pages. */
  needs: Record<CopyFolioSize, number>;
  /** Pinned exclusive huge PMDs (their VAs), split before the copy (§1.5 row 2). */
  splitPmds: number[];
}

/** Folios allocated for the eager copies before anything changed. */
export interface CopyFolios {
  take(size: CopyFolioSize): FolioId;
}

/** §1.3: a COW mapping is private and may be written, (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE. */
export function isCowMapping(vma: Vma): boolean {
  return !vma.flags.shared && vma.flags.mayWrite;
}

const PRESENT_PTE = new Set(['P', 'PL', 'PN', 'ZP', 'SPECIAL']);
const MIG_NOT_READ = new Set(['MIG-W', 'MIG-RX']);

function hwpoisoned(engine: Engine, f: FolioInfo, page: number, count: number): boolean {
  for (let i = 0; i < count; i++) if (engine.folios.lookup(f.namespace, f.number + page + i)?.hwpoison) return true;
  return false;
}

/** An anon folio mapped (not a zero page or other special entry) by a present leaf. */
function anonMapped(l: LeafView): FolioInfo | undefined {
  return l.folio?.anon && l.entry.present && !l.entry.present.special ? l.folio : undefined;
}

/**
 * Step 1 (read only). null: §1.3 says the tables are not copied — the parent VMA has no anon_vma and none of the
 * child flags that force a copy (VM_PFNMAP, VM_MIXEDMAP and VM_UFFD_WP are not modelled; VM_MAYBE_GUARD is taken
 * to be set iff the VMA holds a guard marker). An errno: the copy would fail (§1.4 DX and eager-copy rows).
 */
export function planCopyPageRange(engine: Engine, src: Mm, vma: Vma): CopyPlan | Errno | null {
  const leaves = leavesIn(engine, src, vma.start, vma.end);
  if (engine.rmap.anon.of(vma) === null && !leaves.some((l) => l.kind === 'MK-GRD')) return null;
  const plan: CopyPlan = { src, vma, leaves, needs: { small: 0, '2M': 0, '1G': 0 }, splitPmds: [] };
  for (const l of leaves) {
    const f = l.folio;
    if (vma.flags.hugetlb !== null) {
      // §1.6: a pinned exclusive anon hugetlb page gets a new huge page in the child.
      const af = anonMapped(l);
      if (af?.hugetlb && dupWouldFail(engine, af, 0, 1, src)) plan.needs[af.hugetlb]++;
    } else if (l.level === 'pte') {
      // §1.4 DX: the restore needs the folio lock (trylock); busy → fork fails with ENOMEM.
      if (l.kind === 'DX' && f?.flags.locked) return 'ENOMEM';
      const copied = (PRESENT_PTE.has(l.kind) && anonMapped(l)) || (l.kind === 'DX' && f?.anon ? f : undefined);
      if (copied && dupWouldFail(engine, copied, l.page, 1, src)) {
        if (hwpoisoned(engine, copied, l.page, 1)) return 'ENOMEM'; // §1.4 row 3: the copy fails, fork ENOMEM
        plan.needs.small++;
      }
    } else if (vma.anon && (l.kind === 'PMD' || l.kind === 'PN')) {
      // §1.5 row 2: split, then every page (AnonExclusive carried from the head by the split) is copied eagerly.
      const af = anonMapped(l);
      if (af && dupWouldFail(engine, af, 0, 1, src)) {
        if (hwpoisoned(engine, af, 0, af.nrPages)) return 'ENOMEM';
        plan.splitPmds.push(l.va);
        plan.needs.small += af.nrPages;
      }
    }
  }
  return plan;
}

/** pte_wrprotect on x86: RW cleared, the hardware dirty bit kept as SAVED_DIRTY (§1.4 P row). */
function wrprotect(b: PresentBits): PresentBits {
  return { ...b, write: false, dirty: false, savedDirty: b.dirty || b.savedDirty };
}

/** Step 2: apply a plan, making the child's entries in `dst`/`dstVma` (same bounds and pgoff as plan.vma). */
export function copyPageRange(engine: Engine, plan: CopyPlan, dst: Mm, dstVma: Vma, folios: CopyFolios): void {
  let leaves = plan.leaves;
  if (plan.splitPmds.length > 0) {
    const split = new Set(plan.splitPmds);
    for (const va of plan.splitPmds) splitHugePmd(engine, plan.src, plan.vma, va);
    leaves = leaves.flatMap((l) => (l.level === 'pmd' && split.has(l.va) ? leavesIn(engine, plan.src, l.va, l.va + PMD_SIZE) : [l]));
  }
  const c = new Copier(engine, plan, dst, dstVma, folios);
  for (const l of leaves) c.copy(l);
  c.finish();
}

class Copier {
  private readonly parentOut: Leaf[] = [];
  private readonly childOut: Leaf[] = [];
  private readonly cow: boolean;
  private readonly shared: boolean;
  private readonly src: Mm;
  private readonly vma: Vma;
  /** A run of consecutive pages of one folio whose try-dup is pending (the kernel's PTE batch; §1.4 note 1). */
  private run: { f: FolioInfo; page: number; count: number } | null = null;

  constructor(
    private readonly engine: Engine,
    plan: CopyPlan,
    private readonly dst: Mm,
    private readonly dstVma: Vma,
    private readonly folios: CopyFolios,
  ) {
    this.src = plan.src;
    this.vma = plan.vma;
    this.cow = isCowMapping(plan.vma);
    this.shared = plan.vma.flags.shared;
  }

  copy(l: LeafView): void {
    if (this.vma.flags.hugetlb !== null) this.hugetlb(l);
    else if (l.level === 'pte') this.pte(l);
    else this.pmd(l);
  }

  finish(): void {
    this.flushDup();
    writeLeaves(this.engine, this.dst, this.childOut);
    writeLeaves(this.engine, this.src, this.parentOut);
  }

  // --- §1.4 PTE level ----------------------------------------------------------------------------------

  private pte(l: LeafView): void {
    const e = l.entry;
    switch (l.kind) {
      case 'P': case 'PL': case 'PN': case 'ZP': case 'SPECIAL':
        return this.presentPte(l, e.present!, false);
      case 'DX':
        return this.presentPte(l, this.restoreExclusive(l), true);
      case 'SWAP': {
        // Exclusive bit cleared in the parent; the child's copy has neither it nor uffd-wp; swap count + 1.
        // Hand-placed swap entries may name a slot the swap space does not hold: no count to raise then.
        const sw = opsState(this.engine).swap;
        if (e.swap && e.swap.type === 0 && sw.has(e.swap.offset)) sw.dup(e.swap.offset);
        this.setParent(l, clearSwp(l.raw, PAGE_SWP_EXCLUSIVE));
        return this.child(l, clearSwp(l.raw, PAGE_SWP_EXCLUSIVE | PAGE_SWP_UFFD_WP));
      }
      case 'MIG-W': case 'MIG-RX':
        // COW: both MIG-R (A/D, soft-dirty, uffd-wp kept in the parent). Shared: unchanged.
        if (this.cow) return this.migToRead(l);
        return this.child(l, clearSwp(l.raw, PAGE_SWP_UFFD_WP));
      case 'DP-W': case 'DP-R':
        return this.devicePrivate(l, this.cow, false);
      case 'MK-UW': case 'MK-PSN': case 'MK-GRD':
        return this.marker(l);
      default: // MIG-R, HWP, UNKNOWN: copied verbatim (uffd-wp dropped)
        return this.child(l, clearSwp(l.raw, PAGE_SWP_UFFD_WP));
    }
  }

  /**
   * §1.4 P / PL / PN / ZP rows (and DX after its restore): try-dup, or an eager copy for a pinned exclusive page
   * (parent left as it is); write-protect both if COW and writable; the child's entry old, clean if VM_SHARED.
   */
  private presentPte(l: LeafView, bits: PresentBits, restored: boolean): void {
    const pfn = l.entry.number!;
    const f = l.folio && !bits.special ? l.folio : undefined;
    if (f?.anon) {
      if (dupWouldFail(this.engine, f, l.page, 1, this.src)) {
        if (restored) this.setParent(l, presentRaw('pte', pfn, bits));
        return this.eagerCopy(l, f);
      }
      this.dup(f, l.page, 1);
    }
    const pbits = this.cow && bits.write ? wrprotect(bits) : bits;
    this.setParent(l, presentRaw('pte', pfn, pbits));
    const clean = this.shared ? { dirty: false, savedDirty: false } : {};
    this.child(l, presentRaw('pte', pfn, { ...pbits, young: false, uffdWp: false, ...clean }));
  }

  /**
   * §1.4 DX (6.15+): the device-exclusive entry restored to a present PTE: old, the VMA's protection, soft-dirty
   * and uffd-wp carried; writable iff VM_WRITE and the page may be made writable (AnonExclusive, not uffd-wp;
   * soft-dirty tracking is not modelled), dirty then if the folio is dirty. The lock was checked in the plan.
   */
  private restoreExclusive(l: LeafView): PresentBits {
    const e = l.entry;
    const f = l.folio;
    const exclusive = f ? this.engine.folios.lookup(f.namespace, f.number + l.page)?.anonExclusive === true : false;
    const writable = this.vma.flags.write && exclusive && !e.bits.uffdWp;
    const base = presentRaw('pte', e.number!, { ...vmaPageProt(this.vma), young: false, softDirty: e.bits.softDirty, uffdWp: e.bits.uffdWp });
    const bits = decodePresent('pte', base).bits;
    if (writable) return { ...bits, write: true, dirty: f?.flags.dirty === true };
    return bits;
  }

  /** §1.4 row 3: a new order-0 anon folio with the page's tag (§12.2), exclusive in the child VMA; dirty, young,
   *  writable if the child VMA has VM_WRITE. */
  private eagerCopy(l: LeafView, f: FolioInfo): void {
    const id = this.folios.take('small');
    const tag = this.engine.folios.lookup(f.namespace, f.number + l.page)?.tag ?? 0;
    newAnonRmap(this.engine, id, this.dstVma, l.va, true);
    if (tag !== 0) this.engine.folios.setTag(id, 0, 1, tag);
    const bits = { ...vmaPageProt(this.dstVma), write: this.dstVma.flags.write, dirty: true, young: true };
    this.child(l, presentRaw('pte', this.engine.folio(id).number, bits));
  }

  /** §1.4 / §1.5 MIG-W, MIG-RX in a COW VMA: the parent's entry becomes MIG-R, the child gets the same. */
  private migToRead(l: LeafView): void {
    const e = l.entry;
    const kind = e.kind.replace(/-(write|read-exclusive)$/, '-read') as PfnSoftleafKind;
    const flags = { softDirty: e.bits.softDirty, uffdWp: e.bits.uffdWp };
    const raw = softleafRaw(this.engine, { kind, number: e.number!, young: e.bits.young, dirty: e.bits.dirty, flags });
    this.setParent(l, raw);
    this.child(l, clearSwp(raw, PAGE_SWP_UFFD_WP));
  }

  /**
   * §1.4 DP-W / DP-R, §1.5 PMD DP-W / DP-R: try-dup (never fails for device pages); a writable entry becomes
   * DP-R in both when `toRead` (PTE: COW VMA, soft-dirty dropped; PMD: always, soft-dirty kept).
   */
  private devicePrivate(l: LeafView, toRead: boolean, keepSoftDirty: boolean): void {
    const e = l.entry;
    const f = l.folio;
    if (f?.anon) {
      if (l.level === 'pte') this.dup(f, l.page, 1);
      else this.dupHead(f);
    }
    if (l.kind === 'DP-W' && toRead) {
      const raw = softleafRaw(this.engine, { kind: 'device-private-read', number: e.number!, flags: { softDirty: keepSoftDirty && e.bits.softDirty, uffdWp: e.bits.uffdWp } });
      this.setParent(l, raw);
      return this.child(l, clearSwp(raw, PAGE_SWP_UFFD_WP));
    }
    this.child(l, clearSwp(l.raw, PAGE_SWP_UFFD_WP));
  }

  /** §1.4 markers: guard and poison bits copied; the uffd-wp bit only into a uffd-wp VMA (never here). */
  private marker(l: LeafView): void {
    const m = l.entry.marker!;
    if (!m.guard && !m.poisoned) return;
    this.child(l, softleafRaw(this.engine, { kind: 'marker', guard: m.guard, poisoned: m.poisoned }));
  }

  // --- §1.5 PMD level ------------------------------------------------------------------------------------

  private pmd(l: LeafView): void {
    const e = l.entry;
    // Only anonymous child VMAs: file/shmem PMDs are left for the child to refault; special PMDs are copied.
    if (!this.dstVma.anon && l.kind !== 'SPECIAL') return;
    switch (l.kind) {
      case 'PMD': case 'PN': case 'HZP': {
        // Both write-protected (always), the child's old; try-dup of the head (pinned ones were split).
        const f = anonMapped(l);
        if (f) this.dupHead(f);
        const pbits = wrprotect(e.present!);
        this.setParent(l, presentRaw('pmd', e.number!, pbits));
        return this.child(l, presentRaw('pmd', e.number!, { ...pbits, young: false, uffdWp: false }));
      }
      case 'SPECIAL': {
        // Copied as is, but (as the kernel does for special PMDs) write-protected in both if COW and writable,
        // and old in the child.
        const b = e.present!;
        const pbits = this.cow && b.write ? wrprotect(b) : b;
        this.setParent(l, presentRaw('pmd', e.number!, pbits));
        return this.child(l, presentRaw('pmd', e.number!, { ...pbits, young: false }));
      }
      case 'MIG-W': case 'MIG-RX':
        return this.migToRead(l);
      case 'DP-W': case 'DP-R':
        return this.devicePrivate(l, true, true);
      default: // MIG-R
        return this.child(l, clearSwp(l.raw, PAGE_SWP_UFFD_WP));
    }
  }

  // --- §1.6 hugetlb ------------------------------------------------------------------------------------

  /**
   * Per huge leaf: HWP copied; a migration entry other than MIG-R becomes MIG-R in both in a COW VMA; markers as
   * for PTEs; a page-cache folio is shared (file mapcount via the entry); an anon folio is try-dup'd, or copied
   * into a new huge page if pinned (parent untouched); COW → both write-protected. No mkold at this level.
   * Shared PMD tables (hugetlb PMD sharing) are not modelled.
   */
  private hugetlb(l: LeafView): void {
    const e = l.entry;
    switch (l.kind) {
      case 'HT': case 'PN': {
        const b = e.present!;
        const f = anonMapped(l);
        if (f) {
          if (dupWouldFail(this.engine, f, 0, 1, this.src)) return this.eagerHuge(l, f);
          this.dupHead(f);
        }
        const pbits = this.cow && b.write ? wrprotect(b) : b;
        this.setParent(l, presentRaw(l.level, e.number!, pbits));
        return this.child(l, presentRaw(l.level, e.number!, { ...pbits, uffdWp: false }));
      }
      case 'MIG-W': case 'MIG-RX':
        if (this.cow) return this.migToRead(l);
        return this.child(l, clearSwp(l.raw, PAGE_SWP_UFFD_WP));
      case 'MK-UW': case 'MK-PSN': case 'MK-GRD':
        return this.marker(l);
      default: // HWP, MIG-R
        return this.child(l, clearSwp(l.raw, PAGE_SWP_UFFD_WP));
    }
  }

  /** §1.6 pinned: a new huge page of the same size with the source's tags, exclusive in the child VMA;
   *  writable and dirty if the child VMA has VM_WRITE, young. */
  private eagerHuge(l: LeafView, f: FolioInfo): void {
    const id = this.folios.take(f.hugetlb!);
    copyTags(this.engine, f.id, id, f.nrPages);
    newAnonRmap(this.engine, id, this.dstVma, l.va, true);
    const w = this.dstVma.flags.write;
    this.child(l, presentRaw(l.level, this.engine.folio(id).number, { ...vmaPageProt(this.dstVma), write: w, dirty: w, young: true }));
  }

  // --- shared helpers ----------------------------------------------------------------------------------

  private setParent(l: LeafView, raw: RawEntry): void {
    if (raw.lo !== l.raw.lo || raw.hi !== l.raw.hi) this.parentOut.push({ va: l.va, level: l.level, raw });
  }

  private child(l: LeafView, raw: RawEntry): void {
    this.childOut.push({ va: l.va, level: l.level, raw });
  }

  /** try-dup of PTE-mapped pages, batched over consecutive pages of one folio. */
  private dup(f: FolioInfo, page: number, count: number): void {
    const r = this.run;
    if (r && r.f.id === f.id && r.page + r.count === page) {
      r.count += count;
      return;
    }
    this.flushDup();
    this.run = { f, page, count };
  }

  private flushDup(): void {
    const r = this.run;
    this.run = null;
    if (r && !tryDupAnon(this.engine, r.f, r.page, r.count, this.src)) {
      throw new PvmwError('INTERNAL', `try-dup of folio ${hex(r.f.id)} pages ${r.page}+${r.count} failed after the plan found it would not`);
    }
  }

  /** try-dup of a PMD/PUD mapping: the head decides (§1.5, §1.6); pvmw keeps every page's flag alike. */
  private dupHead(f: FolioInfo): void {
    this.flushDup();
    if (!tryDupAnon(this.engine, f, 0, 1, this.src)) {
      throw new PvmwError('INTERNAL', `try-dup of folio ${hex(f.id)} failed after the plan found it would not`);
    }
    if (f.nrPages > 1) this.engine.folios.setAnonExclusive(f.id, 1, f.nrPages - 1, false);
  }
}

/** A swap-format entry with some flag bits cleared. */
function clearSwp(raw: RawEntry, mask: number): RawEntry {
  return { lo: (raw.lo & ~mask) >>> 0, hi: raw.hi };
}

/** Copy the content tags (D8, §12.2) of `n` pages from one folio to another, one setTag per run of equal tags. */
function copyTags(engine: Engine, from: FolioId, to: FolioId, n: number): void {
  const x = engine.wasmInstance().exports;
  let start = 0;
  let tag = x.tagGet(from) >>> 0;
  for (let i = 1; i <= n; i++) {
    const t = i < n ? x.tagGet(from + i) >>> 0 : -1;
    if (t === tag) continue;
    if (tag !== 0) engine.folios.setTag(to, start, i - start, tag);
    start = i;
    tag = t;
  }
}
