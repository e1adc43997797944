import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import type { Mm } from '../model/mm.js';
import { EFAULT, vmaAddress, type Vma } from '../model/vma.js';
import { batchMatchAt, walkBatch, type BatchResult } from '../walk/pvmw.js';
import { PVMW_DEVICE_PRIVATE, type WalkKey, type WalkMatch } from '../walk/types.js';

/**
 * rmap_walk (spec §6.2, §6.3; kernel-operations.md §8.4): find every VMA that may map a folio from its
 * anon_vma's AVC tree, its file's i_mmap tree or its KSM stable node, then run page_vma_mapped_walk for every
 * (folio, VMA) candidate of a whole batch of folios in one WebAssembly call, and hand each candidate's matches
 * to the caller's rmap_one. Candidates come in interval-tree order (D6).
 *
 * The walks of a batch run before any rmap_one acts: an action on one candidate cannot change what another
 * finds, as no two candidates share a page table range (VMAs of one mm never overlap).
 */

/** Which walk interface the callers use (decisions.md D2); every one gives the same matches. */
export type WalkInterface = 'pfn' | 'folio-range' | 'folio-identity';

export interface RmapCandidate {
  folio: FolioId;
  mm: Mm;
  vma: Vma;
  /** vma_address of the folio (or the rmap_item's address for KSM). */
  address: number;
}

export interface RmapWalkControl {
  /** Walk flags (PVMW_SYNC, PVMW_MIGRATION); PVMW_DEVICE_PRIVATE is added for device folios as the series does. */
  flags?: number;
  interface?: WalkInterface;
  /** Skip a VMA (invalid_vma). */
  invalidVma?(vma: Vma, mm: Mm): boolean;
  /** Per candidate, with its walk's matches in address order; false stops the folio's walk (rmap_one). */
  rmapOne?(c: RmapCandidate, matches: WalkMatch[]): boolean;
  /**
   * rmap_one at a lower level, taken instead of rmapOne when given: the candidate's matches are rows
   * [from, to) of the batch result `r` (address order), and no object is made per match.
   */
  rmapOneRows?(c: RmapCandidate, r: BatchResult, from: number, to: number): boolean;
  /** Checked after each rmap_one; true stops the folio's walk (done). */
  done?(folio: FolioId): boolean;
}

/** Candidate VMAs of one folio, in the order rmap_walk visits them. */
export function rmapCandidates(engine: Engine, folio: FolioId): RmapCandidate[] {
  const out: RmapCandidate[] = [];
  forEachCandidate(engine, engine.folio(folio), (mm, vma, address) => out.push({ folio, mm, vma, address }));
  return out;
}

/** The candidates of a folio, in rmap_walk's order, handed to `visit` (mm, VMA, vma_address or the item's). */
function forEachCandidate(engine: Engine, f: FolioInfo, visit: (mm: Mm, vma: Vma, address: number) => void): void {
  if (f.flags.ksm) return ksmCandidates(engine, f, visit);
  const first = f.index;
  const last = f.index + f.nrPages - 1;
  const push = (vma: Vma) => {
    const address = vmaAddress(vma, f.index, f.nrPages);
    if (address !== EFAULT) visit(engine.mm(vma.mm), vma, address);
  };
  if (f.anon) {
    const av = f.anonVma !== null ? engine.rmap.anon.get(f.anonVma) : undefined;
    if (av) for (const avc of engine.rmap.anon.query(av, first, last)) push(avc.vma);
  } else if (f.file !== null) {
    for (const vma of engine.rmap.iMmap.query(f.file, first, last)) push(vma);
  }
}

/** rmap_walk_ksm (kernel-operations.md §8.4): pass 1 over every rmap_item for its own mm's VMAs, pass 2 for forked mms'. */
function ksmCandidates(engine: Engine, f: FolioInfo, visit: (mm: Mm, vma: Vma, address: number) => void): void {
  const node = f.anonVma !== null ? engine.rmap.ksm.get(f.anonVma) : undefined;
  if (!node) return;
  for (const sameMm of [true, false]) {
    for (const item of node.items) {
      for (const avc of item.anonVma.tree.all()) {
        const vma = avc.vma;
        if ((vma.mm === item.mm) !== sameMm) continue;
        if (item.address < vma.start || item.address >= vma.end) continue;
        visit(engine.mm(vma.mm), vma, item.address);
      }
    }
  }
}

/** The walk key of a folio for an interface (DEFINE_FOLIO_VMA_WALK, or the folio-keyed proposal of D2). */
export function folioWalkKey(engine: Engine, f: FolioInfo, flags: number, iface: WalkInterface): WalkKey {
  if (iface !== 'pfn') return { kind: 'folio', folio: f.id, strategy: iface === 'folio-range' ? 'range' : 'identity', flags };
  const dp = f.devicePrivate && engine.settings.semantics === 'series' ? PVMW_DEVICE_PRIVATE : 0;
  const ksm = f.flags.ksm;
  return { kind: 'pfn', number: f.number, nrPages: ksm ? 1 : f.nrPages, pgoff: f.index, flags: flags | dp };
}


/** A candidate and its walk request in one object (the request's key is the folio's). */
type Job = RmapCandidate & { key: WalkKey };

/**
 * rmap_walk for each folio of `folios`: candidates, one batched walk, then rmap_one per candidate with its
 * matches (stopping a folio's walk when rmap_one returns false or done() says so). Returns the number of walks.
 */
export function rmapWalk(engine: Engine, folios: readonly FolioId[], rwc: RmapWalkControl): number {
  const iface = rwc.interface ?? 'pfn';
  if (iface !== 'pfn' && iface !== 'folio-range' && iface !== 'folio-identity') {
    throw new PvmwError('BAD_SETTING', `walk interface must be pfn, folio-range or folio-identity, got ${JSON.stringify(iface)}`);
  }
  const rows = rwc.rmapOneRows;
  const one = rwc.rmapOne;
  if (!rows && !one) throw new PvmwError('BAD_SETTING', 'rmap_walk needs rmapOne or rmapOneRows');
  const jobs: Job[] = [];
  for (const id of folios) {
    const f = engine.folio(id);
    const key = folioWalkKey(engine, f, rwc.flags ?? 0, iface);
    const from = jobs.length;
    forEachCandidate(engine, f, (mm, vma, address) => jobs.push({ folio: id, mm, vma, address, key }));
    if (rwc.invalidVma) {
      // invalid_vma is asked once the folio's candidates are all found, in their order.
      let to = from;
      for (let j = from; j < jobs.length; j++) if (!rwc.invalidVma(jobs[j].vma, jobs[j].mm)) jobs[to++] = jobs[j];
      jobs.length = to;
    }
  }
  if (jobs.length === 0) return 0;
  const r = walkBatch(engine, jobs);
  // Each job's matches are the rows [start[j], start[j + 1]).
  const start = new Uint32Array(jobs.length + 1);
  for (let i = 0; i < r.matches; i++) {
    if (i > 0 && r.job[i] < r.job[i - 1]) throw new PvmwError('INTERNAL', `match ${i} of job ${r.job[i]} comes after job ${r.job[i - 1]}`);
    start[r.job[i] + 1]++;
  }
  for (let j = 0; j < jobs.length; j++) start[j + 1] += start[j];
  let stopped = -1;
  for (let j = 0; j < jobs.length; j++) {
    const c = jobs[j];
    if (c.folio === stopped) continue;
    const go = rows ? rows(c, r, start[j], start[j + 1]) : one!(c, matchesOf(r, start[j], start[j + 1]));
    if (!go || rwc.done?.(c.folio)) stopped = c.folio;
  }
  return jobs.length;
}

/** Rows [from, to) of a batch result as WalkMatch objects. */
function matchesOf(r: BatchResult, from: number, to: number): WalkMatch[] {
  const out: WalkMatch[] = [];
  for (let i = from; i < to; i++) out.push(batchMatchAt(r, i));
  return out;
}
