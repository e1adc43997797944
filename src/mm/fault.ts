import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import { PAGE_SIZE, PMD_ORDER, type LeafLevel } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import { linearPageIndex, thpVmaSuitableOrder, type Vma } from '../model/vma.js';
import { rmapWalk } from '../rmap/rmap-walk.js';
import type { FaultOutcome } from './errno.js';
import { hugetlbFault } from './hugetlb-fault.js';
import { leafPages, leavesIn, NONE_RAW, presentRaw, putFolio, viewLeaf, vmaPageProt, writeLeaves, zeroPages, type LeafView } from './leaf.js';
import { newAnonRmap } from './rmap-primitives.js';
import { opsState } from './state.js';
import { allocFolio, copyTags, doWpPage, faultEntry, faultLeafAt, installLeaves } from './wp-fault.js';

/**
 * Page faults as state transitions (kernel-operations.md §5): handle_mm_fault's dispatch (§5.1), THP
 * eligibility (§5.2), do_anonymous_page (§5.3), do_huge_pmd_anonymous_page (§5.4), do_swap_page for every
 * non-present PTE kind (§5.5), do_fault for file VMAs (§5.7) and do_numa_page (§3.3). Write faults on
 * read-only present entries go to wp-fault.ts (§5.6). The outcome is returned, never thrown (D7); an access
 * that should simply be retried (migration in flight, device page brought back) returns 'retry'.
 *
 * Not modelled: fault-around on file read faults (§5.7; only the faulting page is mapped), PMD mappings of
 * page-cache THPs and DAX huge faults (file faults use PTEs), NUMA migration after a hint fault (the PTE is
 * only rebuilt), userfaultfd registration (an MK-UW marker is cleared and the slot handled as NONE), the swap
 * cache (each swap-in makes its own folio). Faults in hugetlb VMAs go to hugetlb-fault.ts.
 */

/** A device's migrate_to_ram callback (§10.7, §11.4): brings `folio` back; an error outcome fails the fault. */
export type MigrateToRam = (ctx: { engine: Engine; mm: Mm; vma: Vma; addr: number; folio: FolioInfo; leaf: LeafView }) => FaultOutcome | void;

export interface FaultOptions {
  write?: boolean;
  exec?: boolean;
  /** Folio order for a new anon folio: 9 = THP (PMD), 1 … 8 = mTHP, 0; default §5.2 (THP if allowed, else 0). */
  order?: number;
  migrateToRam?: MigrateToRam;
}

const OPTION_KEYS = new Set(['write', 'exec', 'order', 'migrateToRam']);

/** Input the kernel could never see: a non-number or fractional address, unknown options (PvmwError, D7). */
function checkFaultInput(addr: unknown, o: FaultOptions): void {
  if (typeof addr !== 'number' || !Number.isInteger(addr) || addr < 0) {
    throw new PvmwError('BAD_ADDRESS', `fault address ${String(addr)} is not a non-negative whole number`);
  }
  if (typeof o !== 'object' || o === null) throw new PvmwError('BAD_SETTING', `fault options must be an object, got ${JSON.stringify(o)}`);
  for (const [k, v] of Object.entries(o)) {
    if (!OPTION_KEYS.has(k)) throw new PvmwError('BAD_SETTING', `unknown fault option ${JSON.stringify(k)}`);
    if (v === undefined) continue;
    if ((k === 'write' || k === 'exec') && typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `fault option ${k} must be true or false, got ${JSON.stringify(v)}`);
    if (k === 'migrateToRam' && typeof v !== 'function') throw new PvmwError('BAD_SETTING', `migrateToRam must be a function`);
    if (k === 'order' && (!Number.isInteger(v) || (v as number) < 0 || (v as number) > PMD_ORDER)) {
      throw new PvmwError('BAD_ORDER', `fault folio order ${JSON.stringify(v)} does not exist (0 … ${PMD_ORDER})`);
    }
  }
  if (o.write && o.exec) throw new PvmwError('BAD_SETTING', `a fault is a write or an instruction fetch, not both`);
}

/** handle_mm_fault (§5.1): a CPU fault at `addr` of mm (read unless `write` or `exec`). */
export function handleMmFault(engine: Engine, mm: Mm, addr: number, opts: FaultOptions = {}): FaultOutcome {
  checkFaultInput(addr, opts);
  const write = opts.write === true;
  const vma = mm.vmas.find(addr);
  // §5.1 step 0: SEGV_MAPERR without a VMA; SEGV_ACCERR when the VMA does not allow the access.
  if (!vma) return 'SIGSEGV';
  const f = vma.flags;
  if (write ? !f.write : opts.exec ? !f.exec : !(f.read || f.write || f.exec)) return 'SIGSEGV';
  const v = faultLeafAt(engine, mm, addr);
  if (f.hugetlb) return hugetlbFault(engine, mm, vma, addr, write);
  if (v.level === 'pte') return handlePteFault(engine, mm, vma, addr, v, opts);
  // §5.1 steps 1-3: the PMD slot.
  if (v.kind === 'NONE') {
    if (vma.anon && pmdThpAllowed(vma, addr, opts.order)) {
      const r = doHugePmdAnonymousPage(engine, mm, vma, addr, write);
      if (r !== 'fallback') return r;
    }
    return handlePteFault(engine, mm, vma, addr, v, opts);
  }
  if (v.kind.startsWith('MIG-')) return 'retry';
  if (v.kind === 'DP-R' || v.kind === 'DP-W') return deviceFault(engine, mm, vma, addr, v, opts);
  if (v.kind === 'PN') return doNumaPage(engine, mm, vma, v);
  if (v.entry.kind !== 'present') return 'SIGBUS';
  if (write && !v.entry.bits.write) return doWpPage(engine, mm, vma, addr, v);
  return markAccessed(engine, mm, v, write);
}

/** §5.1 step 4 / §5.5: the PTE (or NONE PMD slot without THP) at `addr`. */
function handlePteFault(engine: Engine, mm: Mm, vma: Vma, addr: number, v: LeafView, opts: FaultOptions): FaultOutcome {
  const write = opts.write === true;
  switch (v.kind) {
    case 'MK-UW': // §5.5: not uffd-wp registered (pvmw models no registration): clear, then as NONE
    case 'NONE':
      if (v.kind === 'MK-UW') writeLeaves(engine, mm, [{ va: v.va, level: 'pte', raw: NONE_RAW }]);
      return vma.anon ? doAnonymousPage(engine, mm, vma, addr, write, opts.order) : doFault(engine, mm, vma, addr, write);
    case 'MIG-R': case 'MIG-RX': case 'MIG-W':
      return 'retry';
    case 'DP-R': case 'DP-W':
      return deviceFault(engine, mm, vma, addr, v, opts);
    case 'DX':
      return restoreExclusivePte(engine, mm, vma, v);
    case 'SWAP':
      return doSwapIn(engine, mm, vma, v, write);
    case 'HWP': case 'MK-PSN':
      return 'SIGBUS';
    case 'MK-GRD':
      return 'SIGSEGV';
    case 'PN':
      return doNumaPage(engine, mm, vma, v);
    case 'P': case 'PL': case 'ZP': case 'SPECIAL':
      if (write && !v.entry.bits.write) return doWpPage(engine, mm, vma, addr, v);
      return markAccessed(engine, mm, v, write);
    default:
      return 'SIGBUS'; // §5.5 "any other type": a bad PTE
  }
}

/** The spurious-fault end of §5.1: the entry allows the access; mark it accessed (and dirty on a write). */
function markAccessed(engine: Engine, mm: Mm, v: LeafView, write: boolean): FaultOutcome {
  const p = v.entry.present!;
  if (p.young && (!write || p.dirty)) return 'ok';
  const raw = presentRaw(v.level, v.entry.number!, { ...p, young: true, ...(write ? { dirty: true, softDirty: true } : {}) });
  writeLeaves(engine, mm, [{ va: v.va, level: v.level, raw }]);
  return 'ok';
}

/**
 * §5.2 for the PMD order: thp_vma_allowable_orders (the VMA is not VM_NOHUGEPAGE, the caller did not ask for a
 * smaller order) and thp_vma_suitable_order (the aligned 2 MiB lies inside the VMA). The PMD slot is NONE.
 */
export function pmdThpAllowed(vma: Vma, addr: number, order?: number): boolean {
  return vma.anon && vma.flags.thp && (order === undefined || order === PMD_ORDER) && thpVmaSuitableOrder(vma, addr, PMD_ORDER);
}

/**
 * §5.3 step 5: the mTHP order asked for (1 … 8) if the VMA allows THP, the order is suitable and its whole
 * aligned range of PTEs is NONE; else 0.
 */
export function anonFaultOrder(engine: Engine, mm: Mm, vma: Vma, addr: number, order?: number): number {
  if (order === undefined || order === 0 || order >= PMD_ORDER || !vma.flags.thp || !thpVmaSuitableOrder(vma, addr, order)) return 0;
  const size = PAGE_SIZE * 2 ** order;
  const start = addr - (addr % size);
  return leavesIn(engine, mm, start, start + size).length === 0 ? order : 0;
}

/**
 * do_anonymous_page (§5.3): SIGBUS in a shared anon VMA; a read maps the zero page (ZP: special, read-only,
 * no rmap); a write (or a read with use_zero_page off) maps a new zeroed folio of the chosen order, young,
 * dirty + writable if VM_WRITE, new-anon-rmap(exclusive) at the aligned address (index = linear page index).
 */
function doAnonymousPage(engine: Engine, mm: Mm, vma: Vma, addr: number, write: boolean, order?: number): FaultOutcome {
  if (vma.flags.shared) return 'SIGBUS';
  const page = addr - (addr % PAGE_SIZE);
  const zero = zeroPages(engine);
  if (!write && opsState(engine).policy.useZeroPage && zero.zeroPfn >= 0) {
    const raw = faultEntry(vma, 'pte', zero.zeroPfn, { write: false, special: true });
    return installLeaves(engine, mm, [{ va: page, level: 'pte', raw }]) ? 'ok' : 'OOM';
  }
  let k = anonFaultOrder(engine, mm, vma, addr, order);
  let id = allocFolio(engine, { order: k });
  if (id === null && k > 0) id = allocFolio(engine, { order: (k = 0) });
  if (id === null) return 'OOM';
  const size = PAGE_SIZE * 2 ** k;
  const start = addr - (addr % size);
  const first = engine.folio(id).number;
  const w = vma.flags.write;
  const leaves: Leaf[] = [];
  for (let i = 0; i < 2 ** k; i++) leaves.push({ va: start + i * PAGE_SIZE, level: 'pte', raw: faultEntry(vma, 'pte', first + i, { write: w, dirty: w }) });
  if (!installLeaves(engine, mm, leaves)) {
    opsState(engine).alloc.free(id);
    return 'OOM';
  }
  newAnonRmap(engine, id, vma, start, true);
  return 'ok';
}

/**
 * do_huge_pmd_anonymous_page (§5.4): anon_vma_prepare; a read with use_zero_page maps the huge zero page (HZP,
 * special, read-only); otherwise a new zeroed THP mapped by the PMD, young, dirty + writable if VM_WRITE,
 * new-anon-rmap(exclusive) at the 2 MiB-aligned address. 'fallback' sends the fault to the PTE path.
 */
function doHugePmdAnonymousPage(engine: Engine, mm: Mm, vma: Vma, addr: number, write: boolean): FaultOutcome | 'fallback' {
  const haddr = addr - (addr % (PAGE_SIZE * 2 ** PMD_ORDER));
  engine.rmap.anon.prepare(vma);
  if (!write && opsState(engine).policy.useZeroPage) {
    const huge = zeroPages(engine).hugePfn;
    if (huge < 0) return 'fallback';
    return installLeaves(engine, mm, [{ va: haddr, level: 'pmd', raw: faultEntry(vma, 'pmd', huge, { write: false, special: true }) }]) ? 'ok' : 'fallback';
  }
  const id = allocFolio(engine, { order: PMD_ORDER });
  if (id === null) return 'fallback';
  const w = vma.flags.write;
  if (!installLeaves(engine, mm, [{ va: haddr, level: 'pmd', raw: faultEntry(vma, 'pmd', engine.folio(id).number, { write: w, dirty: w }) }])) {
    opsState(engine).alloc.free(id);
    return 'fallback';
  }
  newAnonRmap(engine, id, vma, haddr, true);
  return 'ok';
}

/** The page-cache folio holding page `index` of `file`, read in (order 0, the file's tag) if absent; null: OOM. */
function pageCacheFolio(engine: Engine, file: number, index: number): FolioId | null {
  const pc = opsState(engine).pageCache;
  const have = pc.lookup(file, index);
  if (have !== undefined && engine.folios.exists(have)) return have;
  const id = allocFolio(engine, { order: 0, file, index });
  if (id === null) return null;
  const tag = pc.fileTag(file, index);
  if (tag !== 0) engine.folios.setTag(id, 0, 1, tag);
  pc.insert(file, index, 1, id);
  return id;
}

/**
 * do_fault (§5.7) on a NONE PTE of a file VMA, page-cache index = linear page index. Read: map the cached page
 * with vm_page_prot (read-only when private). Private write: do_cow_fault, a new anon order-0 copy mapped
 * writable + dirty (the cached page stays unmapped). Shared write: the cached page writable + dirty, folio dirty.
 */
function doFault(engine: Engine, mm: Mm, vma: Vma, addr: number, write: boolean): FaultOutcome {
  const page = addr - (addr % PAGE_SIZE);
  const pgoff = linearPageIndex(vma, page);
  const id = pageCacheFolio(engine, vma.file!, pgoff);
  if (id === null) return 'OOM';
  const f = engine.folio(id);
  const src = engine.page(f.namespace, f.number + (pgoff - f.index))!;
  if (!write || vma.flags.shared) {
    const raw = faultEntry(vma, 'pte', f.number + (pgoff - f.index), write ? { write: true, dirty: true } : {});
    if (!installLeaves(engine, mm, [{ va: page, level: 'pte', raw }])) return 'OOM';
    if (write) engine.folios.setFlags(id, { dirty: true });
    return 'ok';
  }
  if (src.hwpoison) return 'SIGBUS';
  const copy = allocFolio(engine, { order: 0 });
  if (copy === null) return 'OOM';
  if (!installLeaves(engine, mm, [{ va: page, level: 'pte', raw: faultEntry(vma, 'pte', engine.folio(copy).number, { write: true, dirty: true }) }])) {
    opsState(engine).alloc.free(copy);
    return 'OOM';
  }
  newAnonRmap(engine, copy, vma, page, true);
  if (src.tag !== 0) engine.folios.setTag(copy, 0, 1, src.tag);
  return 'ok';
}

/**
 * do_numa_page (§3.3, §5.1): a PN entry in an accessible VMA is rebuilt from vm_page_prot (pfn, dirty,
 * soft-dirty, uffd-wp, special kept), writable if vm_page_prot says so or it may be made writable (private: an
 * AnonExclusive anon page; shared: already dirty; never with uffd-wp). No NUMA migration is modelled.
 */
function doNumaPage(engine: Engine, mm: Mm, vma: Vma, v: LeafView): FaultOutcome {
  const p = v.entry.present!;
  const f = v.folio;
  const may = vma.flags.shared ? p.dirty : f !== undefined && f.anon && engine.folios.anonExclusive(f.id, v.page);
  const write = vmaPageProt(vma).write || (vma.flags.write && !p.uffdWp && may);
  const raw = presentRaw(v.level, v.entry.number!, { ...vmaPageProt(vma), young: true, write, dirty: p.dirty, softDirty: p.softDirty, uffdWp: p.uffdWp, special: p.special, savedDirty: p.savedDirty });
  writeLeaves(engine, mm, [{ va: v.va, level: v.level, raw }]);
  return 'ok';
}

/**
 * §5.5 DX (6.15+): restore a present PTE in place: old (not young), soft-dirty / uffd-wp carried, writable
 * (and dirty if the folio is) when the VMA has VM_WRITE and the page is AnonExclusive without uffd-wp. The
 * entry already counted as a mapping: no rmap change. (Device mirrors are not told here; the device layer
 * drops its own entries.)
 */
function restoreExclusivePte(engine: Engine, mm: Mm, vma: Vma, v: LeafView): FaultOutcome {
  const f = v.folio;
  if (!f) return 'SIGBUS';
  const b = v.entry.bits;
  const w = vma.flags.write && !b.uffdWp && f.anon && engine.folios.anonExclusive(f.id, v.page);
  const raw = presentRaw('pte', v.entry.number!, { ...vmaPageProt(vma), young: false, write: w, dirty: w && f.flags.dirty, softDirty: b.softDirty, uffdWp: b.uffdWp });
  writeLeaves(engine, mm, [{ va: v.va, level: 'pte', raw }]);
  return 'ok';
}

/**
 * §5.5 SWAP: swap-in into a new order-0 anon folio carrying the slot's tag (§12.2), AnonExclusive when the swap
 * PTE had the exclusive bit (new-anon-rmap exclusive, else under the root anon_vma), writable + dirty on a write
 * fault when exclusive, soft-dirty / uffd-wp carried; the slot's count drops. A slot that does not exist is a
 * bad PTE (SIGBUS).
 */
function doSwapIn(engine: Engine, mm: Mm, vma: Vma, v: LeafView, write: boolean): FaultOutcome {
  const swap = opsState(engine).swap;
  const offset = v.entry.swap!.offset;
  if (!swap.has(offset)) return 'SIGBUS';
  const id = allocFolio(engine, { order: 0 });
  if (id === null) return 'OOM';
  const b = v.entry.bits;
  const w = write && b.exclusive;
  const raw = faultEntry(vma, 'pte', engine.folio(id).number, { write: w, dirty: w, softDirty: b.softDirty, uffdWp: b.uffdWp });
  if (!installLeaves(engine, mm, [{ va: v.va, level: 'pte', raw }])) {
    opsState(engine).alloc.free(id);
    return 'OOM';
  }
  newAnonRmap(engine, id, vma, v.va, b.exclusive);
  engine.folios.setFlags(id, { dirty: w });
  const tag = swap.tag(offset);
  if (tag !== 0) engine.folios.setTag(id, 0, 1, tag);
  swap.put(offset);
  return 'ok';
}

/**
 * §5.5 DP-R / DP-W and §5.1 step 2 (PMD DP): a locked device page makes the access wait and retry; otherwise
 * the owning device's migrate_to_ram runs (the caller's `migrateToRam`, or pvmw's minimal one) and the access
 * retries. An error outcome of the callback fails the fault with it.
 */
function deviceFault(engine: Engine, mm: Mm, vma: Vma, addr: number, v: LeafView, opts: FaultOptions): FaultOutcome {
  const f = v.folio;
  if (!f) return 'SIGBUS';
  if (f.flags.locked) return 'retry';
  const r = opts.migrateToRam ? opts.migrateToRam({ engine, mm, vma, addr, folio: f, leaf: v }) : migrateToRam(engine, f);
  return r === 'SIGBUS' || r === 'SIGSEGV' || r === 'OOM' ? r : 'retry';
}

/**
 * A minimal migrate_to_ram (§10.7, §9.4 restore) for device folios without a device model: a system folio of
 * the same order gets the device pages' tags, mapping and index; every DP entry of the device folio that rmap
 * finds becomes a present entry of the new page with its VMA's protection (writable iff DP-W, soft-dirty /
 * uffd-wp carried, not young); pages whose entry was DP-W or AnonExclusive stay AnonExclusive (mig-entry →
 * restore); the device folio is freed once nothing maps it. OOM if no system folio can be had.
 */
export function migrateToRam(engine: Engine, dev: FolioInfo): FaultOutcome {
  const id = allocFolio(engine, { order: dev.order, anonVma: dev.anonVma ?? 0, index: dev.index });
  if (id === null) return 'OOM';
  const base = engine.folio(id).number;
  copyTags(engine, dev, id);
  engine.folios.setFlags(id, { swapbacked: true, dirty: dev.flags.dirty });
  const writes = new Map<Mm, Leaf[]>();
  const exclusive: number[] = [];
  rmapWalk(engine, [dev.id], {
    interface: opsState(engine).policy.walkInterface,
    rmapOne(c, matches) {
      for (const m of matches) {
        const e = viewLeaf(engine, { va: m.address, level: m.level as LeafLevel, raw: m.raw });
        if ((e.kind !== 'DP-R' && e.kind !== 'DP-W') || e.folio?.id !== dev.id) continue;
        const w = e.kind === 'DP-W';
        if (w || engine.folios.anonExclusive(dev.id, e.page)) for (let i = 0; i < leafPages(e.level); i++) exclusive.push(e.page + i);
        const b = e.entry.bits;
        const raw = presentRaw(e.level, base + e.page, { ...vmaPageProt(c.vma), write: w, softDirty: b.softDirty, uffdWp: b.uffdWp });
        if (!writes.has(c.mm)) writes.set(c.mm, []);
        writes.get(c.mm)!.push({ va: e.va, level: e.level, raw });
      }
      return true;
    },
  });
  for (const [mm, leaves] of writes) writeLeaves(engine, mm, leaves);
  for (const p of exclusive) engine.folios.setAnonExclusive(id, p, 1, true);
  if (!putFolio(engine, dev.id) && engine.folio(id).mapcount === 0) opsState(engine).alloc.free(id);
  return 'retry';
}
