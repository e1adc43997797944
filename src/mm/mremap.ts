import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SOFT_DIRTY, PAGE_SWP_SOFT_DIRTY, type RawEntry } from '../model/entry.js';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import { PGOFF_LIMIT, type Vma } from '../model/vma.js';
import { err, ok, type Errno, type SysResult } from './errno.js';
import { splitHugePmd } from './huge-pmd.js';
import { ksmUnmerge } from './ksm.js';
import { leavesIn, NONE_RAW, writeLeaves, type LeafView } from './leaf.js';
import { unmappedArea } from './mmap.js';
import { checkWhole, doVmiMunmap, pageAlign, DEFAULT_MAX_MAP_COUNT } from './munmap.js';
import { replaceVma, vmaMergeAround } from './vma-split.js';

/**
 * mremap(2) (kernel-operations.md §4): check_mremap_params and check_prep_vma in kernel order (§4.1), shrink
 * (unmap the tail), grow in place, or move (move_vma, §4.2: KSM break, copy_vma, move_page_tables, unmap or
 * MREMAP_DONTUNMAP), and since ~6.17 the multi-VMA pure move (MREMAP_FIXED with old_len == new_len).
 * Not modelled (no state for them): mseal (EPERM), VM_PFNMAP, rlimits (mlock EAGAIN, address space ENOMEM),
 * commit charge, userfaultfd (uffd-wp bits and markers are kept), populating a grown VM_LOCKED
 * VMA. hugetlb VMAs are VM_DONTEXPAND, as hugetlbfs makes them. A page-table move that passes the engine's
 * memory ceiling throws MEMORY_LIMIT (the kernel's ENOMEM-and-move-back is not modelled).
 */

/** Kernel flag bits (uapi mman.h); `flags` takes them as the syscall sees them. */
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

export interface MremapOptions {
  maymove?: boolean;
  fixed?: boolean;
  dontunmap?: boolean;
  /** new_address: the target with FIXED, a hint with DONTUNMAP alone, else unused (default 0). */
  newAddr?: number;
  /** Raw flag bits, or-ed with the named ones. */
  flags?: number;
  /** vm.max_map_count (default 65530, as munmap's option). */
  maxMapCount?: number;
}

/** vma_remap_struct: the request as the checks refine it. Negative numbers are huge unsigned values. */
interface Remap {
  addr: number;
  oldLen: number;
  newLen: number;
  newAddr: number;
  flags: number;
  maxMapCount: number;
}

const OPTION_KEYS = new Set(['maymove', 'fixed', 'dontunmap', 'newAddr', 'flags', 'maxMapCount']);

function unsigned(v: number): number {
  return v < 0 ? 2 ** 64 + v : v;
}

function parseFlags(opts: MremapOptions): number {
  if (typeof opts !== 'object' || opts === null) throw new PvmwError('BAD_SETTING', 'mremap options must be an object');
  let flags = 0;
  for (const [k, v] of Object.entries(opts)) {
    if (!OPTION_KEYS.has(k)) throw new PvmwError('BAD_SETTING', `unknown mremap option ${JSON.stringify(k)}`);
    if (v === undefined || k === 'newAddr') continue;
    if (k === 'maxMapCount') {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw new PvmwError('BAD_SETTING', `maxMapCount ${String(v)} is not a whole number`);
      continue;
    }
    if (k === 'flags') {
      if (!Number.isInteger(v) || v < 0 || v >= 2 ** 32) throw new PvmwError('BAD_SETTING', `mremap flags ${String(v)} is not a 32-bit unsigned value`);
      flags |= v as number;
    } else {
      if (typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `mremap option ${k} must be true or false, got ${JSON.stringify(v)}`);
      if (v) flags |= k === 'maymove' ? MREMAP_MAYMOVE : k === 'fixed' ? MREMAP_FIXED : MREMAP_DONTUNMAP;
    }
  }
  return flags >>> 0;
}

const impliesNewAddr = (r: Remap) => (r.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) !== 0;

/** mremap(engine, mm, oldAddr, oldLen, newLen, opts): the (new) address, or the kernel's errno (§4.1). */
export function mremap(engine: Engine, mm: Mm, oldAddr: number, oldLen: number, newLen: number, opts: MremapOptions = {}): SysResult {
  checkWhole('addr', oldAddr);
  checkWhole('old_len', oldLen);
  checkWhole('new_len', newLen);
  checkWhole('addr', opts?.newAddr ?? 0);
  const r: Remap = {
    addr: unsigned(oldAddr),
    oldLen: pageAlign(unsigned(oldLen)),
    newLen: pageAlign(unsigned(newLen)),
    newAddr: unsigned(opts?.newAddr ?? 0),
    flags: parseFlags(opts),
    maxMapCount: opts.maxMapCount ?? DEFAULT_MAX_MAP_COUNT,
  };
  const bad = checkMremapParams(engine, mm, r);
  if (bad) return err(bad);
  if ((r.flags & MREMAP_FIXED) !== 0 && r.oldLen === r.newLen) return remapMove(engine, mm, r);
  const vma = mm.vmas.find(r.addr);
  if (!vma) return err('EFAULT');
  const refused = checkPrepVma(r, vma);
  if (refused) return err(refused);
  return impliesNewAddr(r) ? mremapTo(engine, mm, r) : mremapAt(engine, mm, r, vma);
}

/**
 * check_mremap_params (§4.1 rows 1–8): flags, alignment, lengths, the FIXED/DONTUNMAP target, and room for the
 * worst case of two more VMAs (map_count + 2 ≥ max_map_count − 3 → ENOMEM).
 */
function checkMremapParams(engine: Engine, mm: Mm, r: Remap): Errno | null {
  const task = engine.geometry.taskSize;
  if ((r.flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) !== 0) return 'EINVAL';
  if (r.addr % PAGE_SIZE !== 0) return 'EINVAL';
  if (r.newLen === 0 || r.newLen > task) return 'EINVAL';
  if (!impliesNewAddr(r)) return null;
  if (r.newAddr > task - r.newLen) return 'EINVAL';
  if (r.newAddr % PAGE_SIZE !== 0) return 'EINVAL';
  if ((r.flags & MREMAP_MAYMOVE) === 0) return 'EINVAL';
  if ((r.flags & MREMAP_DONTUNMAP) !== 0 && r.oldLen !== r.newLen) return 'EINVAL';
  if (r.addr + r.oldLen > r.newAddr && r.newAddr + r.newLen > r.addr) return 'EINVAL'; // vrm_overlaps
  if (mm.vmas.size + 2 >= r.maxMapCount - 3) return 'ENOMEM';
  return null;
}

/**
 * check_prep_vma (§4.1 rows 10–20) for the VMA holding r.addr. hugetlb: lengths rounded up to the huge page
 * size, addresses (even an unused new_address) must be aligned, no growing. Without FIXED/DONTUNMAP,
 * new_address := addr. Only for a move or a grow: old_len 0 needs a shared mapping; DONTUNMAP and resizing
 * refuse VM_DONTEXPAND (hugetlb); the old range must end inside the VMA; page offsets must not overflow.
 */
function checkPrepVma(r: Remap, vma: Vma): Errno | null {
  if (vma.flags.hugetlb !== null) {
    const size = vma.flags.hugetlb === '1G' ? PUD_SIZE : PMD_SIZE;
    r.oldLen = Math.ceil(r.oldLen / size) * size;
    r.newLen = Math.ceil(r.newLen / size) * size;
    if (r.addr % size !== 0 || r.newAddr % size !== 0 || r.newLen > r.oldLen) return 'EINVAL';
  }
  if (!impliesNewAddr(r)) r.newAddr = r.addr;
  if (r.newLen <= r.oldLen && !impliesNewAddr(r)) return null; // neither grows nor maps anew
  const dontexpand = vma.flags.hugetlb !== null;
  if (r.oldLen === 0 && !vma.flags.shared) return 'EINVAL';
  if ((r.flags & MREMAP_DONTUNMAP) !== 0 && dontexpand) return 'EINVAL';
  if (r.oldLen > vma.end - r.addr) return 'EFAULT';
  if (r.newLen === r.oldLen) return null;
  const pgoff = vma.pgoff + (r.addr - vma.start) / PAGE_SIZE;
  if (pgoff + r.newLen / PAGE_SIZE >= PGOFF_LIMIT) return 'EINVAL';
  if (dontexpand) return 'EFAULT';
  return null;
}

/** mremap_at (§4.2 last paragraph): same size → nothing; shrink → unmap the tail; grow → expandVma. */
function mremapAt(engine: Engine, mm: Mm, r: Remap, vma: Vma): SysResult {
  if (r.newLen === r.oldLen) return ok(r.addr);
  if (r.newLen < r.oldLen) {
    const u = doVmiMunmap(engine, mm, r.addr + r.newLen, r.addr + r.oldLen, { maxMapCount: r.maxMapCount });
    return u.ok ? ok(r.addr) : u;
  }
  // expand_vma: in place if the old range ends at vm_end and [vm_end, vm_end + delta) is free.
  const delta = r.newLen - r.oldLen;
  const inPlace = r.addr + r.oldLen === vma.end && vma.end + delta <= engine.geometry.taskSize &&
    mm.vmas.overlapping(vma.end, vma.end + delta).length === 0;
  if (inPlace) {
    vmaMergeAround(engine, mm, replaceVma(engine, mm, vma, { end: vma.end + delta }));
    return ok(r.addr);
  }
  if ((r.flags & MREMAP_MAYMOVE) === 0) return err('ENOMEM');
  const to = unmappedArea(engine, mm, r.newAddr, r.newLen, PAGE_SIZE);
  if (to === null) return err('ENOMEM');
  return moveVma(engine, mm, vma, r.addr, r.oldLen, to, r.newLen, false, r.maxMapCount);
}

/**
 * mremap_to (FIXED or DONTUNMAP): with FIXED, unmap the target first; a shrink unmaps the old tail first;
 * then move to new_address (FIXED) or to an area found from the hint (DONTUNMAP alone).
 */
function mremapTo(engine: Engine, mm: Mm, r: Remap): SysResult {
  if ((r.flags & MREMAP_FIXED) !== 0) {
    const u = doVmiMunmap(engine, mm, r.newAddr, r.newAddr + r.newLen, { maxMapCount: r.maxMapCount });
    if (!u.ok) return u;
  }
  if (!mm.vmas.find(r.addr)) return err('EFAULT');
  if (r.newLen < r.oldLen) {
    const u = doVmiMunmap(engine, mm, r.addr + r.newLen, r.addr + r.oldLen, { maxMapCount: r.maxMapCount });
    if (!u.ok) return u;
    r.oldLen = r.newLen;
  }
  const vma = mm.vmas.find(r.addr);
  if (!vma) return err('EFAULT');
  const to = (r.flags & MREMAP_FIXED) !== 0 ? r.newAddr : unmappedArea(engine, mm, r.newAddr, r.newLen, PAGE_SIZE);
  if (to === null) return err('ENOMEM');
  return moveVma(engine, mm, vma, r.addr, r.oldLen, to, r.newLen, (r.flags & MREMAP_DONTUNMAP) !== 0, r.maxMapCount);
}

/**
 * remap_move (§4.1 multi-VMA paragraph): a pure FIXED move of [addr, addr + len) over several VMAs, each moved
 * in turn keeping the gaps between them. No VMA there, or a gap at the very start → EFAULT; an error on a later
 * VMA returns it with the earlier ones already moved.
 */
function remapMove(engine: Engine, mm: Mm, r: Remap): SysResult {
  const start = r.addr;
  const end = r.addr + r.oldLen;
  let res: SysResult = err('EFAULT');
  let seen = false;
  let lastEnd = 0;
  let target = r.newAddr;
  let cursor = start;
  for (;;) {
    const vma: Vma | undefined = cursor < end ? mm.vmas.overlapping(cursor, end)[0] : undefined;
    if (!vma) break;
    if (!seen && start < vma.start) return err('EFAULT');
    const addr = Math.max(vma.start, start);
    const len = Math.min(end, vma.end) - addr;
    const offset = seen ? vma.start - lastEnd : 0;
    lastEnd = vma.end;
    cursor = vma.end;
    const sub: Remap = { ...r, addr, oldLen: len, newLen: len, newAddr: target + offset };
    const refused = checkPrepVma(sub, vma);
    if (refused) return err(refused);
    const moved = mremapTo(engine, mm, sub);
    if (!moved.ok) return moved;
    if (!seen) res = moved;
    seen = true;
    target = moved.value + sub.newLen;
  }
  return res;
}

/**
 * move_vma (§4.2) of [oldAddr, oldAddr + oldLen) of `vma` to [newAddr, newAddr + newLen):
 * 0. map_count ≥ max_map_count − 3 → ENOMEM (nothing changed);
 * 1. VM_MERGEABLE → break KSM sharing in the moved range (ksmUnmerge), flags unchanged;
 * 3. copyVma; 4. movePageTables;
 * 5. without DONTUNMAP the old range is unmapped (its tables are already empty; old_len 0 unmaps nothing);
 *    with DONTUNMAP the old VMA stays with empty tables, loses VM_LOCKED, and if it moved whole its anon_vma
 *    links are dropped (a later fault attaches a fresh anon_vma);
 * then the new VMA merges with compatible neighbours. Returns the new address.
 */
export function moveVma(
  engine: Engine, mm: Mm, vma: Vma, oldAddr: number, oldLen: number, newAddr: number, newLen: number, dontunmap: boolean,
  maxMapCount = DEFAULT_MAX_MAP_COUNT,
): SysResult {
  if (mm.vmas.size >= maxMapCount - 3) return err('ENOMEM'); // prep_move_vma: room for splitting the old VMA
  if (vma.flags.mergeable && oldLen > 0) {
    const k = ksmUnmerge(engine, mm, oldAddr, oldAddr + oldLen);
    if (!k.ok) return k;
  }
  const newVma = copyVma(engine, mm, vma, oldAddr, newAddr, newLen);
  movePageTables(engine, mm, vma, oldAddr, newAddr, oldLen);
  if (dontunmap) {
    vma.flags.locked = false;
    if (oldAddr === vma.start && oldAddr + oldLen === vma.end) engine.rmap.anon.unlink(vma);
  } else if (oldLen > 0) {
    const u = doVmiMunmap(engine, mm, oldAddr, oldAddr + oldLen, { maxMapCount: Number.MAX_SAFE_INTEGER });
    if (!u.ok) throw new PvmwError('INTERNAL', `unmapping the moved range failed with ${u.errno}`);
  }
  vmaMergeAround(engine, mm, mm.vmas.byId(newVma.id) ?? newVma);
  return ok(newAddr);
}

/**
 * copy_vma (§4.2 step 3): the destination VMA, pgoff = old pgoff + (oldAddr − vm_start)/4096 so every folio's
 * index stays valid (an anonymous VMA that never faulted — no anon_vma — takes newAddr/4096 instead), the same
 * flags and file (i_mmap), and copies of the old VMA's anon_vma links (anon_vma_clone).
 */
export function copyVma(engine: Engine, mm: Mm, vma: Vma, oldAddr: number, newAddr: number, newLen: number): Vma {
  const unfaulted = vma.anon && engine.rmap.anon.of(vma) === null;
  const pgoff = unfaulted ? newAddr / PAGE_SIZE : vma.pgoff + (oldAddr - vma.start) / PAGE_SIZE;
  const nv = mm.addVma({ start: newAddr, end: newAddr + newLen, pgoff, flags: { ...vma.flags }, file: vma.file ?? undefined });
  engine.rmap.anon.clone(nv, vma);
  return nv;
}

/** move_soft_dirty_pte / move_soft_dirty_pmd: soft-dirty set on a present or a swap-format entry. */
export function moveSoftDirty(leaf: LeafView): RawEntry {
  const bit = leaf.entry.kind === 'present' ? PAGE_SOFT_DIRTY : PAGE_SWP_SOFT_DIRTY;
  return { lo: (leaf.raw.lo | bit) >>> 0, hi: leaf.raw.hi };
}

/**
 * move_page_tables (§4.2 step 4, §4.3) of [oldAddr, oldAddr + len) in `vma` to newAddr (an empty range of the
 * same mm). A huge PMD leaf (PMD, HZP, PMD MIG-x, PMD DP-x) moves as it is when its whole 2 MiB lies in the
 * range and the destination is 2 MiB aligned too; any other huge PMD is split first (non-freeze, §6.1: anon →
 * 512 PTEs of the same folio; file → the PMD goes). Every leaf is then cleared at its old VA and written at
 * its new VA unchanged but soft-dirty (hugetlb leaves exactly unchanged, as move_huge_pte does): one read, one
 * write. Mappings move with their entries — no rmap, mapcount, refcount or index change. Page tables emptied
 * at the old range are freed. Returns the number of leaves moved.
 */
export function movePageTables(engine: Engine, mm: Mm, vma: Vma, oldAddr: number, newAddr: number, len: number): number {
  if (len === 0) return 0;
  const end = oldAddr + len;
  const hugetlb = vma.flags.hugetlb !== null;
  const from = oldAddr - (oldAddr % PMD_SIZE);
  let leaves = leavesIn(engine, mm, from, end);
  if (!hugetlb) {
    const aligned = (newAddr - oldAddr) % PMD_SIZE === 0;
    const split = leaves.filter((l) => l.level === 'pmd' && (!aligned || l.va < oldAddr || l.va + PMD_SIZE > end));
    for (const l of split) splitHugePmd(engine, mm, vma, l.va);
    if (split.length > 0) leaves = leavesIn(engine, mm, from, end);
  }
  leaves = leaves.filter((l) => l.va >= oldAddr);
  if (mm.clear(newAddr, newAddr + len) !== 0) throw new PvmwError('INTERNAL', 'the destination of a page-table move was not empty');
  const writes: Leaf[] = leaves.map((l) => ({ va: l.va, level: l.level, raw: NONE_RAW }));
  for (const l of leaves) writes.push({ va: newAddr + (l.va - oldAddr), level: l.level, raw: hugetlb ? l.raw : moveSoftDirty(l) });
  writeLeaves(engine, mm, writes);
  mm.clear(oldAddr, end); // nothing is left there: this frees the tables the move emptied
  return leaves.length;
}
