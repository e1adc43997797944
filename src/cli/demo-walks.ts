/**
 * The demo's "Walks" section: real page_vma_mapped_walk calls (src/walk/pvmw.ts, the WebAssembly walk) on the
 * demo space, for a handful of folios it built, in every interface the engine's settings allow (decisions.md
 * D2), each re-run on the TypeScript reference walk (src/walk/reference.ts) and compared with it; in the offset
 * device model also the D1 alias. Presentation only (DESIGN.md §2): every figure is read back from the walks,
 * every verdict ("agrees", "false match", "refused") is computed from them.
 */
import {
  PvmwError, PVMW_DEVICE_PRIVATE, PVMW_MIGRATION, PVMW_PGTABLE_CROSSED, PVMW_SYNC, decodeEntry,
  pageVmaMappedWalk, rawHex, referenceWalk, vmaAddress,
} from '../index.js';
import type { Engine, FolioId, MemoryRange, Mm, Namespace, PvmwErrorCode, Vma, WalkCounters, WalkKey, WalkMatch, WalkResult } from '../index.js';
import { grid, hex } from './format.js';

/** One folio the section walks for: the folio, where (mm and VMA), and the input flags (PVMW_MIGRATION …). */
export interface WalkTarget {
  label: string;
  folio: FolioId;
  mm: Mm;
  vma: Vma;
  flags: number;
}

/** A folio to walk for, named by one of its pages: label, namespace, number, the VMA that maps it, flags. */
export type TargetPick = readonly [label: string, namespace: Namespace, number: number, vma: Vma, flags?: number];

/** The walk targets of `picks` in `mm`: each page's folio. */
export function pickTargets(e: Engine, mm: Mm, picks: readonly TargetPick[]): WalkTarget[] {
  return picks.map(([label, ns, n, vma, flags = 0]) => {
    const page = e.page(ns, n);
    if (!page) throw new PvmwError('NO_FOLIO', `demo walk target ${label}: ${hex(n)} is in no folio`);
    return { label, folio: page.folio, mm, vma, flags };
  });
}

/** The D1 alias (offset model only): mm 2 maps device-private offset N where mm 1 maps RAM pfn N. */
export interface DemoAlias {
  child: Mm;
  vma: Vma;
  address: number;
  ram: FolioId;
  device: FolioId;
  /** The RAM folio looked for in mm 2, and the device folio looked for in mm 1. */
  targets: WalkTarget[];
}

/**
 * Offset model only: add a fork child of `mm` (same anon VMA, same page offsets, same anon_vma) whose copy of
 * the RAM folio `ram` was migrated to the device at offset N = the folio's pfn. An rmap walk of either folio
 * visits both VMAs (one anon_vma), so both sit at the address a pfn-keyed walk for N looks at. Returns null
 * in the pfn model (device pages have pfns of their own there) or when offset N is outside the device chunk.
 */
export function addDemoAlias(e: Engine, mm: Mm, anon: Vma, device: MemoryRange, ram: FolioId, anonVma: number): DemoAlias | null {
  if (e.settings.deviceModel !== 'offset') return null;
  const r = e.folio(ram);
  const n = r.number;
  if (device.namespace !== 'device-private' || n < device.base || n >= device.base + device.pages) return null;
  const address = vmaAddress(anon, r.index, 1);
  const child = e.createMm();
  const vma = child.addVma({ start: anon.start, end: anon.end, pgoff: anon.pgoff, flags: { ...anon.flags } });
  const dev = e.createFolio({ namespace: 'device-private', number: n, anonVma, index: r.index });
  child.map(address, { entry: { kind: 'device-private-write', number: n } });
  return {
    child,
    vma,
    address,
    ram,
    device: dev,
    targets: [
      { label: `RAM folio (pfn ${hex(n)}) looked for in mm ${child.id}, which maps device-private offset ${hex(n)} there`, folio: ram, mm: child, vma, flags: 0 },
      { label: `device-private folio (offset ${hex(n)}) looked for in mm ${mm.id}, which maps RAM pfn ${hex(n)} there`, folio: dev, mm, vma: anon, flags: 0 },
    ],
  };
}

// --- the report (u64 values as "0x…" strings) -------------------------------------------------------------

export type WalkInterface = 'pfn-keyed' | 'folio range' | 'folio identity';
export const INTERFACES: readonly WalkInterface[] = ['pfn-keyed', 'folio range', 'folio identity'];

export interface MatchReport {
  address: string;
  level: string;
  /** The entry as read under the lock, and what it names. */
  entry: string;
  kind: string;
  namespace: Namespace | null;
  number: string | null;
  lock: { kind: string; table: string };
  flags: string;
  /** PVMW_PGTABLE_CROSSED was set at this return. */
  crossed: boolean;
  /** The folio owning the page the entry names (null: none), and whether it is the folio looked for (false: a D1 false match). */
  folio: number | null;
  ownFolio: boolean;
}

export interface WalkRunReport {
  interface: WalkInterface;
  key: { kind: 'pfn'; number: string; nrPages: number; pgoff: string; flags: number } | { kind: 'folio'; folio: number; strategy: string; flags: number };
  /** The engine refused the key (D2: folio-keyed walks on newest/v6.14 × offset). */
  refused: { code: PvmwErrorCode; message: string } | null;
  /** vma_address of the key, or null (-EFAULT: no walk ran). */
  start: string | null;
  matchCount: number;
  matches: MatchReport[];
  counters: WalkCounters | null;
  /** Matches whose entry names a page of another folio. */
  falseMatches: number;
  /** The TypeScript reference walk for the same key: same matches (every field) and the same counters, or the same refusal. */
  reference: { agrees: boolean; detail: string };
}

export interface FolioWalksReport {
  label: string;
  folio: number;
  namespace: Namespace;
  number: string;
  order: number;
  nrPages: number;
  index: string;
  mm: number;
  vma: string;
  runs: WalkRunReport[];
  /** Interfaces that ran agree (addresses, levels, entries, locks; flags up to PVMW_DEVICE_PRIVATE); null: fewer than two ran. */
  interfacesAgree: boolean | null;
  agreement: string;
  falseMatches: number;
}

export interface WalksReport {
  ms: number;
  /** Walks run in WebAssembly (refusals not counted); each was also run on the reference. */
  walks: number;
  folios: FolioWalksReport[];
  /** The D1 alias (offset model), or null with the reason. */
  alias: { description: string; folios: FolioWalksReport[]; falseMatches: number; verdict: string } | null;
  noAlias: string | null;
}

/** The walk key of an interface for a target (spec §1.3 DEFINE_FOLIO_VMA_WALK; series: page_vma_walk_flags). */
export function walkKey(e: Engine, t: WalkTarget, iface: WalkInterface): WalkKey {
  if (iface !== 'pfn-keyed') return { kind: 'folio', folio: t.folio, strategy: iface === 'folio range' ? 'range' : 'identity', flags: t.flags };
  const f = e.folio(t.folio);
  const dp = e.settings.semantics === 'series' && f.devicePrivate ? PVMW_DEVICE_PRIVATE : 0;
  return { kind: 'pfn', number: f.number, nrPages: f.nrPages, pgoff: f.index, flags: t.flags | dp };
}

type Outcome = { result: WalkResult } | { refused: PvmwError };

function attempt(walk: () => WalkResult): Outcome {
  try {
    return { result: walk() };
  } catch (err) {
    if (err instanceof PvmwError && err.code === 'BAD_SETTING') return { refused: err };
    throw err;
  }
}

const sameMatch = (a: WalkMatch, b: WalkMatch, flagMask = ~0) =>
  a.address === b.address && a.level === b.level && a.raw.lo === b.raw.lo && a.raw.hi === b.raw.hi &&
  a.lock.kind === b.lock.kind && a.lock.table === b.lock.table && (a.flags & flagMask) === (b.flags & flagMask);

/** Where two match lists differ (null: they agree), flags compared under `flagMask`. */
export function matchesDiffer(a: readonly WalkMatch[], b: readonly WalkMatch[], flagMask = ~0): string | null {
  if (a.length !== b.length) return `${a.length} vs ${b.length} matches`;
  const i = a.findIndex((m, j) => !sameMatch(m, b[j], flagMask));
  return i < 0 ? null : `match ${i} differs (${hex(a[i].address)} ${a[i].level} vs ${hex(b[i].address)} ${b[i].level})`;
}

function countersDiffer(a: WalkCounters, b: WalkCounters): string | null {
  const names = new Set([...Object.keys(a.entriesRead), ...Object.keys(b.entriesRead)]);
  for (const n of names) if (a.entriesRead[n] !== b.entriesRead[n]) return `${n} reads ${a.entriesRead[n]} vs ${b.entriesRead[n]}`;
  for (const k of ['memmapLookups', 'restarts', 'tablesCrossed', 'matches'] as const) if (a[k] !== b[k]) return `${k} ${a[k]} vs ${b[k]}`;
  return null;
}

function referenceVerdict(wasm: Outcome, ref: Outcome): { agrees: boolean; detail: string } {
  if ('refused' in wasm || 'refused' in ref) {
    const both = 'refused' in wasm && 'refused' in ref;
    return { agrees: both, detail: both ? 'refuses too' : `${'refused' in wasm ? 'the reference walked' : 'the reference refused'}` };
  }
  const d = matchesDiffer(wasm.result.matches, ref.result.matches) ?? countersDiffer(wasm.result.counters, ref.result.counters);
  if (d === null && wasm.result.start !== ref.result.start) return { agrees: false, detail: 'start address differs' };
  return d === null ? { agrees: true, detail: 'same matches and counters' } : { agrees: false, detail: d };
}

function matchReport(e: Engine, folio: FolioId, m: WalkMatch): MatchReport {
  const d = decodeEntry(m.raw, m.level, e.decodeContext);
  const page = d.namespace !== null && d.number !== null && e.memory.rangeOf(d.namespace, d.number) ? e.page(d.namespace, d.number) : undefined;
  return {
    address: hex(m.address),
    level: m.level,
    entry: rawHex(m.raw),
    kind: d.kind,
    namespace: d.namespace,
    number: d.number === null ? null : hex(d.number),
    lock: { kind: m.lock.kind, table: hex(m.lock.table) },
    flags: hex(m.flags),
    crossed: (m.flags & PVMW_PGTABLE_CROSSED) !== 0,
    folio: page?.folio ?? null,
    ownFolio: page?.folio === folio,
  };
}

function keyReport(k: WalkKey): WalkRunReport['key'] {
  return k.kind === 'pfn'
    ? { kind: 'pfn', number: hex(k.number), nrPages: k.nrPages, pgoff: hex(k.pgoff), flags: k.flags }
    : { kind: 'folio', folio: k.folio, strategy: k.strategy, flags: k.flags };
}

function walkFolio(e: Engine, t: WalkTarget): FolioWalksReport & { ran: number } {
  const f = e.folio(t.folio);
  const done: { iface: WalkInterface; result: WalkResult }[] = [];
  const runs = INTERFACES.map((iface): WalkRunReport => {
    const key = walkKey(e, t, iface);
    const wasm = attempt(() => pageVmaMappedWalk(e, { mm: t.mm, vma: t.vma, key }));
    const reference = referenceVerdict(wasm, attempt(() => referenceWalk(e, t.mm, t.vma, key)));
    if ('refused' in wasm) {
      const refused = { code: wasm.refused.code, message: wasm.refused.message };
      return { interface: iface, key: keyReport(key), refused, start: null, matchCount: 0, matches: [], counters: null, falseMatches: 0, reference };
    }
    const r = wasm.result;
    done.push({ iface, result: r });
    const matches = r.matches.map((m) => matchReport(e, t.folio, m));
    return {
      interface: iface,
      key: keyReport(key),
      refused: null,
      start: r.start === null ? null : hex(r.start),
      matchCount: r.matches.length,
      matches,
      counters: r.counters,
      falseMatches: matches.filter((m) => !m.ownFolio).length,
      reference,
    };
  });
  let interfacesAgree: boolean | null = null;
  let agreement = `not compared: only the ${done.map((d) => d.iface).join(', ')} walk ran`;
  if (done.length >= 2) {
    const diffs = done.slice(1).map((d) => [d.iface, matchesDiffer(done[0].result.matches, d.result.matches, ~PVMW_DEVICE_PRIVATE)] as const);
    const bad = diffs.filter(([, d]) => d !== null);
    interfacesAgree = bad.length === 0;
    const flagsDiffer = done.some((d) => matchesDiffer(done[0].result.matches, d.result.matches) !== null);
    const n = done[0].result.matches.length;
    agreement = interfacesAgree
      ? `yes: ${done.map((d) => d.iface).join(', ')} ${n === 0 ? 'all find nothing' : `find the same ${n === 1 ? 'entry' : `${n} entries`} (addresses, levels, entries, locks)`}` +
        (flagsDiffer ? '; flags differ only by PVMW_DEVICE_PRIVATE, an input of the pfn-keyed walk' : '')
      : `NO: ${bad.map(([i, d]) => `${i} vs ${done[0].iface}: ${d}`).join('; ')}`;
  }
  return {
    label: t.label,
    folio: t.folio,
    namespace: f.namespace,
    number: hex(f.number),
    order: f.order,
    nrPages: f.nrPages,
    index: hex(f.index),
    mm: t.mm.id,
    vma: `${hex(t.vma.start)}-${hex(t.vma.end)}`,
    runs,
    interfacesAgree,
    agreement,
    falseMatches: runs.reduce((a, r) => a + r.falseMatches, 0),
    ran: done.length,
  };
}

function walkAll(e: Engine, targets: readonly WalkTarget[]): { folios: FolioWalksReport[]; walks: number } {
  const all = targets.map((t) => walkFolio(e, t));
  return { folios: all.map(({ ran: _ran, ...r }) => r), walks: all.reduce((a, r) => a + r.ran, 0) };
}

/** Run the section's walks. */
export function walksReport(e: Engine, targets: readonly WalkTarget[], alias: DemoAlias | null): WalksReport {
  const t0 = performance.now();
  const main = walkAll(e, targets);
  let aliasReport: WalksReport['alias'] = null;
  let walks = main.walks;
  if (alias) {
    const a = walkAll(e, alias.targets);
    walks += a.walks;
    const falseMatches = a.folios.reduce((n, f) => n + f.falseMatches, 0);
    const n = e.folio(alias.ram).number;
    const falseBy = [...new Set(a.folios.flatMap((f) => f.runs.filter((r) => r.falseMatches > 0).map((r) => r.interface)))];
    aliasReport = {
      description:
        `mm ${alias.child.id}, a fork child of mm ${targets[0]?.mm.id ?? 1} (same anon VMA and anon_vma), maps device-private offset ${hex(n)} ` +
        `at ${hex(alias.address)}, where mm ${targets[0]?.mm.id ?? 1} maps RAM pfn ${hex(n)}; an rmap walk of either folio visits both VMAs`,
      folios: a.folios,
      falseMatches,
      verdict: (falseMatches > 0
        ? `D1 hazard (${e.settings.semantics} × offset): ${falseMatches} false match${falseMatches === 1 ? '' : 'es'} by the ${falseBy.join(', ')} walk: ` +
          'an entry naming the other namespace\'s page with the same number is reported as a mapping of the folio'
        : `no false matches: ${e.settings.semantics} tells a device-private offset from an equal pfn`) +
        (a.folios.some((f) => f.runs.some((r) => r.refused)) ? '; the folio-keyed walk refuses here rather than guess (D2)' : ''),
    };
  }
  return {
    ms: performance.now() - t0,
    walks,
    folios: main.folios,
    alias: aliasReport,
    noAlias: alias ? null : e.settings.deviceModel === 'pfn'
      ? 'D1 aliasing: none in this space: in the pfn device model device-private pages have pfns above RAM (see --device-model offset)'
      : 'D1 aliasing: no alias was added (the RAM pfn is outside the device chunk)',
  };
}

// --- text ------------------------------------------------------------------------------------------------

/** Most matches listed per walk; the rest are counted. */
export const MATCHES_LISTED = 4;

const FLAG_NAMES: [number, string][] = [[PVMW_SYNC, 'PVMW_SYNC'], [PVMW_MIGRATION, 'PVMW_MIGRATION'], [PVMW_DEVICE_PRIVATE, 'PVMW_DEVICE_PRIVATE']];
const flagText = (flags: number) => FLAG_NAMES.filter(([b]) => flags & b).map(([, n]) => n).join('|') || '0';

function keyText(r: WalkRunReport, ns: Namespace): string {
  const k = r.key;
  if (k.kind === 'folio') return `${r.interface === 'folio range' ? 'folio-keyed, range' : 'folio-keyed, identity'} (folio ${hex(k.folio)}, flags ${flagText(k.flags)})`;
  const what = ns === 'pfn' ? 'pfn' : 'pfn field: device-private offset';
  return `pfn-keyed (${what} ${k.number}, nr_pages ${k.nrPages}, pgoff ${k.pgoff}, flags ${flagText(k.flags)})`;
}

function matchRows(r: WalkRunReport): string[] {
  const rows = r.matches.slice(0, MATCHES_LISTED).map((m) => [
    m.address,
    m.level,
    m.kind,
    m.number === null ? '' : `${m.namespace === 'pfn' ? 'pfn' : 'offset'} ${m.number}`,
    `${m.lock.kind} lock, table ${m.lock.table}`,
    [m.crossed ? 'PVMW_PGTABLE_CROSSED' : '', m.ownFolio ? '' : `FALSE MATCH: the entry names ${m.folio === null ? 'no folio' : `folio ${hex(m.folio)}`}`].filter(Boolean).join('  '),
  ]);
  const out = grid(rows, '      ');
  if (r.matches.length > MATCHES_LISTED) out.push(`      … and ${r.matches.length - MATCHES_LISTED} more`);
  return out;
}

function folioText(f: FolioWalksReport, levels: readonly string[]): string {
  const what = f.namespace === 'pfn' ? 'pfn' : 'device-private offset';
  const out = [`  ${f.label}`, `    folio ${hex(f.folio)}: ${what} ${f.number}, ${f.nrPages} page${f.nrPages === 1 ? '' : 's'}, index ${f.index}; VMA ${f.vma} of mm ${f.mm}`];
  const refused = f.runs.filter((r) => r.refused);
  for (const r of f.runs) {
    if (r.refused) continue;
    const n = r.matchCount;
    out.push(`    ${keyText(r, f.namespace)}: ${r.start === null ? 'key outside the VMA (-EFAULT), no walk' : `${n} match${n === 1 ? '' : 'es'}`}`);
    out.push(...matchRows(r));
  }
  if (refused.length) {
    const ref = refused.every((r) => r.reference.agrees) ? 'the reference walk refuses too' : `reference: ${refused.map((r) => `${r.interface} ${r.reference.detail}`).join(', ')}`;
    out.push(`    ${refused.map((r) => r.interface).join(', ')}: refused by the engine (${refused[0].refused!.code}, see above); ${ref}`);
  }
  const ran = f.runs.filter((r) => r.counters);
  const header = ['cost', ...levels, 'memmap', 'restarts', 'crossed', 'reference'];
  const rows = ran.map((r) => [r.interface, ...levels.map((l) => r.counters!.entriesRead[l] ?? 0), r.counters!.memmapLookups, r.counters!.restarts, r.counters!.tablesCrossed, r.reference.agrees ? 'agrees' : `DIFFERS: ${r.reference.detail}`]);
  out.push(...grid([header, ...rows], '    ', ['left', ...levels.map(() => 'right' as const), 'right', 'right', 'right', 'left']));
  out.push(`    interfaces agree: ${f.agreement}`);
  return out.join('\n');
}

/** The section as text. */
export function walksText(r: WalksReport): string {
  const runs = [...r.folios, ...(r.alias?.folios ?? [])].flatMap((f) => f.runs);
  const refusal = runs.find((x) => x.refused)?.refused;
  // The engine's table levels, root first, as the walks counted them.
  const levels = Object.keys(runs.find((x) => x.counters)?.counters?.entriesRead ?? {});
  const out = [
    'Walks: page_vma_mapped_walk (WebAssembly) for a few folios of the space, in every interface the settings allow',
    '  Each walk calls it until it returns false; each is re-run on the TypeScript reference walk and compared (matches',
    `  and counters). ${r.walks} walks in ${r.ms.toFixed(0)} ms. cost: entries read per level, memmap lookups, restarts, PTE tables crossed.`,
  ];
  if (refusal) out.push(`  folio-keyed walks are refused on this engine: ${refusal.message} (${refusal.code})`);
  out.push('', r.folios.map((f) => folioText(f, levels)).join('\n\n'));
  if (r.alias) {
    out.push('', `  D1 alias: ${r.alias.description}`, '', r.alias.folios.map((f) => folioText(f, levels)).join('\n\n'), '', `  ${r.alias.verdict}`);
  } else if (r.noAlias) out.push('', `  ${r.noAlias}`);
  return out.join('\n');
}
