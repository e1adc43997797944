import { PresentRewrite } from '../model/present-rewrite.js';
import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import {
  decodePresent, PAGE_SWP_EXCLUSIVE, PAGE_SWP_UFFD_WP, pteSpecial, type PfnSoftleafKind, type PresentBits, type RawEntry,
} from '../model/entry.js';
import { FOLIO_FLAG, type FolioId, type FolioInfo } from '../model/folio.js';
import { PMD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import { LeafList } from '../model/pte-batch.js';
import type { Vma } from '../model/vma.js';
import type { Errno } from './errno.js';
import { splitHugePmd } from './huge-pmd.js';
import { leafViewer, presentRaw, softleafRaw, visitLeaves, vmaPageProt, writeLeaves, type LeafView } from './leaf.js';
import { dupWouldFail, maybePinned, newAnonRmap, tryDupAnon } from './rmap-primitives.js';
import { opsState } from './state.js';

/**
 * copy_page_range for one parent/child VMA pair (kernel-operations.md §1.3–§1.6), in two steps so that fork can
 * fail without touching the parent (§1.1 step 4):
 * 1. planCopyPageRange reads the parent's leaves of the VMA once (visitLeaves) and finds what the copy needs: new
 *    folios for eager copies of pinned exclusive pages (§1.4 row 3, §1.5 row 2, §1.6), the pinned huge PMDs to
 *    split first (§1.5 row 2), and the reasons it would fail (ENOMEM: a device-exclusive entry whose folio lock
 *    is busy, a hwpoisoned page to copy). It keeps the leaves as raw records (a LeafList), not as views: views of
 *    a large VMA kept until the copy cost more in garbage collection than viewing each leaf again.
 * 2. copyPageRange applies the plan: parent changes and child entries are computed per leaf (present PTEs by
 *    memoized bit rewrites, PresentRewrite), then written with one writeLeaves call per side (mapcounts follow
 *    the entries). The eager copies come from folios the caller allocated beforehand (CopyFolios).
 * The child VMA is never uffd-wp registered (userfaultfd is not modelled), so the child's copies drop the
 * uffd-wp bit and uffd-wp markers (§1.4 P and MK-UW rows; the kernel does the same for every non-present copy).
 */

export type CopyFolioSize = 'small' | '2M' | '1G';

export interface CopyPlan {
  src: Mm;
  vma: Vma;
  /** The parent's leaves of the VMA as the plan read them (raw: viewed again, one at a time, by the copy). */
  leaves: LeafList;
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

/** The kinds of present leaves that are not special (pte_special: the zero pages and other special entries). */
const MAPPING_KINDS = new Set(['P', 'PL', 'PN', 'PMD', 'HT']);

/** An anon folio mapped (not a zero page or other special entry) by a present leaf. */
function anonMapped(l: LeafView): FolioInfo | undefined {
  return (l.folioFlags & FOLIO_FLAG.anon) !== 0 && MAPPING_KINDS.has(l.kind) ? l.folio : undefined;
}

/**
 * Step 1 (read only). null: §1.3 says the tables are not copied — the parent VMA has no anon_vma and none of the
 * child flags that force a copy (VM_PFNMAP, VM_MIXEDMAP and VM_UFFD_WP are not modelled; VM_MAYBE_GUARD is taken
 * to be set iff the VMA holds a guard marker). An errno: the copy would fail (§1.4 DX and eager-copy rows).
 */
export function planCopyPageRange(engine: Engine, src: Mm, vma: Vma): CopyPlan | Errno | null {
  const plan: CopyPlan = { src, vma, leaves: new LeafList(), needs: { small: 0, '2M': 0, '1G': 0 }, splitPmds: [] };
  let guard = false;
  let fails: Errno | null = null;
  visitLeaves(engine, src, vma.start, vma.end, (l) => {
    plan.leaves.push(l.va, l.level, l.raw.lo, l.raw.hi);
    if (l.kind === 'MK-GRD') guard = true;
    if (fails === null) fails = planLeaf(engine, plan, l);
  }, false);
  if (engine.rmap.anon.of(vma) === null && !guard) return null;
  return fails ?? plan;
}

/** What one leaf needs of the copy (the plan's counts), or the errno the copy would fail with. */
function planLeaf(engine: Engine, plan: CopyPlan, l: LeafView): Errno | null {
  const { src, vma } = plan;
  if (vma.flags.hugetlb !== null) {
    // §1.6: a pinned exclusive anon hugetlb page gets a new huge page in the child.
    const af = anonMapped(l);
    if (af?.hugetlb && dupWouldFail(engine, af, 0, 1, src)) plan.needs[af.hugetlb]++;
  } else if (l.level === 'pte') {
    // §1.4 DX: the restore needs the folio lock (trylock); busy → fork fails with ENOMEM.
    const f = l.kind === 'DX' ? l.folio : undefined;
    if (f?.flags.locked) return 'ENOMEM';
    const copied = (PRESENT_PTE.has(l.kind) && anonMapped(l)) || (f?.anon ? f : undefined);
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
  return null;
}

/** pte_wrprotect on x86: RW cleared, the hardware dirty bit kept as SAVED_DIRTY (§1.4 P row). */
function wrprotect(b: PresentBits): PresentBits {
  return { ...b, write: false, dirty: false, savedDirty: b.dirty || b.savedDirty };
}

/** Step 2: apply a plan, making the child's entries in `dst`/`dstVma` (same bounds and pgoff as plan.vma). */
export function copyPageRange(engine: Engine, plan: CopyPlan, dst: Mm, dstVma: Vma, folios: CopyFolios): void {
  const split = new Set(plan.splitPmds);
  for (const va of plan.splitPmds) splitHugePmd(engine, plan.src, plan.vma, va);
  const c = new Copier(engine, plan, dst, dstVma, folios);
  const leaves = plan.leaves;
  const view = leafViewer(engine, false);
  for (let i = 0; i < leaves.length; i++) {
    const va = leaves.vaAt(i);
    const level = leaves.levelAt(i);
    // A split PMD is copied as the PTEs it became.
    if (level === 'pmd' && split.has(va)) visitLeaves(engine, plan.src, va, va + PMD_SIZE, (l) => c.copy(l), false);
    else c.copy(view(va, level, leaves.loAt(i), leaves.hiAt(i)));
  }
  c.finish();
}

class Copier {
  private readonly parentOut = new LeafList();
  private readonly childOut = new LeafList();
  private readonly cow: boolean;
  private readonly shared: boolean;
  private readonly src: Mm;
  private readonly vma: Vma;
  /** §1.4 P row, the parent's PTE: write-protected if COW and writable. */
  private readonly parentPte: PresentRewrite;
  /** §1.4 P row, the child's PTE: the parent's, old, no uffd-wp, clean if VM_SHARED. */
  private readonly childPte: PresentRewrite;
  /** A run of consecutive pages of one folio whose try-dup is pending (the kernel's PTE batch; §1.4 note 1). */
  private runFolio: FolioInfo | null = null;
  private runPage = 0;
  private runCount = 0;

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
    const parent = (b: PresentBits): PresentBits => (this.cow && b.write ? wrprotect(b) : b);
    const clean = this.shared ? { dirty: false, savedDirty: false } : {};
    this.parentPte = new PresentRewrite('pte', parent);
    this.childPte = new PresentRewrite('pte', (b) => ({ ...parent(b), young: false, uffdWp: false, ...clean }));
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
    switch (l.kind) {
      case 'P': case 'PL': case 'PN': case 'ZP': case 'SPECIAL':
        return this.presentPte(l, l.raw, false);
      case 'DX':
        return this.presentPte(l, this.restoreExclusive(l), true);
      case 'SWAP': {
        // Exclusive bit cleared in the parent; the child's copy has neither it nor uffd-wp; swap count + 1.
        // Hand-placed swap entries may name a slot the swap space does not hold: no count to raise then.
        const e = l.entry;
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
  private presentPte(l: LeafView, raw: RawEntry, restored: boolean): void {
    const f = l.folioId >= 0 && !pteSpecial(raw) ? l.folio : undefined;
    if (f?.anon) {
      if (dupWouldFail(this.engine, f, l.page, 1, this.src)) {
        if (restored) this.setParent(l, raw);
        return this.eagerCopy(l, f);
      }
      this.dup(f, l.page, 1);
    }
    this.setParent(l, this.parentPte.apply(raw));
    this.child(l, this.childPte.apply(raw));
  }

  /**
   * §1.4 DX (6.15+): the device-exclusive entry restored to a present PTE: old, the VMA's protection, soft-dirty
   * and uffd-wp carried; writable iff VM_WRITE and the page may be made writable (AnonExclusive, not uffd-wp;
   * soft-dirty tracking is not modelled), dirty then if the folio is dirty. The lock was checked in the plan.
   */
  private restoreExclusive(l: LeafView): RawEntry {
    const e = l.entry;
    const f = l.folio;
    const exclusive = f ? this.engine.folios.anonExclusive(f.id, l.page) : false;
    const writable = this.vma.flags.write && exclusive && !e.bits.uffdWp;
    const base = presentRaw('pte', e.number!, { ...vmaPageProt(this.vma), young: false, softDirty: e.bits.softDirty, uffdWp: e.bits.uffdWp });
    if (!writable) return base;
    return presentRaw('pte', e.number!, { ...decodePresent('pte', base).bits, write: true, dirty: f?.flags.dirty === true });
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
    if (raw.lo !== l.raw.lo || raw.hi !== l.raw.hi) this.parentOut.push(l.va, l.level, raw.lo, raw.hi);
  }

  private child(l: LeafView, raw: RawEntry): void {
    this.childOut.push(l.va, l.level, raw.lo, raw.hi);
  }

  /** try-dup of PTE-mapped pages, batched over consecutive pages of one folio. */
  private dup(f: FolioInfo, page: number, count: number): void {
    if (this.runFolio?.id === f.id && this.runPage + this.runCount === page) {
      this.runCount += count;
      return;
    }
    this.flushDup();
    this.runFolio = f;
    this.runPage = page;
    this.runCount = count;
  }

  private flushDup(): void {
    const f = this.runFolio;
    this.runFolio = null;
    if (f && !tryDupAnon(this.engine, f, this.runPage, this.runCount, this.src)) {
      throw new PvmwError('INTERNAL', `try-dup of folio ${hex(f.id)} pages ${this.runPage}+${this.runCount} failed after the plan found it would not`);
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
