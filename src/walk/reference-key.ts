import { PvmwError, hex } from '../errors.js';
import type { Namespace } from '../model/decode.js';
import type { Engine } from '../model/engine.js';
import type { Mm } from '../model/mm.js';
import { PGOFF_LIMIT, type Vma } from '../model/vma.js';
import { PAGE_SIZE } from '../model/geometry.js';
import {
  PVMW_DEVICE_PRIVATE,
  PVMW_INPUT_FLAGS,
  type Injection,
  type InjectionChange,
  type InjectionPoint,
  type WalkCounters,
  type WalkKey,
} from './types.js';

/**
 * The TypeScript reference walk, part 1: what a walk looks for. Turns a WalkKey into the walk state's inputs
 * (pgoff, nr_pages, flags: spec §1.1) and a matcher that decides whether one candidate entry's range is the
 * range looked for (the last steps of check_pte / check_pmd, spec §1.4; decisions.md D2, D3). Also the input
 * checks of the reference walk and the D4 injection bookkeeping. Written for clarity, not speed; it shares no
 * code with the WebAssembly walk.
 */

/**
 * One candidate entry as check_pte / check_pmd see it after the kind filter (spec §1.4 steps 1–4): the first
 * number it names, in which namespace (decodeEntry's namespace: §4.4, D1), how many base pages it maps
 * (pte_nr: 1, 512 for a PMD, the huge page size for hugetlb), and whether it is device-private in the
 * series' sense (§1.4 step 5: device-private read/write and the migration-device-private kinds; device-
 * exclusive entries are not).
 */
export interface Candidate {
  namespace: Namespace;
  number: number;
  pages: number;
  devicePrivate: boolean;
}

/** The range test of a walk: true iff the candidate is (part of) what the walk looks for. */
export type Matcher = (c: Candidate, counters: WalkCounters) => boolean;

/** The walk state's inputs derived from a key (spec §1.1 pfn/nr_pages/pgoff/flags, D2). */
export interface ResolvedKey {
  /** pvmw->pgoff: the page offset of the first page looked for (used for vma_address and vma_address_end). */
  pgoff: number;
  /** pvmw->nr_pages. */
  nrPages: number;
  /** pvmw->flags as given (input flags only). */
  flags: number;
  matcher: Matcher;
}

/** Do [a, a + na − 1] and [b, b + nb − 1] share a page? (check_pte step 6 / check_pmd: two comparisons.) */
export function rangesOverlap(a: number, na: number, b: number, nb: number): boolean {
  return a <= b + nb - 1 && b <= a + na - 1;
}

function isWhole(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x);
}

/** Input flags: a whole number whose bits are all PVMW_INPUT_FLAGS (spec §1.2); else BAD_SETTING naming the bit. */
function checkFlags(flags: unknown): number {
  if (!isWhole(flags) || flags < 0 || flags >= 2 ** 32) {
    throw new PvmwError('BAD_SETTING', `walk flags must be a whole number of 32 bits, got ${JSON.stringify(flags)}`);
  }
  for (let bit = 0; bit < 32; bit++) {
    const value = 2 ** bit;
    if (Math.floor(flags / value) % 2 === 1 && (PVMW_INPUT_FLAGS & value) === 0) {
      throw new PvmwError(
        'BAD_SETTING',
        `walk flag bit ${hex(value)} is not an input flag (PVMW_SYNC 0x1, PVMW_MIGRATION 0x2, PVMW_DEVICE_PRIVATE 0x4)`,
      );
    }
  }
  return flags;
}

function checkPgoffRange(pgoff: unknown, nrPages: unknown): void {
  if (!isWhole(nrPages) || nrPages < 1) {
    throw new PvmwError('BAD_RANGE', `nrPages must be a whole number ≥ 1, got ${JSON.stringify(nrPages)}`);
  }
  if (!isWhole(pgoff) || pgoff < 0) {
    throw new PvmwError('BAD_RANGE', `pgoff must be a non-negative whole number, got ${JSON.stringify(pgoff)}`);
  }
  if (pgoff + nrPages >= PGOFF_LIMIT) {
    throw new PvmwError('BAD_RANGE', `page offsets [${hex(pgoff)}, ${hex(pgoff + nrPages)}) reach ${hex(PGOFF_LIMIT)}`);
  }
}

/**
 * The pfn-keyed walk's range test (spec §1.4 check_pte steps 5–6, check_pmd; D1, D3): the numbers must
 * overlap; with `series` semantics the candidate's device-private-ness must also equal PVMW_DEVICE_PRIVATE
 * (at the PMD level too: D3). `newest` and `v6.14` do not know namespaces: an offset equal to a pfn aliases
 * it (the D1 newest × offset hazard).
 */
function pfnMatcher(first: number, nrPages: number, series: boolean, devicePrivateFlag: boolean): Matcher {
  return (c) => {
    if (series && c.devicePrivate !== devicePrivateFlag) return false; // §1.4 step 5 (SERIES), D3
    return rangesOverlap(c.number, c.pages, first, nrPages); // §1.4 step 6 / check_pmd
  };
}

/**
 * The folio-keyed walk, `range` strategy (D2): (namespace, first number, nr_pages) derived from the folio once;
 * each candidate must be in the same namespace and overlap.
 */
function folioRangeMatcher(namespace: Namespace, first: number, nrPages: number): Matcher {
  return (c) => c.namespace === namespace && rangesOverlap(c.number, c.pages, first, nrPages);
}

/**
 * The folio-keyed walk, `identity` strategy (D2): resolve the candidate's first page to its folio with a
 * memmap lookup (one counted lookup per candidate examined, whether or not it finds a folio) and compare folio
 * ids; with a page given, the candidate's pages must also contain that page. A number outside memory or in
 * no folio matches nothing.
 */
function folioIdentityMatcher(engine: Engine, folio: number, page: number | undefined): Matcher {
  return (c, counters) => {
    counters.memmapLookups++;
    if (!engine.memory.rangeOf(c.namespace, c.number)) return false;
    const found = engine.page(c.namespace, c.number);
    if (!found || found.folio !== folio) return false;
    if (page === undefined) return true;
    return found.page <= page && page <= found.page + c.pages - 1;
  };
}

/**
 * Check a key and derive the walk's inputs (spec §1.1, §1.3 DEFINE_FOLIO_VMA_WALK / manual initialisation;
 * D2). Errors (PvmwError, nothing changed): BAD_SETTING for an unknown key kind or strategy, a flag bit outside
 * PVMW_INPUT_FLAGS, PVMW_DEVICE_PRIVATE on a non-series engine or on a folio key, and a folio key on a
 * `newest`/`v6.14` engine in the `offset` device model (D2: entries there do not say their namespace);
 * BAD_RANGE for a bad number, pgoff or nrPages, or a page index outside the folio; NO_FOLIO for a folio
 * that does not exist.
 */
export function resolveKey(engine: Engine, key: WalkKey): ResolvedKey {
  if (typeof key !== 'object' || key === null || (key.kind !== 'pfn' && key.kind !== 'folio')) {
    throw new PvmwError('BAD_SETTING', `walk key kind must be "pfn" or "folio", got ${JSON.stringify((key as { kind?: unknown } | null)?.kind)}`);
  }
  const flags = checkFlags(key.flags);
  const { semantics, deviceModel } = engine.settings;
  const devicePrivateFlag = (flags & PVMW_DEVICE_PRIVATE) !== 0;

  if (key.kind === 'pfn') {
    if (devicePrivateFlag && semantics !== 'series') {
      throw new PvmwError('BAD_SETTING', `PVMW_DEVICE_PRIVATE (0x4) exists only with series semantics; this engine simulates ${semantics}`);
    }
    if (!isWhole(key.number) || key.number < 0) {
      throw new PvmwError('BAD_RANGE', `the key's number must be a non-negative whole number, got ${JSON.stringify(key.number)}`);
    }
    checkPgoffRange(key.pgoff, key.nrPages);
    return {
      pgoff: key.pgoff,
      nrPages: key.nrPages,
      flags,
      matcher: pfnMatcher(key.number, key.nrPages, semantics === 'series', devicePrivateFlag),
    };
  }

  // Folio key (D2): the walk holds the folio (and page), no pfn.
  if (key.strategy !== 'range' && key.strategy !== 'identity') {
    throw new PvmwError('BAD_SETTING', `folio walk strategy must be "range" or "identity", got ${JSON.stringify(key.strategy)}`);
  }
  if (devicePrivateFlag) {
    throw new PvmwError('BAD_SETTING', 'PVMW_DEVICE_PRIVATE (0x4) is not accepted with a folio key: the folio says whether it is device-private');
  }
  if (semantics !== 'series' && deviceModel === 'offset') {
    throw new PvmwError(
      'BAD_SETTING',
      `a folio-keyed walk needs entries that carry their namespace: ${semantics} semantics in the offset device model cannot tell a device-private offset from an equal pfn (D2); use series semantics or the pfn device model`,
    );
  }
  const f = engine.folio(key.folio); // NO_FOLIO if there is none
  let pgoff = f.index;
  let nrPages = f.nrPages;
  let first = f.number;
  if (key.page !== undefined) {
    if (!isWhole(key.page) || key.page < 0 || key.page >= f.nrPages) {
      throw new PvmwError('BAD_RANGE', `page ${JSON.stringify(key.page)} is not inside folio ${hex(f.id)} of ${f.nrPages} pages`);
    }
    // D2: the page_mapped_in_vma case, nr_pages = 1 at the page's own offset.
    pgoff = f.index + key.page;
    nrPages = 1;
    first = f.number + key.page;
  }
  checkPgoffRange(pgoff, nrPages);
  return {
    pgoff,
    nrPages,
    flags,
    matcher: key.strategy === 'range' ? folioRangeMatcher(f.namespace, first, nrPages) : folioIdentityMatcher(engine, f.id, key.page),
  };
}

/** The VMA must be one of mm's VMAs (NO_VMA). */
export function checkVma(mm: Mm, vma: Vma): void {
  if (typeof vma !== 'object' || vma === null || mm.vmas.byId(vma.id) !== vma) {
    throw new PvmwError('NO_VMA', `the VMA ${vma && typeof vma === 'object' ? `${hex(vma.start)}-${hex(vma.end)} (id ${vma.id})` : JSON.stringify(vma)} is not a VMA of mm ${mm.id}`);
  }
}

/** An explicit start address must be page aligned and inside the VMA (BAD_ADDRESS). */
export function checkStartAddress(vma: Vma, address: unknown): number {
  if (typeof address !== 'number' || !Number.isInteger(address) || address < 0) {
    throw new PvmwError('BAD_ADDRESS', `walk address ${String(address)} is not a non-negative whole number`);
  }
  const a = address;
  if (a % PAGE_SIZE !== 0) throw new PvmwError('BAD_ADDRESS', `walk address ${hex(a)} is not page aligned`);
  if (a < vma.start || a >= vma.end) {
    throw new PvmwError('BAD_ADDRESS', `walk address ${hex(a)} is outside the VMA ${hex(vma.start)}-${hex(vma.end)}`);
  }
  return a;
}

// ---- D4 injections ---------------------------------------------------------------------------------------

/** The Mm methods the D4 changes are made with. */
interface RaceHooks {
  splitPmd?: (addr: number) => void;
  freePteTable?: (addr: number) => void;
  replacePteTable?: (addr: number) => void;
}

const CHANGES_AT: Record<InjectionPoint, readonly InjectionChange[]> = {
  'pmd-huge-read': ['split-pmd'],
  'pmd-device-read': ['split-pmd'],
  'map-pte': ['free-pte-table', 'replace-pte-table'],
  'map-pte-lock': ['free-pte-table', 'replace-pte-table'],
  'next-pte-lock': ['free-pte-table', 'replace-pte-table'],
};

const METHOD_OF: Record<InjectionChange, keyof RaceHooks> = {
  'split-pmd': 'splitPmd',
  'free-pte-table': 'freePteTable',
  'replace-pte-table': 'replacePteTable',
};

/**
 * D4: the concurrent changes of one walk. Each point counts its arrivals from 1; an injection is applied
 * (once) at the arrival equal to its nth, through the Mm, before the walk's locked re-read that follows.
 */
export class Injector {
  private readonly list: { point: InjectionPoint; change: InjectionChange; nth: number }[];
  private readonly arrivals = new Map<InjectionPoint, number>();

  /** Check the injections (BAD_SETTING for an unknown point or change, a change the point does not take,
   *  a bad nth, or a change the Mm cannot make). */
  constructor(
    private readonly mm: Mm,
    injections: readonly Injection[] | undefined,
  ) {
    if (injections !== undefined && !Array.isArray(injections)) {
      throw new PvmwError('BAD_SETTING', `inject must be an array of injections, got ${JSON.stringify(injections)}`);
    }
    this.list = (injections ?? []).map((given: unknown, i) => {
      const inj = given as Injection;
      if (typeof given !== 'object' || given === null || !Object.hasOwn(CHANGES_AT, inj.point)) {
        throw new PvmwError('BAD_SETTING', `injection ${i}: point must be one of ${Object.keys(CHANGES_AT).join(', ')}, got ${JSON.stringify((given as Injection | null)?.point)}`);
      }
      if (!CHANGES_AT[inj.point].includes(inj.change)) {
        throw new PvmwError('BAD_SETTING', `injection ${i}: point ${inj.point} takes ${CHANGES_AT[inj.point].join(' or ')}, not ${JSON.stringify(inj.change)}`);
      }
      const nth = inj.nth ?? 1;
      if (!isWhole(nth) || nth < 1) {
        throw new PvmwError('BAD_SETTING', `injection ${i}: nth must be a whole number ≥ 1, got ${JSON.stringify(inj.nth)}`);
      }
      const method = METHOD_OF[inj.change];
      if (typeof (mm as unknown as RaceHooks)[method] !== 'function') {
        throw new PvmwError('BAD_SETTING', `injection ${i}: this Mm has no ${method}() to make the change ${inj.change}`);
      }
      return { point: inj.point, change: inj.change, nth };
    });
  }

  /** The walk reached `point` while looking at `address`: apply the injections due now. */
  arrive(point: InjectionPoint, address: number): void {
    if (this.list.length === 0) return;
    const n = (this.arrivals.get(point) ?? 0) + 1;
    this.arrivals.set(point, n);
    for (const inj of this.list) {
      if (inj.point === point && inj.nth === n) {
        const hooks = this.mm as unknown as Required<RaceHooks>;
        hooks[METHOD_OF[inj.change]].call(this.mm, address);
      }
    }
  }
}
