/**
 * `pvmw demo`: build the default space and show what it holds, what page-table translations find (descents
 * from the root, like crash's `vtop`: Mm.translate) and what page_vma_mapped_walk finds for a few of its folios
 * (demo-walks.ts). Presentation only (DESIGN.md §2): the space is built through the public API, and every
 * figure printed is read back from the engine.
 */
import { selftestReport, selftestText, type SelftestRow } from './demo-ops.js';
import { Engine, PAGE_SIZE, PMD_SIZE, PVMW_MIGRATION, linearPageIndex, rawHex } from '../index.js';
import type { EngineOptions, MemoryRange, MemoryUsage, Mm, Namespace, PageInfo, PresentSpec, TraceStep, Vma } from '../index.js';
import { addDemoAlias, pickTargets, walksReport, walksText, type DemoAlias, type WalkTarget, type WalksReport } from './demo-walks.js';
import { bytes, grid, hex, pairs, ratio, table } from './format.js';

const MiB = 2 ** 20;

/** Where the default space puts things: addresses valid with 4- and 5-level paging; pfns in one memmap section. */
export const DEMO_LAYOUT = {
  anonStart: 0x7f00_0000_0000,
  anonSize: 64 * MiB,
  smallPages: 8192, // order-0 anon folios, PTE-mapped from anonStart
  smallPfn: 0x8000,
  thpOffset: 32 * MiB, // order-9 anon THPs, PMD-mapped
  thps: 4,
  thpPfn: 0xa000,
  mthpOffset: 40 * MiB, // one order-4 anon mTHP, PTE-mapped
  mthpOrder: 4,
  mthpPfn: 0xa800,
  specialOffset: 48 * MiB, // device-private, migration, swap and guard-marker entries, one page each
  migratingPfn: 0xa810,
  swapOffset: 0x100,
  /** Page of the device chunk used; in the offset model its number equals RAM pfn smallPfn (D1). */
  deviceIndex: 0x8000,
  unmappedOffset: 62 * MiB,
  fileStart: 0x7f10_0000_0000,
  fileSize: 4 * MiB,
  filePages: 256, // order-0 file folios, PTE-mapped; then one order-9 file THP, PMD-mapped, at +2 MiB
  filePfn: 0xb000,
  fileThpPfn: 0xb200,
  hugetlbStart: 0x7f20_0000_0000,
  hugetlbPages: 4, // 2 MiB hugetlb folios, PMD-mapped
  hugetlbPfn: 0xc000,
} as const;

export interface DemoProbe {
  label: string;
  address: number;
}

/** What buildDemoSpace built: mm, VMAs, device chunk, folios by purpose, probes, walk targets, (offset) the D1 alias. */
export interface DemoSpace {
  mm: Mm;
  vmas: { anon: Vma; file: Vma; hugetlb: Vma };
  device: MemoryRange;
  folios: {
    anonSmall: number;
    anonThp: number;
    anonMthp: number;
    migrating: number;
    devicePrivate: number;
    fileSmall: number;
    fileThp: number;
    hugetlb: number;
  };
  probes: DemoProbe[];
  targets: WalkTarget[];
  alias: DemoAlias | null;
}

const ANON_VMA = 1;
const FILE = 1;
const HUGETLB_FILE = 2;

/** Build the default space (DEMO_LAYOUT) in `e`: one mm, three VMAs, one device chunk (+ the D1 alias: offset model). */
export function buildDemoSpace(e: Engine): DemoSpace {
  const L = DEMO_LAYOUT;
  const mm = e.createMm();
  const rw: Omit<PresentSpec, 'number'> = { kind: 'present', write: true, user: true, young: true, dirty: true };

  const anon = mm.addVma({ start: L.anonStart, end: L.anonStart + L.anonSize, flags: { thp: true } });
  // Folios are created in bulk too (createFolios: back to back, each index following the previous folio's pages).
  const anonFolios = (number: number, addr: number, n: number, order = 0) =>
    e.createFolios({ number, order, anonVma: ANON_VMA, index: linearPageIndex(anon, addr) }, n);
  anonFolios(L.smallPfn, L.anonStart, L.smallPages);
  mm.map(L.anonStart, { count: L.smallPages, entry: { ...rw, number: L.smallPfn } });

  const thpAddr = L.anonStart + L.thpOffset;
  anonFolios(L.thpPfn, thpAddr, L.thps, 9);
  mm.map(thpAddr, { level: 'pmd', count: L.thps, entry: { ...rw, number: L.thpPfn } });

  const mthpAddr = L.anonStart + L.mthpOffset;
  anonFolios(L.mthpPfn, mthpAddr, 1, L.mthpOrder);
  mm.map(mthpAddr, { count: 2 ** L.mthpOrder, entry: { ...rw, number: L.mthpPfn } });

  // One page each: a device-private page (migrated to the device), a page under migration, a swapped-out
  // page, and a guard marker (MADV_GUARD_INSTALL).
  const special = L.anonStart + L.specialOffset;
  const device = e.addDeviceMemory();
  const devNumber = device.base + L.deviceIndex;
  e.createFolio({ namespace: device.namespace, number: devNumber, anonVma: ANON_VMA, index: linearPageIndex(anon, special) });
  mm.map(special, { entry: { kind: 'device-private-write', number: devNumber } });
  anonFolios(L.migratingPfn, special + PAGE_SIZE, 1);
  mm.map(special + PAGE_SIZE, { entry: { kind: 'migration-write', number: L.migratingPfn } });
  mm.map(special + 2 * PAGE_SIZE, { entry: { kind: 'swap', swapType: 0, offset: L.swapOffset } });
  mm.map(special + 3 * PAGE_SIZE, { entry: { kind: 'marker', guard: true } });

  const file = mm.addVma({ start: L.fileStart, end: L.fileStart + L.fileSize, file: FILE, flags: { shared: true, thp: true } });
  const shared: Omit<PresentSpec, 'number'> = { kind: 'present', write: true, user: true, young: true };
  e.createFolios({ number: L.filePfn, file: FILE, index: 0 }, L.filePages);
  mm.map(L.fileStart, { count: L.filePages, entry: { ...shared, number: L.filePfn } });
  e.createFolio({ number: L.fileThpPfn, order: 9, file: FILE, index: linearPageIndex(file, L.fileStart + PMD_SIZE) });
  mm.map(L.fileStart + PMD_SIZE, { level: 'pmd', entry: { ...shared, number: L.fileThpPfn } });

  const hugetlb = mm.addVma({
    start: L.hugetlbStart,
    end: L.hugetlbStart + L.hugetlbPages * PMD_SIZE,
    file: HUGETLB_FILE,
    flags: { shared: true, hugetlb: '2M' },
  });
  e.createFolios({ number: L.hugetlbPfn, hugetlb: '2M', file: HUGETLB_FILE, index: 0 }, L.hugetlbPages);
  mm.map(L.hugetlbStart, { level: 'pmd', count: L.hugetlbPages, entry: { ...shared, number: L.hugetlbPfn } });

  // The folios the Walks section looks for (by a page's number), each in the VMA that maps it; the D1 alias.
  const targets = pickTargets(e, mm, [
    ['anon order-0 folio, PTE-mapped', 'pfn', L.smallPfn + 5, anon],
    [`anon mTHP (order ${L.mthpOrder}), PTE-mapped`, 'pfn', L.mthpPfn, anon],
    ['anon THP, PMD-mapped', 'pfn', L.thpPfn + 512, anon],
    ['hugetlb 2M folio', 'pfn', L.hugetlbPfn + 2 * 512, hugetlb],
    ['device-private folio', device.namespace, devNumber, anon],
    ['anon folio under migration (PVMW_MIGRATION)', 'pfn', L.migratingPfn, anon, PVMW_MIGRATION],
    ['file folio, PTE-mapped in the shared file VMA', 'pfn', L.filePfn + 3, file],
  ]);
  const alias = addDemoAlias(e, mm, anon, device, targets[0].folio, ANON_VMA);

  return {
    mm,
    vmas: { anon, file, hugetlb },
    device,
    folios: { anonSmall: L.smallPages, anonThp: L.thps, anonMthp: 1, migrating: 1, devicePrivate: alias ? 2 : 1, fileSmall: L.filePages, fileThp: 1, hugetlb: L.hugetlbPages },
    probes: [
      { label: 'anon page, PTE-mapped (order-0 folio)', address: L.anonStart + 5 * PAGE_SIZE },
      { label: 'inside an anon THP, PMD-mapped', address: thpAddr + PMD_SIZE + 0x123 * PAGE_SIZE },
      { label: 'inside an anon mTHP (order 4), PTE-mapped', address: mthpAddr + 3 * PAGE_SIZE },
      { label: 'inside a 2 MiB hugetlb folio', address: L.hugetlbStart + 2 * PMD_SIZE + 0x42 * PAGE_SIZE },
      { label: 'device-private entry', address: special },
      { label: 'migration entry', address: special + PAGE_SIZE },
      { label: 'swap entry', address: special + 2 * PAGE_SIZE },
      { label: 'guard marker', address: special + 3 * PAGE_SIZE },
      { label: 'unmapped address inside the anon VMA', address: L.anonStart + L.unmappedOffset },
    ],
    targets,
    alias,
  };
}

// --- the report: plain data read back from the engine (u64 values as "0x…" strings, decisions.md Terms) ---

export interface PageReport {
  namespace: Namespace;
  number: string;
  folio: number;
  folioKind: string;
  folioOrder: number;
  page: number;
  pageMapcount: number;
  folioMapcount: number;
}

export interface StepReport {
  level: string;
  raw: string;
  kind: string;
  namespace: Namespace | null;
  number: string | null;
  /** Swap type and offset, for swap entries. */
  swap: { type: number; offset: string } | null;
  bits: string[];
}

/** A page-table translation of one probe address (Mm.translate), not a page_vma_mapped_walk. */
export interface TranslationReport {
  label: string;
  address: string;
  steps: StepReport[];
  /** The folio page the leaf maps (a mapping, counted in the mapcounts). */
  maps: PageReport | null;
  /** The folio page a leaf names without mapping it (a migration entry). */
  names: PageReport | null;
  /** offset model: the RAM page whose pfn equals the device-private offset (D1: pfn-keyed walks cannot tell them apart). */
  samePfn: PageReport | null;
}

export interface DemoReport {
  buildMs: number;
  /** Folios buildDemoSpace created, by purpose. */
  built: DemoSpace['folios'];
  settings: { paging: number; userAddressBits: number; semantics: string; deviceModel: string; ramPages: number; deviceChunkPages: number; maxMemoryBytes: number };
  memoryRanges: { kind: string; namespace: Namespace; base: string; pages: number; bytes: number; memmapStart: number }[];
  vmas: { start: string; end: string; bytes: number; pgoff: string; kind: string; flags: string }[];
  folios: { total: number; byOrder: Record<string, number>; anon: number; file: number; hugetlb: number; devicePrivate: number; ksm: number };
  pageTables: { tables: Record<string, number>; leaves: { pte: number; pmd: number; pud: number } };
  memory: MemoryUsage & { tableBytesPerLeafEntry: number; modelBytesPerFolio: number };
  translations: TranslationReport[];
  /** page_vma_mapped_walk for a few folios, every interface the settings allow, checked against the reference. */
  walks: WalksReport;
  /** The kernel's rmap selftest, by operations, one fresh engine per variant (demo-ops.ts). */
  operations: SelftestRow[];
  notYet: string;
}

export const NOT_YET =
  'What exists: page_vma_mapped_walk, pfn-keyed and folio-keyed (range and identity), in WebAssembly, and its ' +
  'TypeScript reference walk (the Walks above); operations (faults, fork, mmap/munmap, mprotect, mremap, madvise, KSM), ' +
  'rmap walks and the reclaim-side callers (the Operations above). Not yet: full migration and device memory ' +
  'operations, scenario files, and the pfn-vs-folio comparison report come with later issues.';

function vmaKind(v: Vma): string {
  if (v.flags.hugetlb) return `hugetlb ${v.flags.hugetlb}, file ${v.file}`;
  return v.anon ? 'anon' : `file ${v.file}`;
}

function vmaFlags(v: Vma): string {
  const f = v.flags;
  const prot = (f.read ? 'r' : '-') + (f.write ? 'w' : '-') + (f.exec ? 'x' : '-') + (f.shared ? 's' : 'p');
  return [prot, f.thp ? 'thp' : '', f.locked ? 'locked' : ''].filter(Boolean).join(' ');
}

function pageReport(e: Engine, p: PageInfo): PageReport {
  const f = e.folio(p.folio);
  const kind = [f.devicePrivate ? 'device-private' : '', f.hugetlb ? `hugetlb ${f.hugetlb}` : '', f.anon ? 'anon' : `file ${f.file}`];
  return {
    namespace: f.namespace,
    number: hex(f.number + p.page),
    folio: p.folio,
    folioKind: kind.filter(Boolean).join(', '),
    folioOrder: f.order,
    page: p.page,
    pageMapcount: p.mapcount,
    folioMapcount: f.mapcount,
  };
}

function stepReport(s: TraceStep): StepReport {
  const d = s.entry;
  const set = <T extends object>(o: T | undefined) => (o ? Object.entries(o).filter(([, v]) => v === true).map(([k]) => k) : []);
  return {
    level: s.level,
    raw: rawHex(s.raw),
    kind: d.kind,
    namespace: d.namespace,
    number: d.number === null ? null : hex(d.number),
    swap: d.kind === 'swap' && d.swap ? { type: d.swap.type, offset: hex(d.swap.offset) } : null,
    bits: [...set(d.bits), ...set(d.marker)],
  };
}

function translationReport(e: Engine, mm: Mm, probe: DemoProbe): TranslationReport {
  const t = mm.translate(probe.address);
  const leaf = t.leaf.entry;
  // The folio page at (namespace, number), if that number is in memory and its page in a folio.
  const at = (ns: Namespace | null, n: number | null) => {
    const p = ns !== null && n !== null && e.memory.rangeOf(ns, n) ? e.page(ns, n) : undefined;
    return p ? pageReport(e, p) : null;
  };
  return {
    label: probe.label,
    address: hex(probe.address),
    steps: t.steps.map(stepReport),
    maps: t.page && t.maps ? pageReport(e, t.page) : null,
    names: t.page && !t.maps ? pageReport(e, t.page) : null,
    samePfn: leaf.namespace === 'device-private' ? at('pfn', leaf.number) : null,
  };
}

/** Read the engine back into a report. */
export function demoReport(e: Engine, space: DemoSpace, buildMs: number, options: EngineOptions = {}): DemoReport {
  const s = e.settings;
  const census = e.folioCensus();
  const byOrder: Record<string, number> = {};
  census.byOrder.forEach((n, order) => n && (byOrder[order] = n));
  const total = census.byOrder.reduce((a, b) => a + b, 0);
  const stats = space.mm.stats();
  const usage = e.memoryUsage();
  const leaves = stats.leaves.pte + stats.leaves.pmd + stats.leaves.pud;
  const model = usage.tableBytes + usage.memmapBytes + usage.tagBytes;
  return {
    buildMs,
    built: space.folios,
    settings: {
      paging: s.paging,
      userAddressBits: e.geometry.vaBits,
      semantics: s.semantics,
      deviceModel: s.deviceModel,
      ramPages: s.ramPages,
      deviceChunkPages: s.deviceChunkPages,
      maxMemoryBytes: s.maxMemoryBytes,
    },
    memoryRanges: e.memory.all().map((r) => ({ kind: r.kind, namespace: r.namespace, base: hex(r.base), pages: r.pages, bytes: r.pages * PAGE_SIZE, memmapStart: r.start })),
    vmas: space.mm.vmas.all().map((v) => ({ start: hex(v.start), end: hex(v.end), bytes: v.end - v.start, pgoff: hex(v.pgoff), kind: vmaKind(v), flags: vmaFlags(v) })),
    folios: { total, byOrder, anon: census.anon, file: census.file, hugetlb: census.hugetlb, devicePrivate: census.devicePrivate, ksm: census.ksm },
    pageTables: stats,
    memory: { ...usage, tableBytesPerLeafEntry: leaves ? usage.tableBytes / leaves : 0, modelBytesPerFolio: total ? model / total : 0 },
    translations: space.probes.map((p) => translationReport(e, space.mm, p)),
    walks: walksReport(e, space.targets, space.alias),
    operations: selftestReport(options),
    notYet: NOT_YET,
  };
}

// --- text ------------------------------------------------------------------------------------------------

const BUILT_LABEL: Record<keyof DemoSpace['folios'], string> = {
  anonSmall: 'anon order-0',
  anonThp: 'anon THP',
  anonMthp: `anon mTHP (order ${DEMO_LAYOUT.mthpOrder})`,
  migrating: 'anon under migration',
  devicePrivate: 'device-private',
  fileSmall: 'file order-0',
  fileThp: 'file THP',
  hugetlb: 'hugetlb 2M',
};

function pageText(verb: string, p: PageReport): string {
  const what = p.namespace === 'pfn' ? 'pfn' : 'device-private offset';
  return (
    `${verb} ${what} ${p.number}: folio ${hex(p.folio)} (order ${p.folioOrder}, ${p.folioKind}) page ${p.page}; ` +
    `page mapcount ${p.pageMapcount}, folio mapcount ${p.folioMapcount}`
  );
}

function translationText(w: TranslationReport): string {
  const rows = w.steps.map((s) => {
    const num = s.swap ? `type ${s.swap.type} offset ${s.swap.offset}` : s.number === null ? '' : `${s.namespace === 'pfn' ? 'pfn' : 'offset'} ${s.number}`;
    return [s.level, s.raw, s.kind, num, s.bits.join(' ')];
  });
  const out = [`  ${w.address}  ${w.label}`, ...grid(rows, '    ')];
  if (w.maps) out.push('    ' + pageText('maps', w.maps));
  if (w.names) out.push('    ' + pageText('names (not a mapping)', w.names));
  if (w.samePfn) out.push('    ' + pageText('same number in RAM:', w.samePfn));
  const leaf = w.steps[w.steps.length - 1];
  if (!w.maps && !w.names) out.push(`    no page: ${leaf.kind === 'none' ? 'the descent stops at a none' : `a ${leaf.kind}`} ${leaf.level} entry`);
  return out.join('\n');
}

/** The report as readable tables. */
export function demoText(r: DemoReport): string {
  const s = r.settings;
  const u = r.memory;
  const leaves = r.pageTables.leaves;
  const orders = Object.entries(r.folios.byOrder).map(([o, n]) => [o, bytes(2 ** Number(o) * PAGE_SIZE), n]);
  const levels = Object.keys(r.pageTables.tables).reverse();
  const out = [
    `pvmw demo: the default space, built in ${r.buildMs.toFixed(0)} ms`,
    '',
    'Engine',
    pairs([
      ['paging', `${s.paging}-level (${s.userAddressBits}-bit user addresses)`],
      ['semantics', s.semantics],
      ['device model', s.deviceModel],
      ['RAM', `${bytes(s.ramPages * PAGE_SIZE)} (${s.ramPages} pages)`],
      ['device chunk', `${bytes(s.deviceChunkPages * PAGE_SIZE)} (${s.deviceChunkPages} pages)`],
      ['memory ceiling', bytes(s.maxMemoryBytes)],
    ]),
    '',
    'Memory ranges',
    table(
      [{ header: 'kind' }, { header: 'namespace' }, { header: 'base' }, { header: 'pages', align: 'right' }, { header: 'size', align: 'right' }, { header: 'memmap index', align: 'right' }],
      r.memoryRanges.map((m) => [m.kind, m.namespace, m.base, m.pages, bytes(m.bytes), hex(m.memmapStart)]),
    ),
    '',
    'VMAs of mm 1',
    table(
      [{ header: 'start' }, { header: 'end' }, { header: 'size', align: 'right' }, { header: 'pgoff' }, { header: 'kind' }, { header: 'flags' }],
      r.vmas.map((v) => [v.start, v.end, bytes(v.bytes), v.pgoff, v.kind, v.flags]),
    ),
    '',
    `Folios: ${r.folios.total}`,
    `  built: ${(Object.keys(BUILT_LABEL) as (keyof DemoSpace['folios'])[]).map((k) => `${r.built[k]} ${BUILT_LABEL[k]}`).join(', ')}`,
    table([{ header: 'order', align: 'right' }, { header: 'size', align: 'right' }, { header: 'folios', align: 'right' }], orders),
    pairs([
      ['anon', r.folios.anon],
      ['file', r.folios.file],
      ['hugetlb', r.folios.hugetlb],
      ['device-private', r.folios.devicePrivate],
      ['ksm', r.folios.ksm],
    ]),
    '  (kinds overlap: hugetlb and device-private folios are also anon or file)',
    '',
    'Page tables of mm 1',
    table(
      [{ header: 'level' }, { header: 'tables', align: 'right' }, { header: 'leaf entries', align: 'right' }],
      levels.map((l) => [l, r.pageTables.tables[l], l in leaves ? leaves[l as keyof typeof leaves] : '-']),
    ),
    '',
    'Memory used (this engine\'s WebAssembly memory)',
    pairs([
      ['wasm memory', bytes(u.wasmBytes)],
      ['page tables', `${bytes(u.tableBytes)} (${u.tables} tables; ${ratio(u.tableBytes, leaves.pte + leaves.pmd + leaves.pud)} B per leaf entry)`],
      ['memmap', bytes(u.memmapBytes)],
      ['content tags', bytes(u.tagBytes)],
      ['fixed', bytes(u.fixedBytes)],
      ['free frames', bytes(u.freeBytes)],
      ['rest', bytes(u.wasmBytes - u.tableBytes - u.memmapBytes - u.tagBytes - u.fixedBytes - u.freeBytes)],
      ['per folio', `${ratio(u.tableBytes + u.memmapBytes + u.tagBytes, r.folios.total)} B (tables + memmap + tags over ${r.folios.total} folios)`],
    ]),
    '',
    'Translations (page-table descent from the root, like crash vtop; table entries hold the next table\'s WebAssembly address)',
    r.translations.map(translationText).join('\n\n'),
    '',
    walksText(r.walks),
    '',
    selftestText(r.operations),
    '',
    r.notYet,
  ];
  return out.join('\n') + '\n';
}

export interface DemoOptions {
  engine: EngineOptions;
  json: boolean;
}

/** Build, read back and render the default space. Throws PvmwError on bad settings. */
export function runDemo(opts: DemoOptions): string {
  const t0 = performance.now();
  const e = new Engine(opts.engine);
  const space = buildDemoSpace(e);
  const report = demoReport(e, space, performance.now() - t0, opts.engine);
  return opts.json ? JSON.stringify(report, null, 2) + '\n' : demoText(report);
}
