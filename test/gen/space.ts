// A deterministic random address-space generator for the walk's differential property tests (issue 3 item 4):
// several mms (some forked, so anon folios are shared at the same addresses), hundreds of VMAs (anon, file
// shared across mms with matching pgoffs, hugetlb 2M and 1G, THP-enabled, PFNMAP-like special mappings),
// thousands of folios of every order 0 … 9 plus hugetlb 2M/1G and device-private folios (order 0 and 9), and
// every entry kind of spec §2 — plus the walk requests (cases) that exercise each row.
//
// Everything map() installs is what rmap can find again (kernel-operations.md §0.3): anon folios in the anon
// VMAs of their anon_vma at index = linear page index, file folios in VMAs of their file at the matching pgoff.
// The same options always build the same engine: the only randomness is the seeded Rng below.
import {
  Engine, EFAULT, PMD_SIZE, PUD_SIZE, linearPageIndex, thpVmaSuitableOrder, vmaAddress,
  type EntrySpec, type FolioId, type Mm, type Namespace, type Vma, type VmaFlags, type MemoryRange,
} from '../../src/index.js';
import { PVMW_DEVICE_PRIVATE, PVMW_MIGRATION, PVMW_SYNC, type WalkKey } from '../../src/walk/types.js';
import { Rng } from './rng.js';

export interface SpaceOptions {
  seed: number;
  paging: 4 | 5;
  deviceModel: 'pfn' | 'offset';
  semantics: 'newest' | 'series' | 'v6.14';
  scale?: 'small' | 'large';
}

export interface WalkCase {
  mm: Mm;
  vma: Vma;
  key: WalkKey;
  address?: number;
  /** Which §2 row this case is meant to exercise ('present-pte/mthp', 'migration-pmd/write', 'none', …). */
  row: string;
}

export interface Space {
  engine: Engine;
  mms: Mm[];
  folios: FolioId[];
  cases: WalkCase[];
  /** Entries installed per kind ('pte:present', 'hugetlb-pud:migration-read', …) and shapes ('shape:…'). */
  counts: Record<string, number>;
  /** Device-private folios created at an offset (offset model) equal to the pfn of a mapped RAM folio, each
   *  mapped at the address where rmap looks for that RAM folio in another mm of the same fork family. */
  aliases: { ram: FolioId; device: FolioId }[];
  /** Sizes: mms, vmas, folios, cases, aliases, tables, folios per order. */
  summary: Record<string, number>;
  /** The VMAs rmap_walk visits for a folio of this space (its anon_vma's or its file's VMAs, in every mm), where
   *  vma_address(vma, folio.index, nr_pages) is not -EFAULT. Cases come in these pairs: every pair of a
   *  folio that has cases is there. */
  rmap(folio: FolioId): { mm: Mm; vma: Vma }[];
}

// ---- constants -----------------------------------------------------------------------------------------

const P = 4096;
const PMD_PAGES = 512;
const PUD_PAGES = 2 ** 18;
const TB = 2 ** 40;
/** The zero page: special present entries name it (no folio). */
const ZERO_PFN = 0x10;
/** RAM pfns for RAM folios with a device-private twin at the same offset (the aliasing case). Device offsets
 *  below ALIAS_END are used only by those twins. */
const ALIAS_START = 0x100;
const ALIAS_END = 0x8000;
/** RAM pfns without folios, mapped by PFNMAP-like VMAs with special entries. */
const PFNMAP_START = 0x8000;
const PFNMAP_END = 0x10000;
/** Everything else in RAM comes from here up to the 1G hugetlb slots at the top. */
const MAIN_START = 0x10000;

const F4 = [0, PVMW_SYNC, PVMW_MIGRATION, PVMW_SYNC | PVMW_MIGRATION] as const;

/** Which entry kinds (count keys) a space of these options must contain: every row of spec §2. */
export function requiredKinds(o: Pick<SpaceOptions, 'semantics' | 'deviceModel'>): string[] {
  const k = [
    'pte:present', 'pte:present-protnone', 'pte:present-special',
    'pte:migration-read', 'pte:migration-read-exclusive', 'pte:migration-write',
    'pte:device-private-read', 'pte:device-private-write', 'pte:device-exclusive',
    'pte:swap', 'pte:hwpoison', 'pte:marker-uffd-wp', 'pte:marker-poisoned', 'pte:marker-guard',
    'pmd:present', 'pmd:present-protnone',
    'pmd:migration-read', 'pmd:migration-read-exclusive', 'pmd:migration-write',
    'pmd:device-private-read', 'pmd:device-private-write',
    'hugetlb-pmd:present', 'hugetlb-pmd:migration-read', 'hugetlb-pmd:migration-read-exclusive', 'hugetlb-pmd:migration-write',
    'hugetlb-pmd:hwpoison', 'hugetlb-pmd:marker-uffd-wp',
    'hugetlb-pud:present', 'hugetlb-pud:migration-read',
    'shape:order0', 'shape:mthp', 'shape:pte-mapped-thp', 'shape:partial', 'shape:cross-pmd', 'shape:mixed',
    'shape:shared-anon', 'shape:shared-file', 'shape:cow', 'shape:migration-young', 'shape:migration-dirty',
    'shape:zero-page', 'shape:pfnmap', 'shape:alias-pair', 'shape:file-misaligned',
  ];
  if (o.semantics === 'series') {
    for (const lvl of ['pte', 'pmd']) {
      for (const m of ['read', 'read-exclusive', 'write']) k.push(`${lvl}:migration-device-private-${m}`);
    }
  } else if (o.deviceModel === 'pfn') {
    // Without the series, a device folio under migration has ordinary migration entries naming its pfn.
    k.push('shape:migration-of-device-folio');
  }
  return k;
}

/** The semantics/device-model combinations where the folio-keyed walk refuses (D2). */
export function folioKeysAllowed(o: Pick<SpaceOptions, 'semantics' | 'deviceModel'>): boolean {
  return o.semantics === 'series' || o.deviceModel === 'pfn';
}

// ---- scale ---------------------------------------------------------------------------------------------

interface Scale {
  /** Parent mm index of each mm (-1: a root). Children are forks: they share the VMAs of their ancestors. */
  parents: number[];
  anonPerWindow: number;
  files: number;
  fileVmas: [number, number];
  fileSizes: number[];
  hugetlbFiles: number;
  pfnmaps: number;
  ramPages: number;
  deviceChunks: number;
  rawRanges: number;
  /** Share of order-0 and of order 1 … 8 folios that get cases (larger, device, hugetlb and alias folios all do). */
  sample0: number;
  sampleMid: number;
}

const SCALES: Record<'small' | 'large', Scale> = {
  large: {
    parents: [-1, 0, 0, 1, -1, 4, -1],
    anonPerWindow: 16,
    files: 14,
    fileVmas: [2, 4],
    fileSizes: [64, 300, 512, 1536, 2048, 4096, 6144],
    hugetlbFiles: 4,
    pfnmaps: 3,
    ramPages: 2 ** 22,
    deviceChunks: 2,
    rawRanges: 400,
    sample0: 0.02,
    sampleMid: 0.15,
  },
  small: {
    parents: [-1, 0, -1],
    anonPerWindow: 4,
    files: 3,
    fileVmas: [2, 3],
    fileSizes: [64, 300, 512, 1024],
    hugetlbFiles: 1,
    pfnmaps: 1,
    ramPages: 2 ** 21,
    deviceChunks: 1,
    rawRanges: 40,
    sample0: 0.04,
    sampleMid: 0.15,
  },
};

// ---- internal model ------------------------------------------------------------------------------------

/** How one folio (or run of folios) appears at its rmap address in one mm. */
type Form =
  | 'none' | 'present' | 'protnone' | 'partial' | 'zero' | 'mixed'
  | 'mig-r' | 'mig-rx' | 'mig-w' | 'devx' | 'swap' | 'hwpoison' | 'mk-uffd' | 'mk-poison' | 'mk-guard'
  | 'pmd-present' | 'pmd-protnone' | 'pmd-mig-r' | 'pmd-mig-rx' | 'pmd-mig-w'
  | 'dev-r' | 'dev-w' | 'devmig-r' | 'devmig-rx' | 'devmig-w' | 'dev-mixed'
  | 'pmd-dev-r' | 'pmd-dev-w' | 'pmd-devmig-r' | 'pmd-devmig-rx' | 'pmd-devmig-w'
  | 'h-present' | 'h-mig-r' | 'h-mig-rx' | 'h-mig-w' | 'h-hwpoison' | 'h-marker';

type W = readonly (readonly [Form, number])[];
const RAM_PTE: W = [
  ['present', 30], ['protnone', 4], ['partial', 6], ['mig-r', 4], ['mig-rx', 3], ['mig-w', 4], ['devx', 3],
  ['swap', 4], ['hwpoison', 2], ['mk-uffd', 2], ['mk-poison', 1], ['mk-guard', 2], ['zero', 2], ['mixed', 5], ['none', 6],
];
const RAM_PMD: W = [['pmd-present', 30], ['pmd-protnone', 4], ['pmd-mig-r', 4], ['pmd-mig-rx', 3], ['pmd-mig-w', 4]];
const FILE_PTE: W = [
  ['present', 30], ['protnone', 3], ['partial', 6], ['mig-r', 4], ['mig-w', 3], ['hwpoison', 1], ['mk-uffd', 2], ['mixed', 4], ['none', 8],
];
const DEV_PTE: W = [['dev-r', 10], ['dev-w', 10], ['devmig-r', 3], ['devmig-rx', 3], ['devmig-w', 3], ['dev-mixed', 3], ['none', 3]];
const DEV_PMD: W = [['pmd-dev-r', 8], ['pmd-dev-w', 8], ['pmd-devmig-r', 3], ['pmd-devmig-rx', 3], ['pmd-devmig-w', 3]];
const HUGE: W = [['h-present', 20], ['h-mig-r', 3], ['h-mig-rx', 2], ['h-mig-w', 3], ['h-hwpoison', 1], ['h-marker', 1], ['none', 4]];

const isPmdForm = (f: Form) => f.startsWith('pmd-');
const isDevMig = (f: Form) => f.startsWith('devmig-') || f.startsWith('pmd-devmig-');

interface FolioRec {
  id: FolioId;
  ns: Namespace;
  number: number;
  order: number;
  nr: number;
  index: number;
  /** rmap group: 'a<anon_vma>' or 'f<file>'. */
  group: string;
  device: boolean;
  hugetlb: boolean;
  alias: boolean;
  /** Made by the catalog: always gets cases. */
  pinned: boolean;
  /** `${mm.id}:${vma.id}` → the row this folio's entries there exercise (absent: none). */
  rows: Map<string, string>;
}

/** Folios created back to back: consecutive numbers and consecutive indexes. */
interface Unit {
  recs: FolioRec[];
  ns: Namespace;
  number: number;
  index: number;
  order: number;
  pages: number;
  device: boolean;
  hugetlb: '2M' | '1G' | null;
  /** Placed across a PMD boundary on purpose. */
  cross?: boolean;
}

interface Window {
  /** The mm whose VMAs these are; members = it and its descendants (forked after the VMAs were made). */
  creator: number;
  members: number[];
  cursor: number;
  high: number;
}

/** One VMA as it exists in every member mm of a window (same start, end, pgoff). */
interface Region {
  window: Window;
  members: number[];
  vmas: Map<number, Vma>;
  start: number;
  pages: number;
  thp: boolean;
  hugetlb: '2M' | '1G' | null;
  file: number | null;
}

interface MappedPiece {
  u: Unit;
  m: number;
  vma: Vma;
  lo: number;
  hi: number;
}

type Tpl = 'small' | 'mthp' | 'thp' | 'cross' | 'dev' | 'devthp' | 'alias' | 'swaprun' | 'markerrun';

class Chooser {
  private readonly used = new Set<Form>();
  constructor(
    private readonly rng: Rng,
    private readonly weights: W,
  ) {}

  /** Each allowed form once first (in list order), then weighted at random. */
  pick(ok: (f: Form) => boolean): Form {
    for (const [f] of this.weights) {
      if (!this.used.has(f) && ok(f)) {
        this.used.add(f);
        return f;
      }
    }
    const allowed = this.weights.filter(([f]) => ok(f));
    if (allowed.length === 0) return 'none';
    return this.rng.weighted(allowed);
  }
}

class Bump {
  constructor(
    private cur: number,
    private readonly end: number,
    private readonly what: string,
  ) {}

  fits(pages: number, align: number): boolean {
    return Math.ceil(this.cur / align) * align + pages <= this.end;
  }

  alloc(pages: number, align: number): number {
    const at = Math.ceil(this.cur / align) * align;
    if (at + pages > this.end) throw new Error(`space generator: ${this.what} pool exhausted`);
    this.cur = at + pages;
    return at;
  }
}

const alignUp = (x: number, a: number) => Math.ceil(x / a) * a;

// ---- the generator -------------------------------------------------------------------------------------

class Gen {
  readonly rng: Rng;
  readonly s: Scale;
  readonly e: Engine;
  readonly mms: Mm[] = [];
  readonly recs: FolioRec[] = [];
  readonly counts: Record<string, number> = {};
  readonly groups = new Map<string, { mm: Mm; vma: Vma; m: number }[]>();
  readonly windows: Window[] = [];
  readonly mapped: MappedPiece[] = [];
  readonly zeroes: { m: number; vma: Vma; addr: number }[] = [];
  readonly pfnmaps: { m: number; vma: Vma; base: number; pages: number }[] = [];
  readonly aliases: { ram: FolioRec; dev: FolioRec }[] = [];
  readonly cases: WalkCase[] = [];
  private readonly series: boolean;
  private readonly devMigOk: boolean;
  private readonly ram: Bump;
  private readonly low: Bump;
  private readonly pfnmapPool: Bump;
  private readonly dev: Bump;
  private readonly chunks: MemoryRange[] = [];
  private readonly giantSlots: number[] = [];
  private readonly ch: Record<string, Chooser>;
  private readonly anonGroups = new Map<string, string>();
  private nextAnonVma = 1;
  private pinning = false;
  private nextFile = 1;
  units = 0;

  constructor(readonly o: SpaceOptions) {
    this.rng = new Rng(o.seed);
    this.s = SCALES[o.scale ?? 'large'];
    this.series = o.semantics === 'series';
    this.devMigOk = this.series || o.deviceModel === 'pfn';
    this.e = new Engine({ paging: o.paging, semantics: o.semantics, deviceModel: o.deviceModel, ramPages: this.s.ramPages });
    for (let k = 0; k < this.s.deviceChunks; k++) this.chunks.push(this.e.addDeviceMemory());
    const giants = 3;
    for (let k = 1; k <= giants; k++) this.giantSlots.push(this.s.ramPages - k * PUD_PAGES);
    this.ram = new Bump(MAIN_START, this.s.ramPages - giants * PUD_PAGES, 'RAM');
    this.low = new Bump(ALIAS_START, ALIAS_END, 'alias RAM');
    this.pfnmapPool = new Bump(PFNMAP_START, PFNMAP_END, 'PFNMAP');
    this.dev = new Bump(ALIAS_END, this.s.deviceChunks * this.e.settings.deviceChunkPages, 'device');
    const c = (w: W) => new Chooser(this.rng, w);
    this.ch = {
      small: c(RAM_PTE), mthp: c(RAM_PTE), thp: c([...RAM_PMD, ...RAM_PTE]), cross: c(RAM_PTE), cow: c(RAM_PTE),
      dev: c(DEV_PTE), devthp: c([...DEV_PMD, ...DEV_PTE]), file: c(FILE_PTE), filethp: c([...RAM_PMD.filter(([f]) => f !== 'pmd-mig-rx'), ...FILE_PTE]),
      h2: c(HUGE), h1: c(HUGE),
    };
  }

  // --- bookkeeping --------------------------------------------------------------------------------------

  count(key: string, n = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + n;
  }

  private descendants(m: number): number[] {
    const out = [m];
    for (let i = 0; i < out.length; i++) {
      this.s.parents.forEach((p, c) => {
        if (p === out[i]) out.push(c);
      });
    }
    return out;
  }

  /** The rmap group of anon folios of region r whose anon_vma belongs to mm `owner` (the creator's, or a
   *  child's after COW): the VMAs of the owner and of its descendants in the region. */
  private anonGroup(r: Region, owner: number): { key: string; id: number } {
    const k = `${r.start}:${r.window.creator}:${owner}`;
    let key = this.anonGroups.get(k);
    if (key === undefined) {
      const id = this.nextAnonVma++;
      key = `a${id}`;
      const desc = new Set(this.descendants(owner));
      this.groups.set(key, r.members.filter((m) => desc.has(m)).map((m) => ({ mm: this.mms[m]!, vma: r.vmas.get(m)!, m })));
      this.anonGroups.set(k, key);
    }
    return { key, id: Number(key.slice(1)) };
  }

  // --- memory -------------------------------------------------------------------------------------------

  /** Device-private number of chunk-relative offset `off` (offsets of all chunks counted from 0). */
  private devNumber(off: number): number {
    const per = this.e.settings.deviceChunkPages;
    const c = this.chunks[Math.floor(off / per)]!;
    return c.base + (off % per);
  }

  private makeUnit(
    where: 'ram' | 'low' | 'dev' | 'h2' | 'h1', order: number, count: number, index: number,
    mapping: { anonVma?: number; file?: number }, group: string, devOff?: number,
  ): Unit {
    const nr = 2 ** order;
    let number: number;
    let ns: Namespace = 'pfn';
    let hugetlb: '2M' | '1G' | null = null;
    if (where === 'dev') {
      const off = devOff ?? this.dev.alloc(nr * count, nr);
      number = this.devNumber(off);
      ns = this.chunks[0]!.namespace;
    } else if (where === 'h1') {
      number = this.giantSlots.shift()!;
      hugetlb = '1G';
    } else {
      number = (where === 'low' ? this.low : this.ram).alloc(nr * count, nr);
      if (where === 'h2') hugetlb = '2M';
    }
    const first = this.e.createFolios({
      namespace: ns, number, order: hugetlb ? undefined : order, hugetlb: hugetlb ?? undefined, index, ...mapping,
    }, count);
    const recs: FolioRec[] = [];
    for (let k = 0; k < count; k++) {
      const rec: FolioRec = {
        id: first + k * nr, ns, number: number + k * nr, order, nr, index: index + k * nr, group,
        device: where === 'dev', hugetlb: hugetlb !== null, alias: false, pinned: this.pinning, rows: new Map(),
      };
      recs.push(rec);
      this.recs.push(rec);
    }
    this.units++;
    return { recs, ns, number, index, order, pages: nr * count, device: where === 'dev', hugetlb };
  }

  // --- VMAs ---------------------------------------------------------------------------------------------

  private gapBytes(): number {
    const k = this.rng.weighted([[0, 25], [1, 35], [2, 25], [3, 15]] as const);
    if (k === 0) return 0;
    if (k === 1) return this.rng.range(1, 16) * P;
    if (k === 2) return this.rng.range(17, 600) * P;
    return this.rng.range(1, 4) * PMD_SIZE + this.rng.int(512) * P;
  }

  private addRegion(w: Window, pages: number, o: {
    file?: number; pgoff?: (start: number) => number; flags: Partial<VmaFlags>; align: number; phase?: number; high?: boolean;
  }): Region {
    let cur = (o.high ? w.high : w.cursor) + this.gapBytes();
    const start = alignUp(cur, o.align) + (o.phase ?? 0);
    const end = start + pages * P;
    const pgoff = o.pgoff?.(start);
    const vmas = new Map<number, Vma>();
    for (const m of w.members) {
      const vma = this.mms[m]!.addVma({ start, end, pgoff, flags: o.flags, file: o.file });
      vmas.set(m, vma);
      if (o.file !== undefined) {
        const key = `f${o.file}`;
        if (!this.groups.has(key)) this.groups.set(key, []);
        this.groups.get(key)!.push({ mm: this.mms[m]!, vma, m });
      }
    }
    cur = end;
    if (o.high) w.high = cur;
    else w.cursor = cur;
    return {
      window: w, members: w.members, vmas, start, pages, thp: o.flags.thp ?? false, hugetlb: o.flags.hugetlb ?? null, file: o.file ?? null,
    };
  }

  /** VMA page c of region r, moved up so that its address is aligned to `n` pages. */
  private alignVa(r: Region, c: number, n: number): number {
    const page = r.start / P + c;
    return alignUp(page, n) - r.start / P;
  }

  private lpi(r: Region, c: number): number {
    const vma = r.vmas.values().next().value as Vma;
    return linearPageIndex(vma, r.start + c * P);
  }

  // --- installing entries -------------------------------------------------------------------------------

  private put(mm: Mm, level: 'pte' | 'pmd' | 'pud', addr: number, count: number, entry: EntrySpec, huge: boolean): void {
    mm.map(addr, { level, count, entry });
    let kind: string = entry.kind;
    if (entry.kind === 'present') kind = entry.special ? 'present-special' : entry.protnone ? 'present-protnone' : 'present';
    else if (entry.kind === 'marker') kind = entry.guard ? 'marker-guard' : entry.poisoned ? 'marker-poisoned' : 'marker-uffd-wp';
    this.count(`${huge ? 'hugetlb-' : ''}${level}:${kind}`, count);
    if ('young' in entry && entry.young) this.count('shape:migration-young');
    if ('dirty' in entry && entry.dirty) this.count('shape:migration-dirty');
  }

  private present(number: number, extra: { protnone?: boolean; special?: boolean } = {}): EntrySpec {
    const r = this.rng;
    return {
      kind: 'present', number, user: true, write: !extra.protnone && r.chance(0.6), young: r.chance(0.7), dirty: r.chance(0.4),
      softDirty: r.chance(0.2), uffdWp: r.chance(0.05), nx: r.chance(0.3), ...extra,
    };
  }

  private migration(kind: 'migration-read' | 'migration-read-exclusive' | 'migration-write', number: number, device: boolean): EntrySpec {
    const r = this.rng;
    const k = device && this.series ? (kind.replace('migration-', 'migration-device-private-') as EntrySpec['kind']) : kind;
    return { kind: k, number, young: r.chance(0.5), dirty: r.chance(0.4), flags: { softDirty: r.chance(0.2), uffdWp: r.chance(0.05) } } as EntrySpec;
  }

  private swap(): EntrySpec {
    return { kind: 'swap', swapType: this.rng.int(this.e.softleaf.maxSwapfiles), offset: 1 + this.rng.int(2 ** 30), flags: { exclusive: this.rng.chance(0.3) } };
  }

  private static MIG: Record<string, 'migration-read' | 'migration-read-exclusive' | 'migration-write'> = {
    r: 'migration-read', rx: 'migration-read-exclusive', w: 'migration-write',
  };

  /** The PTE-level entry of a simple form for page number `n` of a folio. */
  private pteEntry(form: Form, n: number, device: boolean): EntrySpec {
    switch (form) {
      case 'present': case 'partial': return this.present(n);
      case 'protnone': return this.present(n, { protnone: true });
      case 'mig-r': case 'mig-rx': case 'mig-w': return this.migration(Gen.MIG[form.slice(4)]!, n, false);
      case 'devmig-r': case 'devmig-rx': case 'devmig-w': return this.migration(Gen.MIG[form.slice(7)]!, n, true);
      case 'devx': return { kind: 'device-exclusive', number: n, flags: { softDirty: this.rng.chance(0.2) } };
      case 'dev-r': return { kind: 'device-private-read', number: n };
      case 'dev-w': return { kind: 'device-private-write', number: n, flags: { exclusive: this.rng.chance(0.5) } };
      case 'swap': return this.swap();
      case 'hwpoison': return { kind: 'hwpoison', number: n };
      case 'mk-uffd': return { kind: 'marker', uffdWp: true };
      case 'mk-poison': return { kind: 'marker', poisoned: true };
      case 'mk-guard': return { kind: 'marker', guard: true };
      default: throw new Error(`space generator: ${form} is not a simple PTE form (device ${device})`);
    }
  }

  /** The row of spec §2 a form exercises, for a folio mapped fully (or partly) in a VMA. */
  private rowOf(form: Form, u: Unit, rec: FolioRec, full: boolean): string {
    const lvl = u.hugetlb === '1G' ? 'hugetlb-pud' : 'hugetlb-pmd';
    const mig = (f: string) => ({ r: 'read', rx: 'read-exclusive', w: 'write' })[f.slice(f.lastIndexOf('-') + 1)]!;
    switch (form) {
      case 'present': case 'partial':
        if (!full || form === 'partial') return 'present-pte/partial';
        return `present-pte/${u.cross ? 'cross-pmd' : rec.order === 0 ? 'order0' : rec.order < 9 ? 'mthp' : 'pte-mapped-thp'}`;
      case 'protnone': return 'present-pte/protnone';
      case 'zero': return 'special/zero-page';
      case 'mixed': case 'dev-mixed': return 'mixed';
      case 'mig-r': case 'mig-rx': case 'mig-w': return `migration-pte/${mig(form)}`;
      case 'devmig-r': case 'devmig-rx': case 'devmig-w':
        return this.series ? `migration-device-private-pte/${mig(form)}` : `migration-pte/device-folio-${mig(form)}`;
      case 'pmd-devmig-r': case 'pmd-devmig-rx': case 'pmd-devmig-w':
        return this.series ? `migration-device-private-pmd/${mig(form)}` : `migration-pmd/device-folio-${mig(form)}`;
      case 'pmd-mig-r': case 'pmd-mig-rx': case 'pmd-mig-w': return `migration-pmd/${mig(form)}`;
      case 'pmd-present': return 'present-pmd';
      case 'pmd-protnone': return 'present-pmd/protnone';
      case 'dev-r': return 'device-private-pte/read';
      case 'dev-w': return 'device-private-pte/write';
      case 'pmd-dev-r': return 'device-private-pmd/read';
      case 'pmd-dev-w': return 'device-private-pmd/write';
      case 'devx': return 'device-exclusive-pte';
      case 'swap': return 'swap';
      case 'hwpoison': return 'hwpoison';
      case 'mk-uffd': return 'marker/uffd-wp';
      case 'mk-poison': return 'marker/poisoned';
      case 'mk-guard': return 'marker/guard';
      case 'h-present': return `${lvl}/present`;
      case 'h-mig-r': case 'h-mig-rx': case 'h-mig-w': return `${lvl}/migration-${mig(form)}`;
      case 'h-hwpoison': return `${lvl}/hwpoison`;
      case 'h-marker': return `${lvl}/marker`;
      case 'none': return 'none';
    }
  }

  /** Can this form be installed for unit u at its place in vma? */
  private fits(form: Form, u: Unit, vma: Vma): boolean {
    if (isDevMig(form) && !this.devMigOk) return false;
    if (form === 'partial' && u.pages < 2) return false;
    if (isPmdForm(form)) {
      if (u.order !== 9 || u.pages !== PMD_PAGES || u.hugetlb) return false;
      const addr = vma.start + (u.index - vma.pgoff) * P;
      return addr >= vma.start && addr + PMD_SIZE <= vma.end && addr % PMD_SIZE === 0 && vma.flags.thp && thpVmaSuitableOrder(vma, addr, 9);
    }
    return true;
  }

  /** Install unit u (or the part of it inside vma) in mm m with one form; record rows per folio. */
  private install(u: Unit, m: number, vma: Vma, form: Form): void {
    const mm = this.mms[m]!;
    const vpages = (vma.end - vma.start) / P;
    const lo = Math.max(0, vma.pgoff - u.index);
    const hi = Math.min(u.pages, vma.pgoff + vpages - u.index);
    if (lo >= hi || form === 'none') return;
    const addrOf = (p: number) => vma.start + (u.index + p - vma.pgoff) * P;
    let [a, b] = [lo, hi];
    const r = this.rng;
    if (u.hugetlb) {
      const level = u.hugetlb === '1G' ? 'pud' : 'pmd';
      const hp = u.hugetlb === '1G' ? PUD_PAGES : PMD_PAGES;
      const k = u.pages / hp;
      let entry: EntrySpec;
      if (form === 'h-present') entry = this.present(u.number);
      else if (form === 'h-hwpoison') entry = { kind: 'hwpoison', number: u.number };
      else if (form === 'h-marker') entry = { kind: 'marker', uffdWp: true };
      else entry = this.migration(Gen.MIG[form.slice(6)]!, u.number, false);
      this.put(mm, level, addrOf(0), k, entry, true);
    } else if (isPmdForm(form)) {
      if (!this.fits(form, u, vma)) throw new Error(`space generator: ${form} does not fit`);
      let entry: EntrySpec;
      if (form === 'pmd-present') entry = this.present(u.number);
      else if (form === 'pmd-protnone') entry = this.present(u.number, { protnone: true });
      else if (form === 'pmd-dev-r') entry = { kind: 'device-private-read', number: u.number };
      else if (form === 'pmd-dev-w') entry = { kind: 'device-private-write', number: u.number };
      else if (form.startsWith('pmd-devmig-')) entry = this.migration(Gen.MIG[form.slice(11)]!, u.number, true);
      else entry = this.migration(Gen.MIG[form.slice(8)]!, u.number, false);
      this.put(mm, 'pmd', addrOf(0), 1, entry, false);
      if (isDevMig(form) && !this.series) this.count('shape:migration-of-device-folio');
    } else if (form === 'zero') {
      b = Math.min(hi, lo + 8);
      for (let p = a; p < b; p++) {
        this.put(mm, 'pte', addrOf(p), 1, this.present(ZERO_PFN, { special: true }), false);
        this.zeroes.push({ m, vma, addr: addrOf(p) });
      }
      this.count('shape:zero-page');
    } else if (form === 'mixed' || form === 'dev-mixed') {
      const parts: Form[] = form === 'mixed'
        ? ['present', 'protnone', 'mig-r', 'mig-w', 'swap', 'mk-uffd', 'hwpoison', 'none', 'present']
        : ['dev-r', 'dev-w', 'none', ...(this.devMigOk ? (['devmig-r', 'devmig-w'] as Form[]) : [])];
      for (let p = a; p < b;) {
        const n = Math.min(b - p, r.range(1, 8));
        const f = r.pick(parts);
        if (f !== 'none') this.put(mm, 'pte', addrOf(p), n, this.pteEntry(f, u.number + p, u.device), false);
        if (isDevMig(f) && !this.series) this.count('shape:migration-of-device-folio');
        p += n;
      }
      this.count('shape:mixed');
    } else {
      if (form === 'partial' && hi - lo >= 2) {
        a = lo + r.int(hi - lo - 1);
        b = r.range(a + 1, hi);
        if (a === lo && b === hi) b--;
      }
      this.put(mm, 'pte', addrOf(a), b - a, this.pteEntry(form, u.number + a, u.device), false);
      if (isDevMig(form) && !this.series) this.count('shape:migration-of-device-folio');
    }
    if (form === 'present' || form === 'protnone' || form === 'partial' || isPmdForm(form) || form === 'h-present') {
      this.mapped.push({ u, m, vma, lo: a, hi: b });
    }
    const key = `${mm.id}:${vma.id}`;
    let off = 0;
    for (const rec of u.recs) {
      const [s, t] = [Math.max(a, off), Math.min(b, off + rec.nr)];
      if (s < t) {
        const full = s === off && t === off + rec.nr;
        const row = this.rowOf(form, u, rec, full);
        rec.rows.set(key, row);
        const shape = row.startsWith('present-pte/') ? row.slice(12) : null;
        if (shape && shape !== 'protnone') this.count(`shape:${shape}`);
      }
      off += rec.nr;
    }
  }

  // --- anon regions -------------------------------------------------------------------------------------

  /** Map unit u (made by the window's creator) in the region's mms: the creator (forced form, or mostly
   *  mapped), the others sharing it (fork), getting a COW copy, or nothing. */
  private spread(r: Region, u: Unit, chooser: Chooser, force?: Form): void {
    const creator = r.window.creator;
    let sharers = 0;
    for (const m of r.members) {
      const vma = r.vmas.get(m)!;
      const ok = (f: Form) => this.fits(f, u, vma);
      if (m === creator) {
        const f = force ?? (this.rng.chance(0.9) ? chooser.pick(ok) : 'none');
        this.install(u, m, vma, f);
        if (f !== 'none') sharers++;
        continue;
      }
      const x = this.rng.float();
      if (x < 0.55) {
        const f = chooser.pick(ok);
        this.install(u, m, vma, f);
        if (f !== 'none') sharers++;
      } else if (x < 0.7 && !u.device) {
        const g = this.anonGroup(r, m);
        const cow = this.makeUnit('ram', u.order, u.recs.length, u.index, { anonVma: g.id }, g.key);
        cow.cross = u.cross;
        this.install(cow, m, vma, this.ch.cow!.pick((f) => this.fits(f, cow, vma)));
        this.count('shape:cow');
      }
    }
    if (sharers >= 2) this.count('shape:shared-anon');
  }

  private tpl(t: Tpl, r: Region, c: number, force?: Form): number {
    const rng = this.rng;
    const g = this.anonGroup(r, r.window.creator);
    const anon = { anonVma: g.id };
    const left = r.pages - c;
    if ((t === 'dev' || t === 'devthp') && !this.dev.fits(PMD_PAGES, PMD_PAGES)) return force ? c : this.tpl('small', r, c);
    switch (t) {
      case 'small': {
        const n = Math.min(left, force ? 3 : rng.range(1, 16));
        this.spread(r, this.makeUnit('ram', 0, n, this.lpi(r, c), anon, g.key), this.ch.small!, force);
        return c + n;
      }
      case 'mthp': {
        const o = force ? 2 : rng.weighted([[1, 5], [2, 5], [3, 4], [4, 4], [5, 3], [6, 2], [7, 2], [8, 1]] as const);
        const k = force ? 1 : rng.range(1, 4);
        const c0 = this.alignVa(r, c, 2 ** o);
        if (c0 + k * 2 ** o > r.pages) return c;
        this.spread(r, this.makeUnit('ram', o, k, this.lpi(r, c0), anon, g.key), this.ch.mthp!, force);
        return c0 + k * 2 ** o;
      }
      case 'thp': {
        const c0 = this.alignVa(r, c, PMD_PAGES);
        if (c0 + PMD_PAGES > r.pages) return c;
        this.spread(r, this.makeUnit('ram', 9, 1, this.lpi(r, c0), anon, g.key), this.ch.thp!, force);
        return c0 + PMD_PAGES;
      }
      case 'cross': {
        const o = force ? 4 : rng.range(3, 9);
        const n = 2 ** o;
        const s = this.alignVa(r, c + 1, PMD_PAGES) - rng.range(1, n - 1);
        if (s < c || s + n > r.pages) return c;
        const u = this.makeUnit('ram', o, 1, this.lpi(r, s), anon, g.key);
        u.cross = true;
        this.spread(r, u, this.ch.cross!, force);
        return s + n;
      }
      case 'dev': {
        const n = Math.min(left, force ? 1 : rng.range(1, 8));
        this.spread(r, this.makeUnit('dev', 0, n, this.lpi(r, c), anon, g.key), this.ch.dev!, force);
        return c + n;
      }
      case 'devthp': {
        const c0 = this.alignVa(r, c, PMD_PAGES);
        if (c0 + PMD_PAGES > r.pages) return c;
        this.spread(r, this.makeUnit('dev', 9, 1, this.lpi(r, c0), anon, g.key), this.ch.devthp!, force);
        return c0 + PMD_PAGES;
      }
      case 'alias': return this.alias(r, c, force);
      case 'swaprun': case 'markerrun': {
        const n = Math.min(left, t === 'swaprun' ? rng.range(1, 64) : rng.range(1, 16));
        for (const m of r.members) {
          if (!rng.chance(0.7)) continue;
          const entry: EntrySpec = t === 'swaprun' ? this.swap() : this.pteEntry(rng.pick(['mk-uffd', 'mk-poison', 'mk-guard'] as Form[]), 0, false);
          this.put(this.mms[m]!, 'pte', r.start + c * P, n, entry, false);
        }
        return c + n;
      }
    }
  }

  /**
   * The aliasing case (D1, spec §4): a RAM folio R mapped by the creator and a device-private folio D with
   * the same anon_vma and index, at an offset equal to R's pfn, mapped in another mm of the family at the same
   * address (a COW copy migrated to the device). rmap for R visits D's entry and vice versa.
   */
  private alias(r: Region, c: number, force?: Form): number {
    if (r.members.length < 2) return c;
    const rng = this.rng;
    const order = force === 'pmd-present' ? 9 : force === 'present' ? 0 : rng.pick([0, 0, 9]);
    const n = 2 ** order;
    const c0 = this.alignVa(r, c, n);
    if (c0 + n > r.pages || !this.low.fits(n, n)) return c;
    const g = this.anonGroup(r, r.window.creator);
    const index = this.lpi(r, c0);
    const R = this.makeUnit('low', order, 1, index, { anonVma: g.id }, g.key);
    const D = this.makeUnit('dev', order, 1, index, { anonVma: g.id }, g.key, R.number);
    const creator = r.window.creator;
    const others = r.members.filter((m) => m !== creator);
    const j = rng.pick(others);
    const cv = r.vmas.get(creator)!;
    const jv = r.vmas.get(j)!;
    const rf: Form = this.fits('pmd-present', R, cv) && (force === 'pmd-present' || rng.chance(0.5)) ? 'pmd-present' : 'present';
    this.install(R, creator, cv, rf);
    const df: Form = this.fits('pmd-dev-w', D, jv) && rng.chance(0.7) ? rng.pick(['pmd-dev-w', 'pmd-dev-r'] as Form[]) : rng.pick(['dev-w', 'dev-r'] as Form[]);
    this.install(D, j, jv, df);
    for (const m of others) if (m !== j && rng.chance(0.5)) this.install(R, m, r.vmas.get(m)!, 'present');
    R.recs[0]!.alias = D.recs[0]!.alias = true;
    R.recs[0]!.rows.set(`${this.mms[j]!.id}:${jv.id}`, 'alias/ram-key-over-device-entry');
    D.recs[0]!.rows.set(`${this.mms[creator]!.id}:${cv.id}`, 'alias/device-key-over-ram-entry');
    this.aliases.push({ ram: R.recs[0]!, dev: D.recs[0]! });
    this.count('shape:alias-pair');
    return c0 + n;
  }

  private populateAnon(r: Region): void {
    const rng = this.rng;
    const weights: (readonly [Tpl, number])[] = [
      ['small', 24], ['mthp', 22], ['thp', r.thp ? 20 : 6], ['cross', 8], ['dev', 5], ['devthp', r.thp ? 4 : 1],
      ['alias', r.members.length > 1 ? 2 : 0], ['swaprun', 4], ['markerrun', 3],
    ];
    let c = 0;
    while (c < r.pages) {
      c += rng.weighted([[0, 35], [rng.range(1, 16), 35], [rng.range(17, 256), 20], [rng.range(257, 1100), 10]] as const);
      if (c >= r.pages) break;
      const next = this.tpl(rng.weighted(weights), r, c);
      c = next > c ? next : c + 1 + rng.int(16);
    }
  }

  /** One of everything, in the creator of window 0 (which has a forked child): the catalog guarantees every
   *  kind of spec §2 whatever the seed; the random population adds the variety. */
  private catalog(w: Window): void {
    const r = this.addRegion(w, 64 * PMD_PAGES, { flags: { thp: true }, align: PMD_SIZE });
    const items: [Tpl, Form][] = [];
    for (const [f] of RAM_PTE) if (f !== 'none') items.push(['small', f]);
    for (const f of ['present', 'mig-w', 'partial', 'mixed'] as Form[]) items.push(['mthp', f]);
    for (const [f] of RAM_PMD) items.push(['thp', f]);
    for (const f of ['present', 'partial', 'mig-r', 'mixed', 'swap'] as Form[]) items.push(['thp', f]);
    for (const f of ['present', 'mig-rx', 'protnone'] as Form[]) items.push(['cross', f]);
    for (const [f] of DEV_PTE) if (f !== 'none' && (this.devMigOk || !isDevMig(f))) items.push(['dev', f]);
    for (const [f] of DEV_PMD) if (this.devMigOk || !isDevMig(f)) items.push(['devthp', f]);
    items.push(['devthp', 'dev-w'], ['alias', 'present'], ['alias', 'pmd-present']);
    let c = 0;
    for (const [t, f] of items) {
      c = this.tpl(t, r, c, f);
      c += this.rng.range(0, 3);
    }
    if (c > r.pages) throw new Error('space generator: catalog overflow');
  }

  private anonRegion(w: Window): Region {
    const rng = this.rng;
    const thp = rng.chance(0.45);
    let pages: number;
    if (thp) pages = PMD_PAGES * rng.range(1, 6) + (rng.chance(0.3) ? rng.range(1, 511) : 0);
    else {
      const band = rng.weighted([[0, 3], [1, 4], [2, 3]] as const);
      pages = band === 0 ? rng.range(1, 64) : band === 1 ? rng.range(65, 1024) : rng.range(1025, 4096);
    }
    const phase = thp && rng.chance(0.2) ? rng.range(1, 511) * P : 0;
    const mremapped = rng.chance(0.1);
    const delta = rng.range(-4096, 4096);
    return this.addRegion(w, pages, {
      flags: { thp, write: rng.chance(0.85), exec: rng.chance(0.1), locked: rng.chance(0.05) },
      align: thp ? PMD_SIZE : P,
      phase,
      pgoff: mremapped ? (start) => Math.max(0, start / P + delta) : undefined,
    });
  }

  // --- files --------------------------------------------------------------------------------------------

  /** A file's page cache: units in index order. */
  private pageCache(file: number, size: number): Unit[] {
    const rng = this.rng;
    const key = `f${file}`;
    if (!this.groups.has(key)) this.groups.set(key, []);
    const units: Unit[] = [];
    for (let idx = 0; idx < size;) {
      if (rng.chance(0.12)) {
        idx += rng.range(1, 32);
        continue;
      }
      let maxO = 0;
      while (maxO < 9 && idx % 2 ** (maxO + 1) === 0 && idx + 2 ** (maxO + 1) <= size) maxO++;
      let u: Unit;
      if (maxO === 9 && rng.chance(0.4)) u = this.makeUnit('ram', 9, 1, idx, { file }, key);
      else if (maxO === 0 || rng.chance(0.35)) {
        const n = Math.min(size - idx, rng.range(1, 12));
        u = this.makeUnit('ram', 0, n, idx, { file }, key);
      } else {
        const o = rng.range(1, Math.min(8, maxO));
        u = this.makeUnit('ram', o, 1, idx, { file }, key);
      }
      units.push(u);
      idx += u.pages;
    }
    return units;
  }

  private fileRegion(w: Window, file: number, size: number): Region {
    const rng = this.rng;
    const x = rng.float();
    const pgoff = x < 0.35 ? 0 : x < 0.6 ? PMD_PAGES * rng.int(Math.floor(size / PMD_PAGES) + 1) : rng.int(size);
    const pages = Math.min(8192, rng.range(1, Math.max(1, size - pgoff)) + (rng.chance(0.2) ? rng.range(1, 64) : 0));
    const suitable = rng.chance(0.6);
    if (!suitable || pgoff % PMD_PAGES !== 0) this.count('shape:file-misaligned');
    return this.addRegion(w, pages, {
      file, pgoff: () => pgoff, align: suitable ? PMD_SIZE : P, phase: suitable ? (pgoff % PMD_PAGES) * P : rng.int(PMD_PAGES) * P,
      flags: { shared: rng.chance(0.5), thp: rng.chance(0.6), write: rng.chance(0.5), exec: rng.chance(0.2) },
    });
  }

  /** Map a file's cached folios in a region, independently in each member mm. */
  private populateFile(r: Region, units: Unit[]): void {
    const rng = this.rng;
    for (const m of r.members) {
      const vma = r.vmas.get(m)!;
      const [p0, p1] = [vma.pgoff, vma.pgoff + r.pages];
      for (const u of units) {
        if (u.index + u.pages <= p0 || u.index >= p1 || !rng.chance(0.7)) continue;
        const chooser = u.order === 9 ? this.ch.filethp! : this.ch.file!;
        const f = chooser.pick((f) => this.fits(f, u, vma));
        const before = u.recs[0]!.rows.size;
        this.install(u, m, vma, f);
        if (f !== 'none' && before > 0) this.count('shape:shared-file');
      }
    }
  }

  // --- hugetlb ------------------------------------------------------------------------------------------

  /** A 2M or 1G hugetlb region: anon (forked in the window) or of a hugetlbfs file; slots hold folios. */
  private hugeRegion(w: Window, size: '2M' | '1G', pages: number, file?: { id: number; units: Map<number, Unit>; pgoff: number }, force?: Form[]): void {
    const hp = size === '1G' ? PUD_PAGES : PMD_PAGES;
    const r = this.addRegion(w, pages, {
      file: file?.id, pgoff: file ? () => file.pgoff : undefined, align: hp * P, high: size === '1G',
      flags: { hugetlb: size, shared: file !== undefined, write: this.rng.chance(0.7) },
    });
    const chooser = size === '1G' ? this.ch.h1! : this.ch.h2!;
    const g = file ? null : this.anonGroup(r, w.creator);
    for (let s = 0; s < pages / hp; s++) {
      let u: Unit | undefined;
      if (file) u = file.units.get(file.pgoff + s * hp);
      else if (force || this.rng.chance(0.85)) {
        u = this.makeUnit(size === '1G' ? 'h1' : 'h2', size === '1G' ? 18 : 9, 1, this.lpi(r, s * hp), { anonVma: g!.id }, g!.key);
      }
      let mappedIn = 0;
      for (const m of r.members) {
        const vma = r.vmas.get(m)!;
        // Read-exclusive migration entries remember PageAnonExclusive: anon only.
        const f = m === w.creator && force?.[s] ? force[s]! : chooser.pick((f) => !(file && f === 'h-mig-rx'));
        if (f === 'h-marker') this.put(this.mms[m]!, size === '1G' ? 'pud' : 'pmd', r.start + s * hp * P, 1, { kind: 'marker', uffdWp: true }, true);
        if (!u || f === 'h-marker') continue;
        this.install(u, m, vma, f);
        if (f !== 'none') mappedIn++;
      }
      if (mappedIn >= 2) this.count(file ? 'shape:shared-file' : 'shape:shared-anon');
    }
  }

  // --- the space ----------------------------------------------------------------------------------------

  build(): void {
    const rng = this.rng;
    const { parents } = this.s;
    for (let i = 0; i < parents.length; i++) this.mms.push(this.e.createMm());
    // One window per mm: the VMAs it made before forking its children, so they exist in all its descendants.
    const five = this.o.paging === 5;
    for (let i = 0; i < parents.length; i++) {
      const base = (five && i % 2 === 1 ? 2 ** 52 : 0) + (1 + 2 * i) * TB;
      this.windows.push({ creator: i, members: this.descendants(i), cursor: base, high: base + TB });
    }
    const forked = this.windows.filter((w) => w.members.length > 1);
    const w0 = this.windows[0]!;

    this.pinning = true;
    this.catalog(w0);
    // hugetlb catalog: one 2M anon hugetlb VMA with every hugetlb form in the creator.
    this.hugeRegion(w0, '2M', 6 * PMD_PAGES, undefined, ['h-present', 'h-mig-r', 'h-mig-rx', 'h-mig-w', 'h-hwpoison', 'h-marker']);
    this.pinning = false;

    // Files: page caches, each mapped by VMAs in several windows (so in several mms, at different addresses).
    const files: { id: number; size: number; units: Unit[] }[] = [];
    for (let k = 0; k < this.s.files; k++) {
      const id = this.nextFile++;
      const size = rng.pick(this.s.fileSizes) + (rng.chance(0.3) ? rng.range(1, 100) : 0);
      files.push({ id, size, units: this.pageCache(id, size) });
    }

    // Anon VMAs interleaved with file VMAs in every window.
    for (const w of this.windows) {
      const n = this.s.anonPerWindow + (w.members.length > 1 ? 2 : 0);
      for (let k = 0; k < n; k++) {
        this.populateAnon(this.anonRegion(w));
        if (rng.chance(0.5)) {
          const f = rng.pick(files);
          this.populateFile(this.fileRegion(w, f.id, f.size), f.units);
        }
      }
    }
    for (const f of files) {
      const nv = rng.range(this.s.fileVmas[0], this.s.fileVmas[1]);
      for (let k = 0; k < nv; k++) this.populateFile(this.fileRegion(rng.pick(this.windows), f.id, f.size), f.units);
    }

    // hugetlb 2M: anon in forked windows, hugetlbfs files mapped in several windows.
    for (const w of forked) this.hugeRegion(w, '2M', PMD_PAGES * rng.range(2, 6));
    for (let k = 0; k < this.s.hugetlbFiles; k++) {
      const id = 5000 + k;
      const hpages = rng.range(3, 10);
      const units = new Map<number, Unit>();
      for (let s = 0; s < hpages; s++) {
        if (rng.chance(0.8)) units.set(s * PMD_PAGES, this.makeUnit('h2', 9, 1, s * PMD_PAGES, { file: id }, `f${id}`));
      }
      for (let v = rng.range(2, 3); v > 0; v--) {
        const pgoff = PMD_PAGES * rng.int(hpages);
        const len = rng.range(1, hpages - pgoff / PMD_PAGES);
        this.hugeRegion(rng.pick(this.windows), '2M', len * PMD_PAGES, { id, units, pgoff });
      }
    }

    // hugetlb 1G, placed high and 1 GiB aligned: a hugetlbfs file in the forked window 0 (present in the
    // creator, migrating in the child) and elsewhere; an anon 1G page in another window.
    const gfile = { id: 6000, units: new Map<number, Unit>(), pgoff: 0 };
    gfile.units.set(0, this.makeUnit('h1', 18, 1, 0, { file: gfile.id }, `f${gfile.id}`));
    this.hugeRegion(w0, '1G', PUD_PAGES, gfile, ['h-present']);
    const others = this.windows.filter((w) => w !== w0);
    this.hugeRegion(rng.pick(others), '1G', PUD_PAGES, gfile);
    this.hugeRegion(forked[1] ?? others[others.length - 1]!, '1G', PUD_PAGES, undefined, ['h-mig-r']);
    if (this.o.scale !== 'small') {
      const g2 = { id: 6001, units: new Map<number, Unit>(), pgoff: 0 };
      g2.units.set(0, this.makeUnit('h1', 18, 1, 0, { file: g2.id }, `f${g2.id}`));
      this.hugeRegion(rng.pick(this.windows), '1G', PUD_PAGES, g2);
    }

    // PFNMAP-like VMAs: special entries naming consecutive pfns with no folio; vm_pgoff = the first pfn.
    for (let k = 0; k < this.s.pfnmaps; k++) {
      const pages = rng.range(16, 512);
      const base = this.pfnmapPool.alloc(pages, 1);
      const r = this.addRegion(rng.pick(this.windows), pages, { file: 7000 + k, pgoff: () => base, align: P, flags: { shared: true } });
      for (const m of r.members) {
        if (m !== r.window.creator && !rng.chance(0.6)) continue;
        this.put(this.mms[m]!, 'pte', r.start, pages, this.present(base, { special: true }), false);
        this.pfnmaps.push({ m, vma: r.vmas.get(m)!, base, pages });
      }
      this.count('shape:pfnmap');
    }
  }

  // --- cases --------------------------------------------------------------------------------------------

  private byId?: Map<FolioId, FolioRec>;

  rmapOf(folio: FolioId): { mm: Mm; vma: Vma }[] {
    this.byId ??= new Map(this.recs.map((r) => [r.id, r]));
    const rec = this.byId.get(folio);
    if (!rec) throw new Error(`space generator: folio ${folio} is not one of this space's folios`);
    return this.groups.get(rec.group)!.filter(({ vma }) => vmaAddress(vma, rec.index, rec.nr) !== EFAULT).map(({ mm, vma }) => ({ mm, vma }));
  }

  makeCases(): void {
    const rng = this.rng;
    const folioOk = folioKeysAllowed(this.o);
    const rot = new Map<string, number>();
    const next = (k: string) => {
      const v = rot.get(k) ?? 0;
      rot.set(k, v + 1);
      return v;
    };
    const push = (mm: Mm, vma: Vma, key: WalkKey, row: string, address?: number) => {
      const c: WalkCase = { mm, vma, key, row };
      if (address !== undefined) c.address = address;
      this.cases.push(c);
    };
    for (const rec of this.recs) {
      const always = rec.pinned || rec.hugetlb || rec.device || rec.order >= 9 || rec.alias;
      if (!always && !rng.chance(rec.order === 0 ? this.s.sample0 : this.s.sampleMid)) continue;
      const dp = this.series && rec.device ? PVMW_DEVICE_PRIVATE : 0;
      for (const { mm, vma } of this.groups.get(rec.group)!) {
        const start = vmaAddress(vma, rec.index, rec.nr);
        if (start === EFAULT) continue;
        const row = rec.rows.get(`${mm.id}:${vma.id}`) ?? 'none';
        // pfn keys (DEFINE_FOLIO_VMA_WALK as the kernel builds it): flags rotate per row so every row meets all four.
        for (let k = 0; k < 2; k++) {
          push(mm, vma, { kind: 'pfn', number: rec.number, nrPages: rec.nr, pgoff: rec.index, flags: F4[next(row) % 4]! | dp }, row);
        }
        if (folioOk) {
          const v = next(`folio ${row}`);
          const key: WalkKey = { kind: 'folio', folio: rec.id, strategy: v % 2 ? 'identity' : 'range', flags: F4[(v >> 1) % 4]! };
          if (rng.chance(0.3)) {
            // A page of the folio inside this VMA (page_mapped_in_vma is asked about pages the VMA can hold).
            const lo = Math.max(0, vma.pgoff - rec.index);
            const hi = Math.min(rec.nr, vma.pgoff + (vma.end - vma.start) / P - rec.index);
            key.page = lo + rng.int(hi - lo);
          }
          push(mm, vma, key, row);
          if (rng.chance(0.4)) {
            const other: WalkKey = { ...key, strategy: key.strategy === 'range' ? 'identity' : 'range', flags: F4[rng.int(4)]! };
            push(mm, vma, other, row);
          }
        }
        if (rng.chance(0.08)) {
          const k = rng.int(Math.min(rec.nr, (vma.end - start) / P));
          push(mm, vma, { kind: 'pfn', number: rec.number, nrPages: rec.nr, pgoff: rec.index, flags: F4[rng.int(4)]! | dp }, `explicit-address/${row}`, start + k * P);
        }
        if (this.series && rec.device && rng.chance(0.3)) {
          push(mm, vma, { kind: 'pfn', number: rec.number, nrPages: rec.nr, pgoff: rec.index, flags: F4[rng.int(4)]! }, `device-flag-missing/${row}`);
        }
        if (this.series && !rec.device && rng.chance(0.03)) {
          push(mm, vma, { kind: 'pfn', number: rec.number, nrPages: rec.nr, pgoff: rec.index, flags: F4[rng.int(4)]! | PVMW_DEVICE_PRIVATE }, `device-flag-wrong/${row}`);
        }
      }
    }
    // Raw pfn ranges (pfn_mkclean_range, mapping_wrprotect_range): around mapped RAM, any length 1 … 600.
    const ram = this.mapped.filter((p) => !p.u.device);
    for (let k = 0; k < this.s.rawRanges && ram.length > 0; k++) {
      const p = rng.pick(ram);
      const first = Math.max(0, p.u.number + p.lo + rng.int(p.hi - p.lo) - (rng.chance(0.3) ? rng.int(8) : 0));
      const nrPages = rng.weighted([[1, 2], [rng.range(2, 64), 4], [rng.range(65, 600), 4]] as const);
      const pgoff = p.u.index + (first - p.u.number);
      if (pgoff < 0 || first + nrPages > this.s.ramPages) continue;
      const flags = rng.chance(0.6) ? PVMW_SYNC : F4[rng.int(4)]!;
      push(this.mms[p.m]!, p.vma, { kind: 'pfn', number: first, nrPages, pgoff, flags }, 'raw-pfn-range');
    }
    for (const z of this.pfnmaps) {
      for (let k = 0; k < 6; k++) {
        const a = rng.int(z.pages);
        const nrPages = rng.range(1, z.pages - a + 8);
        push(this.mms[z.m]!, z.vma, { kind: 'pfn', number: z.base + a, nrPages, pgoff: z.vma.pgoff + a, flags: F4[k % 4]! }, 'special/pfnmap');
      }
    }
    for (const z of this.zeroes) {
      if (!rng.chance(0.5)) continue;
      push(this.mms[z.m]!, z.vma, { kind: 'pfn', number: ZERO_PFN, nrPages: 1, pgoff: linearPageIndex(z.vma, z.addr), flags: F4[rng.int(4)]! }, 'special/zero-page-raw');
    }
  }
}

/** Build the space of these options: the same options always give the same engine, folios and cases. */
export function buildSpace(o: SpaceOptions): Space {
  const g = new Gen(o);
  g.build();
  g.makeCases();
  const census = g.e.folioCensus();
  const summary: Record<string, number> = {
    mms: g.mms.length,
    vmas: g.mms.reduce((n, mm) => n + mm.vmas.size, 0),
    folios: g.recs.length,
    cases: g.cases.length,
    aliases: g.aliases.length,
    units: g.units,
    tables: g.e.memoryUsage().tables,
    devicePrivate: census.devicePrivate,
    hugetlb: census.hugetlb,
  };
  census.byOrder.forEach((n, order) => {
    if (n) summary[`order${order}`] = n;
  });
  return {
    engine: g.e,
    mms: g.mms,
    folios: g.recs.map((r) => r.id),
    cases: g.cases,
    counts: g.counts,
    aliases: g.aliases.map((a) => ({ ram: a.ram.id, device: a.dev.id })),
    summary,
    rmap: (folio) => g.rmapOf(folio),
  };
}
