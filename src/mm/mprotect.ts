import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { rawEquals, type PresentBits, type RawEntry } from '../model/entry.js';
import { LEAF_LEVELS, PAGE_SIZE, PMD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import type { PfnSoftleafKind } from '../model/entry.js';
import type { Vma } from '../model/vma.js';
import { err, ok, type Errno, type SysResult } from './errno.js';
import { splitHugePmd } from './huge-pmd.js';
import { checkWhole, pageAlign, DEFAULT_MAX_MAP_COUNT, type MapCountOptions } from './munmap.js';
import { leavesIn, presentRaw, softleafRaw, vmaPageProt, writeLeaves, type LeafView } from './leaf.js';
import { isolateRange, vmaMergeAround } from './vma-split.js';
import { CPU_ACCESS_TRIES } from './access.js';
import { handleMmFault } from './fault.js';
import { faultLeafAt } from './wp-fault.js';

/**
 * mprotect(2) (kernel-operations.md §3): do_mprotect_pkey's argument checks in kernel order (§3.1), then per
 * VMA mprotect_fixup (§3.2: split/merge, new flags) and change_protection over the range (§3.3 per PTE kind,
 * §3.4 PMD level). Not modelled (no state for them): pkeys, MDWE, sealing, PFNMAP, commit charge,
 * READ_IMPLIES_EXEC, VM_GROWSDOWN/UP VMAs (so PROT_GROWSDOWN/UP always end in EINVAL), NUMA
 * hinting (change_prot_numa), userfaultfd write-protect.
 */

/** Kernel prot bits (uapi mman-common.h); a number `prot` uses them, as the syscall sees it. */
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x01000000;
export const PROT_GROWSUP = 0x02000000;

/** prot by name (absent = false), or the raw bits. */
export interface ProtFlags {
  read?: boolean;
  write?: boolean;
  exec?: boolean;
  sem?: boolean;
  growsdown?: boolean;
  growsup?: boolean;
}
export type Prot = ProtFlags | number;

const PROT_NAMES: Record<keyof ProtFlags, number> = {
  read: PROT_READ, write: PROT_WRITE, exec: PROT_EXEC, sem: PROT_SEM, growsdown: PROT_GROWSDOWN, growsup: PROT_GROWSUP,
};

/** prot as kernel bits; a value the syscall could never receive (unknown name, non-boolean, not a u32) is a PvmwError. */
export function protBits(prot: Prot): number {
  if (typeof prot === 'number') {
    if (!Number.isInteger(prot) || prot < 0 || prot >= 2 ** 32) throw new PvmwError('BAD_SETTING', `prot ${String(prot)} is not a 32-bit unsigned value`);
    return prot;
  }
  if (typeof prot !== 'object' || prot === null) throw new PvmwError('BAD_SETTING', `prot must be an object or a number, got ${JSON.stringify(prot)}`);
  let bits = 0;
  for (const [k, v] of Object.entries(prot)) {
    if (!(k in PROT_NAMES)) throw new PvmwError('BAD_SETTING', `unknown prot flag ${JSON.stringify(k)}`);
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `prot.${k} must be true or false, got ${JSON.stringify(v)}`);
    if (v) bits |= PROT_NAMES[k as keyof ProtFlags];
  }
  return bits >>> 0;
}

/**
 * mprotect (do_mprotect_pkey, §3.1) of [addr, addr + len). VMAs are changed one after another; a hole found
 * after the first VMA, or a refusal (EACCES) of a later VMA, returns the error with the earlier VMAs already
 * changed (the kernel does not roll back).
 */
export function mprotect(engine: Engine, mm: Mm, addr: number, len: number, prot: Prot, opts: MapCountOptions = {}): SysResult {
  const maxMapCount = opts.maxMapCount ?? DEFAULT_MAX_MAP_COUNT;
  checkWhole('addr', addr);
  checkWhole('len', len);
  const bits = protBits(prot);
  const grows = bits & (PROT_GROWSDOWN | PROT_GROWSUP);
  const p = bits & ~(PROT_GROWSDOWN | PROT_GROWSUP);
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return err('EINVAL');
  if (addr % PAGE_SIZE !== 0) return err('EINVAL');
  if (len === 0) return ok(0);
  if (len < 0) return err('ENOMEM'); // a huge size_t: start + PAGE_ALIGN(len) wraps, end ≤ start
  const end = addr + pageAlign(len);
  if ((p & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) !== 0) return err('EINVAL'); // arch_validate_prot
  const want = { read: (p & PROT_READ) !== 0, write: (p & PROT_WRITE) !== 0, exec: (p & PROT_EXEC) !== 0 };

  const first = mm.vmas.overlapping(addr, end)[0];
  if (!first) return err('ENOMEM');
  if (grows & PROT_GROWSDOWN) return err('EINVAL'); // no VMA has VM_GROWSDOWN in the model
  if (first.start > addr) return err('ENOMEM');
  if (grows & PROT_GROWSUP) return err('EINVAL');

  let cur: Vma | undefined = first;
  let tmp = first.start;
  let nstart = addr;
  let error: Errno | null = null;
  while (cur) {
    if (cur.start !== tmp) {
      error = 'ENOMEM'; // a hole: the VMAs before it stay changed
      break;
    }
    if (want.write && !cur.flags.mayWrite) {
      error = 'EACCES'; // the new flags ask for what VM_MAY* does not allow
      break;
    }
    const r = mprotectFixup(engine, mm, cur, nstart, Math.min(cur.end, end), want, maxMapCount);
    if (typeof r === 'string') {
      error = r;
      break;
    }
    tmp = r.end; // vma_iter_end: a merge with the next VMA may reach past `end`
    nstart = tmp;
    cur = tmp < end ? mm.vmas.overlapping(tmp, end)[0] : undefined;
  }
  if (!error && tmp < end) error = 'ENOMEM'; // the range ends in a hole
  return error ? err(error) : ok(0);
}

/**
 * mprotect_fixup (§3.2) for [start, end) inside `vma`: nothing if the flags do not change; else split at start
 * and end (§2.2; a split at max_map_count is ENOMEM, a hugetlb VMA refuses an unaligned one: EINVAL — both
 * ends checked before either is split, where the kernel may have split the first already),
 * set the new flags (vm_flags_reset on the VMA itself), change_protection over the range, and merge with
 * compatible neighbours. Returns the VMA now covering the range.
 */
export function mprotectFixup(
  engine: Engine, mm: Mm, vma: Vma, start: number, end: number, want: { read: boolean; write: boolean; exec: boolean },
  maxMapCount = DEFAULT_MAX_MAP_COUNT,
): Vma | Errno {
  const f = vma.flags;
  if (f.read === want.read && f.write === want.write && f.exec === want.exec) return vma;
  const splits = (vma.start < start ? 1 : 0) + (vma.end > end ? 1 : 0);
  if (splits > 0 && mm.vmas.size + splits - 1 >= maxMapCount) return 'ENOMEM'; // split_vma at max_map_count
  const inside = isolateRange(engine, mm, start, end);
  if (!inside) return 'EINVAL';
  const target = inside[0];
  const populate = f.locked && !f.write && !f.shared && want.write;
  Object.assign(target.flags, want);
  changeProtection(engine, mm, target, start, end);
  const merged = vmaMergeAround(engine, mm, target);
  if (populate) populateWritable(engine, mm, start, end);
  return merged;
}

/**
 * populate_vma_page_range with FOLL_WRITE (§3.2 step 6, a private VM_LOCKED VMA that became writable): every
 * page of [start, end) not mapped by a writable present entry takes a write fault, as GUP does (COW copies,
 * new pages, migration entries waited for, device pages brought back). Outcomes are ignored, as mprotect does.
 */
export function populateWritable(engine: Engine, mm: Mm, start: number, end: number): void {
  const writable = (v: LeafView) => v.entry.kind === 'present' && v.entry.bits.write && !v.entry.present?.protnone;
  for (let a = start; a < end;) {
    let v = faultLeafAt(engine, mm, a);
    for (let tries = 0; !writable(v) && tries < CPU_ACCESS_TRIES; tries++) {
      const r = handleMmFault(engine, mm, a, { write: true });
      v = faultLeafAt(engine, mm, a);
      if (r !== 'ok' && r !== 'retry') break;
    }
    a = writable(v) ? Math.max(a + PAGE_SIZE, v.va + 2 ** LEAF_LEVELS[v.level]) : a + PAGE_SIZE;
  }
}

/**
 * vma_wants_manual_pte_write_upgrade (§3.2 step 4): "try to make PTEs writable" for a private VMA with
 * VM_WRITE, or a shared writable one with write-notify (its vm_page_prot withholds write).
 */
export function tryChangeWritable(vma: Vma): boolean {
  if (!vma.flags.write) return false;
  return !vma.flags.shared || !vmaPageProt(vma).write;
}

/**
 * can_change_pte_writable / can_change_pmd_writable (§3.3, §3.4) for a present leaf whose new bits are `bits`:
 * never for protnone or uffd-wp; private VMA: a normal (not special) anon page that is AnonExclusive (the
 * leaf's own page; a PMD's head page); shared VMA: the entry is already dirty. hugetlb leaves are never
 * upgraded (hugetlb_change_protection has no such step).
 */
export function canChangeWritable(engine: Engine, vma: Vma, leaf: LeafView, bits: Partial<PresentBits>): boolean {
  if (!vma.flags.write || bits.protnone || bits.uffdWp || leaf.kind === 'HT') return false;
  if (vma.flags.shared) return bits.dirty === true;
  const f = leaf.folio;
  if (bits.special || !f || !f.anon) return false;
  return engine.folios.anonExclusive(f.id, leaf.page);
}

/**
 * The new value of one leaf under the VMA's new protection (§3.3 / §3.4), or null if it stays:
 * - present (P, PL, ZP, PN, PMD, HZP, HT): protection bits from vm_page_prot; pfn, caching, special, young,
 *   dirty, saved-dirty, soft-dirty and uffd-wp kept (pte_modify); then the try-writable upgrade;
 * - MIG-W → MIG-RX (anon folio) / MIG-R (file), unconditionally; young/dirty and soft-dirty kept (uffd-wp is
 *   not carried, as in the kernel);
 * - DP-W → DP-R, unconditionally; uffd-wp kept, soft-dirty dropped;
 * - everything else (NONE, MIG-R/RX, DP-R, DX, SWAP, HWP, markers) unchanged.
 */
export function changeLeaf(engine: Engine, vma: Vma, leaf: LeafView, tryWritable = tryChangeWritable(vma)): RawEntry | null {
  const e = leaf.entry;
  if (e.kind === 'present' && e.present && e.number !== null) {
    const o = e.present;
    const bits: Partial<PresentBits> = {
      pwt: o.pwt, pcd: o.pcd, pat: o.pat, special: o.special, young: o.young, dirty: o.dirty,
      savedDirty: o.savedDirty, softDirty: o.softDirty, uffdWp: o.uffdWp, ...vmaPageProt(vma),
    };
    if (tryWritable && !bits.write && canChangeWritable(engine, vma, leaf, bits)) bits.write = true;
    return presentRaw(leaf.level, e.number, bits);
  }
  if (leaf.kind === 'MIG-W' && e.number !== null) {
    const kind = e.kind.replace(/write$/, leaf.folio?.anon ? 'read-exclusive' : 'read') as PfnSoftleafKind;
    return softleafRaw(engine, { kind, number: e.number, young: e.bits.young, dirty: e.bits.dirty, flags: { softDirty: e.bits.softDirty } });
  }
  if (leaf.kind === 'DP-W' && e.number !== null) {
    return softleafRaw(engine, { kind: 'device-private-read', number: e.number, flags: { uffdWp: e.bits.uffdWp } });
  }
  return null;
}

/**
 * change_protection (§3.3, §3.4) of [start, end) inside `vma`, whose flags are already the new ones: a huge
 * PMD the range covers only in part is split first (non-freeze, §6.1), then every leaf is read in one call and
 * the changed ones written in one call. Returns the number of leaves changed.
 */
export function changeProtection(engine: Engine, mm: Mm, vma: Vma, start: number, end: number): number {
  if (start < vma.start || end > vma.end || start >= end || start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0) {
    throw new PvmwError('BAD_RANGE', `[${hex(start)}, ${hex(end)}) is not a page-aligned range inside VMA ${hex(vma.start)}-${hex(vma.end)}`);
  }
  if (vma.flags.hugetlb === null) {
    if (start % PMD_SIZE !== 0) splitHugePmd(engine, mm, vma, start);
    if (end % PMD_SIZE !== 0) splitHugePmd(engine, mm, vma, end);
  }
  const tryWritable = tryChangeWritable(vma);
  const out: Leaf[] = [];
  for (const leaf of leavesIn(engine, mm, start, end)) {
    const raw = changeLeaf(engine, vma, leaf, tryWritable);
    if (raw && !rawEquals(raw, leaf.raw)) out.push({ va: leaf.va, level: leaf.level, raw });
  }
  writeLeaves(engine, mm, out);
  return out.length;
}
