import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { Mm } from '../model/mm.js';
import { EFAULT, vmaAddress, type Vma } from '../model/vma.js';
import { Injector, checkStartAddress, checkVma, resolveKey } from './reference-key.js';
import { ReferenceWalk, zeroCounters } from './reference-steps.js';
import { PVMW_DEVICE_PRIVATE, PVMW_SYNC, type Injection, type WalkCounters, type WalkKey, type WalkMatch, type WalkResult } from './types.js';

/**
 * The TypeScript REFERENCE page_vma_mapped_walk (spec §1.1–§1.6, decisions.md D1–D4): the plain, step-for-step
 * reading of the spec that the WebAssembly walk (assembly/walk.ts) is compared with. It shares no walk code with
 * it. Files: reference.ts (this API), reference-steps.ts (the walk state, the §1.4 helpers and the §1.5
 * algorithm), reference-key.ts (keys, matchers, input checks, D4 injections).
 */

/** Options of a reference walk: an explicit start address (else vma_address) and D4 injections. */
export interface ReferenceWalkOptions {
  address?: number;
  inject?: Injection[];
}

/**
 * The whole walk loop (decisions.md Terms "walk"): call page_vma_mapped_walk until it returns false, collecting
 * every true return as a WalkMatch. The caller does nothing else between calls (D2 / §1.4: the walk releases
 * and moves the lock itself). Start address: opts.address, else vma_address(vma, pgoff, nr_pages) of the key;
 * -EFAULT → no walk ({matches: [], start: null}).
 * Errors (PvmwError, engine unchanged): NO_VMA (the VMA is not one of mm's), BAD_SETTING / BAD_RANGE /
 * NO_FOLIO for the key (reference-key.ts resolveKey), BAD_ADDRESS for an explicit address that is not page
 * aligned or not inside the VMA, BAD_SETTING for a bad injection.
 */
export function referenceWalk(engine: Engine, mm: Mm, vma: Vma, key: WalkKey, opts: ReferenceWalkOptions = {}): WalkResult {
  const walk = openReferenceWalk(engine, mm, vma, key, opts);
  const matches: WalkMatch[] = [];
  for (let m = walk.next(); m !== null; m = walk.next()) matches.push(m);
  return { matches, counters: walk.counters, start: walk.start };
}

/** A reference walk driven one call at a time, for callers that act between matches (see pvmw.ts openWalk). */
export interface ReferenceWalker {
  /** The next true return, or null when the walk returned false. */
  next(): WalkMatch | null;
  /** page_vma_mapped_walk_restart. */
  restart(): void;
  /** page_vma_mapped_walk_done. */
  done(): void;
  readonly counters: WalkCounters;
  readonly start: number | null;
}

export function openReferenceWalk(engine: Engine, mm: Mm, vma: Vma, key: WalkKey, opts: ReferenceWalkOptions = {}): ReferenceWalker {
  checkVma(mm, vma);
  const k = resolveKey(engine, key);
  const explicit = opts.address !== undefined ? checkStartAddress(vma, opts.address) : null;
  const injector = new Injector(mm, opts.inject);
  const counters = zeroCounters(engine.geometry);
  const start = explicit ?? vmaAddress(vma, k.pgoff, k.nrPages);
  if (start === EFAULT) return { next: () => null, restart: () => {}, done: () => {}, counters, start: null };
  const walk = new ReferenceWalk(engine, mm, vma, k, start, injector, counters);
  return { next: () => (walk.step() ? walk.match() : null), restart: () => walk.restart(), done: () => walk.done(), counters, start };
}

/**
 * page_mapped_in_vma (spec §1.6): is this one page mapped in the VMA? Returns its address, or EFAULT.
 * The key names the page: a pfn key with nrPages 1 (its pgoff = page_pgoff; with series semantics its
 * PVMW_DEVICE_PRIVATE flag is kept, as page_vma_walk_flags would set it), or a folio key with a page (default:
 * the first page). Other flags of the key are replaced by PVMW_SYNC (step 1).
 */
export function referencePageMappedInVma(engine: Engine, mm: Mm, vma: Vma, key: WalkKey): number {
  checkVma(mm, vma);
  resolveKey(engine, key); // check the key as given
  let one: WalkKey;
  if (key.kind === 'pfn') {
    if (key.nrPages !== 1) {
      throw new PvmwError('BAD_RANGE', `page_mapped_in_vma looks at one page: nrPages must be 1, got ${JSON.stringify(key.nrPages)}`);
    }
    one = { ...key, flags: PVMW_SYNC | (key.flags & PVMW_DEVICE_PRIVATE) };
  } else {
    one = { ...key, page: key.page ?? 0, flags: PVMW_SYNC };
  }
  // §1.6 step 1: walk for exactly one page with PVMW_SYNC.
  const k = resolveKey(engine, one);
  // §1.6 step 2: address = vma_address(vma, page_pgoff, 1).
  const address = vmaAddress(vma, k.pgoff, 1);
  if (address === EFAULT) return EFAULT;
  // §1.6 step 3: one call; false → EFAULT, else done and the address.
  const walk = new ReferenceWalk(engine, mm, vma, k, address, new Injector(mm, undefined), zeroCounters(engine.geometry));
  if (!walk.step()) return EFAULT;
  walk.done();
  return walk.state.address;
}
