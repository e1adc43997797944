import { PvmwError, hex } from '../errors.js';
import type { Engine } from '../model/engine.js';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { VmaFlags } from '../model/vma.js';
import { err, ok, type SysResult } from './errno.js';
import { checkWhole, doVmiMunmap, pageAlign, DEFAULT_MAX_MAP_COUNT, type MapCountOptions } from './munmap.js';
import { vmaMergeAround } from './vma-split.js';

/**
 * mmap(2) (do_mmap → get_unmapped_area → mmap_region, 7.0-rc6 mm/mmap.c, mm/vma.c), with kernel-operations.md
 * §2.1/§2.3 for MAP_FIXED over existing mappings and §2.2 for merging with neighbours.
 *
 * Placement: MAP_FIXED takes `addr` (an existing mapping there is unmapped first, as munmap would, §2.3);
 * MAP_FIXED_NOREPLACE (`fixed: 'noreplace'`) fails with EEXIST instead. Otherwise a usable hint is taken as it
 * is, else the highest free range below the mmap base (top-down allocator; without address-space
 * randomisation the base is DEFAULT_MAP_WINDOW − 128 MiB = 0x7ffff7fff000), else the lowest free range above
 * TASK_UNMAPPED_BASE (the kernel's bottom-up fallback). Private anonymous mappings whose length is a multiple
 * of 2 MiB and that have no hint are placed 2 MiB aligned (THP alignment); hugetlb mappings at their page size.
 *
 * What the VMA becomes:
 * - private anonymous: an anon VMA, pgoff = addr / 4096;
 * - shared anonymous: shmem. pvmw models it as a file VMA of a fresh file id (pgoff 0), so its folios are
 *   page-cache folios found through i_mmap, as the kernel finds shmem folios;
 * - file: a file VMA of `file` at `pgoff` (default 0). A shared mapping of a file opened read-only
 *   (`fileWritable: false`): PROT_WRITE → EACCES; otherwise VM_SHARED and VM_MAYWRITE are cleared, as the
 *   kernel does (VM_MAYSHARE, which pvmw does not model, stays);
 * - hugetlb (`hugetlb: '2M' | '1G'`): anonymous lengths are rounded up to the huge page size; a hugetlbfs file
 *   mapping (`file` given) needs an aligned length and pgoff (EINVAL). Private anonymous hugetlb mappings are
 *   anon VMAs in pvmw (the kernel gives them a hugetlbfs file, but their folios are anon either way); shared
 *   ones are shmem-like files as above.
 * - `flags`: further VMA flags (locked, thp, dontcopy, wipeonfork, mergeable). thp defaults to false, as for
 *   every VMA of the model (THP then comes with MADV_HUGEPAGE). MAP_LOCKED / MAP_POPULATE do not populate.
 * Not modelled: RLIMIT_AS / mlock limits / overcommit (ENOMEM, EAGAIN, EPERM), guard gaps of stacks, pkeys.
 */
export interface MmapRequest {
  /** Hint, or the address with `fixed` (default 0). */
  addr?: number;
  len: number;
  prot: { read?: boolean; write?: boolean; exec?: boolean };
  /** MAP_SHARED (else MAP_PRIVATE). */
  shared: boolean;
  /** File id; absent = anonymous. */
  file?: number;
  /** Offset in the file, in pages (default 0). */
  pgoff?: number;
  /** MAP_FIXED (true) or MAP_FIXED_NOREPLACE ('noreplace'). */
  fixed?: boolean | 'noreplace';
  /** MAP_HUGETLB with its page size (or a hugetlbfs file). */
  hugetlb?: '2M' | '1G';
  /** Whether the file was opened for writing (default true). */
  fileWritable?: boolean;
  flags?: Partial<Pick<VmaFlags, 'locked' | 'thp' | 'dontcopy' | 'wipeonfork' | 'mergeable'>>;
}

/** mmap_min_addr's default. */
export const MMAP_MIN_ADDR = 0x10000;
/** DEFAULT_MAP_WINDOW on x86-64 (47-bit user space, also under 5-level paging unless a hint asks for more). */
const DEFAULT_MAP_WINDOW = 2 ** 47 - PAGE_SIZE;
/** mmap_base without randomisation: the stack gap is clamped to its minimum of 128 MiB. */
export const MMAP_BASE = DEFAULT_MAP_WINDOW - 128 * 2 ** 20;

const KEYS = new Set(['addr', 'len', 'prot', 'shared', 'file', 'pgoff', 'fixed', 'hugetlb', 'fileWritable', 'flags']);
const FLAG_KEYS = new Set(['locked', 'thp', 'dontcopy', 'wipeonfork', 'mergeable']);
const HUGE_SIZE = { '2M': PMD_SIZE, '1G': PUD_SIZE } as const;
/** MAX_LFS_FILESIZE in pages: file_mmap_ok's limit on pgoff + pages. */
const MAX_FILE_PAGES = 2 ** 51;

/** Fresh file ids for shmem (shared anonymous) mappings, far above the ids scenarios give their files. */
const nextShmem = new WeakMap<Engine, number>();
function newShmemFile(engine: Engine): number {
  const id = nextShmem.get(engine) ?? 0x8000_0000;
  nextShmem.set(engine, id + 1);
  return id;
}

function validate(req: MmapRequest): void {
  if (typeof req !== 'object' || req === null) throw new PvmwError('BAD_SETTING', 'an mmap request must be an object');
  for (const k of Object.keys(req)) if (!KEYS.has(k)) throw new PvmwError('BAD_SETTING', `unknown mmap option ${JSON.stringify(k)}`);
  checkWhole('addr', req.addr ?? 0);
  checkWhole('len', req.len);
  if (typeof req.prot !== 'object' || req.prot === null) throw new PvmwError('BAD_SETTING', `prot must be an object {read, write, exec}`);
  for (const [k, v] of Object.entries(req.prot)) {
    if (k !== 'read' && k !== 'write' && k !== 'exec') throw new PvmwError('BAD_SETTING', `unknown prot bit ${JSON.stringify(k)}`);
    if (v !== undefined && typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `prot.${k} must be true or false, got ${JSON.stringify(v)}`);
  }
  if (typeof req.shared !== 'boolean') throw new PvmwError('BAD_SETTING', `shared must be true or false, got ${JSON.stringify(req.shared)}`);
  if (req.fixed !== undefined && typeof req.fixed !== 'boolean' && req.fixed !== 'noreplace') {
    throw new PvmwError('BAD_SETTING', `fixed must be true, false or "noreplace", got ${JSON.stringify(req.fixed)}`);
  }
  if (req.hugetlb !== undefined && !(req.hugetlb in HUGE_SIZE)) throw new PvmwError('BAD_ORDER', `hugetlb must be "2M" or "1G", got ${JSON.stringify(req.hugetlb)}`);
  if (req.file !== undefined && (!Number.isSafeInteger(req.file) || req.file < 0)) throw new PvmwError('BAD_SETTING', `file id ${String(req.file)} is not a whole number`);
  if (req.pgoff !== undefined && (!Number.isSafeInteger(req.pgoff) || req.pgoff < 0)) throw new PvmwError('BAD_RANGE', `pgoff ${String(req.pgoff)} is not a non-negative whole number`);
  if (req.pgoff !== undefined && req.file === undefined) throw new PvmwError('BAD_SETTING', `pgoff ${hex(req.pgoff)} given for an anonymous mapping`);
  for (const k of Object.keys(req.flags ?? {})) {
    if (!FLAG_KEYS.has(k)) throw new PvmwError('BAD_SETTING', `mmap flag ${JSON.stringify(k)} is not one of ${[...FLAG_KEYS].join(', ')} (prot, shared and hugetlb have their own options)`);
  }
}

/** Free gaps [start, end) between the mm's VMAs inside [low, high), in address order. */
function gaps(mm: Mm, low: number, high: number): [number, number][] {
  const out: [number, number][] = [];
  let cursor = low;
  for (const v of mm.vmas.all()) {
    if (v.end <= cursor) continue;
    if (v.start >= high) break;
    if (v.start > cursor) out.push([cursor, v.start]);
    cursor = v.end;
  }
  if (cursor < high) out.push([cursor, high]);
  return out;
}

/** get_unmapped_area without MAP_FIXED: the hint if it is free, else top-down, else bottom-up; null = ENOMEM. */
export function unmappedArea(engine: Engine, mm: Mm, hint: number, len: number, align: number): number | null {
  const task = engine.geometry.taskSize;
  if (hint > 0) {
    const a = Math.ceil(hint / align) * align;
    if (a >= MMAP_MIN_ADDR && a <= task - len && mm.vmas.overlapping(a, a + len).length === 0) return a;
  }
  const down = gaps(mm, MMAP_MIN_ADDR, MMAP_BASE).reverse();
  for (const [s, e] of down) {
    const a = Math.floor((e - len) / align) * align;
    if (a >= s && e - len >= s) return a;
  }
  for (const [s, e] of gaps(mm, pageAlign(task / 3), task)) {
    const a = Math.ceil(s / align) * align;
    if (a + len <= e) return a;
  }
  return null;
}

/** mmap(2): the address mapped, or the kernel's errno (see above; in do_mmap's order). */
export function mmap(engine: Engine, mm: Mm, req: MmapRequest, opts: MapCountOptions = {}): SysResult {
  validate(req);
  const task = engine.geometry.taskSize;
  const huge = req.hugetlb !== undefined ? HUGE_SIZE[req.hugetlb] : PAGE_SIZE;
  const anon = req.file === undefined;
  const fixed = req.fixed === true || req.fixed === 'noreplace';
  if (req.len === 0) return err('EINVAL');
  if (req.len < 0) return err('ENOMEM'); // a huge size_t: PAGE_ALIGN wraps to 0, or it passes TASK_SIZE
  let len = req.hugetlb && anon ? Math.ceil(req.len / huge) * huge : req.len; // ksys_mmap_pgoff, MAP_HUGETLB
  let addr = req.addr ?? 0;
  if (!fixed) {
    addr -= addr % PAGE_SIZE; // round_hint_to_min
    if (addr !== 0 && addr < MMAP_MIN_ADDR) addr = MMAP_MIN_ADDR;
  }
  len = pageAlign(len);
  const pgoff = anon ? 0 : (req.pgoff ?? 0);
  if (!anon && pgoff + len / PAGE_SIZE > MAX_FILE_PAGES) return err('EOVERFLOW'); // past MAX_LFS_FILESIZE
  if (mm.vmas.size > (opts.maxMapCount ?? DEFAULT_MAX_MAP_COUNT)) return err('ENOMEM');
  // get_unmapped_area
  if (len > task) return err('ENOMEM');
  if (req.hugetlb && len % huge !== 0) return err('EINVAL');
  if (fixed) {
    if (req.hugetlb && addr % huge !== 0) return err('EINVAL');
    if (addr < 0 || addr > task - len) return err('ENOMEM');
    if (addr % PAGE_SIZE !== 0) return err('EINVAL');
  } else {
    const thpAlign = anon && !req.shared && !req.hugetlb && addr === 0 && len % PMD_SIZE === 0;
    const found = unmappedArea(engine, mm, addr < 0 || addr > task ? 0 : addr, len, thpAlign ? PMD_SIZE : huge);
    if (found === null) return err('ENOMEM');
    addr = found;
  }
  if (req.fixed === 'noreplace' && mm.vmas.overlapping(addr, addr + len).length > 0) return err('EEXIST');
  const fileWritable = req.fileWritable ?? true;
  if (!anon && req.shared && req.prot.write && !fileWritable) return err('EACCES');
  if (!anon && req.hugetlb && pgoff % (huge / PAGE_SIZE) !== 0) return err('EINVAL'); // hugetlbfs_file_mmap
  if (fixed) {
    const r = doVmiMunmap(engine, mm, addr, addr + len, opts);
    if (!r.ok) return r;
  }
  const readOnlyShared = !anon && req.shared && !fileWritable;
  const file = anon ? (req.shared ? newShmemFile(engine) : undefined) : req.file;
  const vma = mm.addVma({
    start: addr,
    end: addr + len,
    pgoff: file === undefined ? undefined : pgoff,
    file,
    flags: {
      ...req.flags,
      read: req.prot.read ?? false,
      write: req.prot.write ?? false,
      exec: req.prot.exec ?? false,
      shared: req.shared && !readOnlyShared,
      mayWrite: !readOnlyShared,
      hugetlb: req.hugetlb ?? null,
    },
  });
  vmaMergeAround(engine, mm, vma);
  return ok(addr);
}
