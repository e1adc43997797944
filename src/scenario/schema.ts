import { PvmwError, hex, type PvmwErrorCode } from '../errors.js';
import type { EntrySpec } from '../model/mm.js';
import type { FolioSpec } from '../model/folio.js';
import type { VmaSpec } from '../model/vma.js';
import { geometry, LEAF_LEVELS, PAGE_SIZE, type LeafLevel } from '../model/geometry.js';
import { resolveSettings, type EngineOptions, type EngineSettings } from '../model/settings.js';
import { ENTRY_KINDS, FOLIO_FLAGS, PRESENT_BOOL_BITS, SOFTLEAF_PFN_KINDS, SWAP_FLAGS, VMA_BOOL_FLAGS } from './json-schema.js';
export { scenarioJsonSchema } from './json-schema.js';

/**
 * The scenario file format, version 1, explicit content (issue 5 item 1): engine settings (D1), device memory,
 * folios, and processes (with fork relations), their VMAs and the entries placed at explicit addresses.
 * `validateScenario` checks a parsed document completely, before any engine exists, and raises the first
 * problem as a PvmwError whose `path` is the JSON path of the bad value ("$.processes[2].vmas[0].start").
 * Checks that need the engine's memory (pfns beyond memory, folios overlapping, entries naming no folio) are
 * made while building (load.ts), with the same paths. `scenarioJsonSchema` describes the same format as a
 * JSON Schema (draft 2020-12), shipped as schema/scenario.schema.json.
 */

export const SCENARIO_VERSION = 1;

/** u64 values: a whole number, or a "0x…" hex string (decisions.md Terms). Must stay below 2^53. */
export type U64 = number | string;

export interface ScenarioEngine {
  paging?: 4 | 5;
  semantics?: 'newest' | 'series' | 'v6.14';
  deviceModel?: 'pfn' | 'offset';
  ramPages?: U64;
  deviceChunkPages?: U64;
  /** Device-private chunks to add (engine.addDeviceMemory), default 0. */
  deviceChunks?: number;
}

/** A validated scenario, numbers resolved. */
export interface Scenario {
  version: 1;
  engine: EngineOptions;
  deviceChunks: number;
  folios: { spec: FolioSpec; count: number; tags: { page: number; count: number; tag: number }[] }[];
  processes: {
    id: string;
    parent: string | null;
    vmas: VmaSpec[];
    entries: { addr: number; level: LeafLevel; count: number; entry: EntrySpec }[];
  }[];
}

// --- validation -----------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function fail(code: PvmwErrorCode, path: string, message: string): never {
  throw new PvmwError(code, message, path);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function object(v: unknown, path: string, known: readonly string[], required: readonly string[] = []): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('BAD_SETTING', path, `must be an object, got ${show(v)}`);
  const o = v as Obj;
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) fail('BAD_SETTING', `${path}.${k}`, `unknown key ${JSON.stringify(k)} (known: ${known.join(', ')})`);
  }
  for (const k of required) if (!(k in o)) fail('BAD_SETTING', `${path}.${k}`, `is required`);
  return o;
}

function array(v: unknown, path: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail('BAD_SETTING', path, `must be an array, got ${show(v)}`);
  return v;
}

function int(v: unknown, path: string, min: number, max: number, code: PvmwErrorCode = 'BAD_SETTING'): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('BAD_SETTING', path, `must be a whole number, got ${show(v)}`);
  if (v < min || v > max) fail(code, path, `must be from ${min} to ${max}, got ${v}`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail('BAD_SETTING', path, `must be true or false, got ${show(v)}`);
  return v;
}

function oneOf<T>(v: unknown, path: string, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) fail('BAD_SETTING', path, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${show(v)}`);
  return v as T;
}

/** A u64 given as a whole number or a "0x…" string; it must be below 2^53 to be exact in JavaScript. */
export function u64(v: unknown, path: string): number {
  if (typeof v === 'string') {
    if (!/^0[xX][0-9a-fA-F]+$/.test(v)) fail('BAD_SETTING', path, `must be a whole number or a "0x…" hex string, got ${show(v)}`);
    const b = BigInt(v);
    if (b > BigInt(Number.MAX_SAFE_INTEGER)) fail('BAD_RANGE', path, `${v} does not fit: values must be below 2^53`);
    return Number(b);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    fail('BAD_SETTING', path, `must be a whole number or a "0x…" hex string, got ${show(v)}`);
  }
  if (!Number.isSafeInteger(v)) fail('BAD_RANGE', path, `${show(v)} does not fit: values must be below 2^53`);
  return v;
}

function bits(o: Obj, path: string, names: readonly string[]): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const n of names) if (o[n] !== undefined) out[n] = bool(o[n], `${path}.${n}`);
  return out;
}

function swapFlags(v: unknown, path: string): Record<string, boolean> | undefined {
  if (v === undefined) return undefined;
  return bits(object(v, path, SWAP_FLAGS), path, SWAP_FLAGS);
}

function entrySpec(v: unknown, path: string): EntrySpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('BAD_SETTING', path, `must be an object, got ${show(v)}`);
  const kind = oneOf((v as Obj).kind, `${path}.kind`, ENTRY_KINDS);
  if (kind === 'present') {
    const o = object(v, path, ['kind', 'number', ...PRESENT_BOOL_BITS, 'pkey'], ['number']);
    const spec: Obj = { kind, number: u64(o.number, `${path}.number`), ...bits(o, path, PRESENT_BOOL_BITS) };
    if (o.pkey !== undefined) spec.pkey = int(o.pkey, `${path}.pkey`, 0, 15);
    return spec as EntrySpec;
  }
  if (kind === 'swap') {
    const o = object(v, path, ['kind', 'swapType', 'offset', 'flags'], ['swapType', 'offset']);
    return { kind, swapType: int(o.swapType, `${path}.swapType`, 0, 31), offset: u64(o.offset, `${path}.offset`), flags: swapFlags(o.flags, `${path}.flags`) };
  }
  if (kind === 'marker') {
    const o = object(v, path, ['kind', 'uffdWp', 'poisoned', 'guard', 'flags']);
    return { kind, ...bits(o, path, ['uffdWp', 'poisoned', 'guard']), flags: swapFlags(o.flags, `${path}.flags`) };
  }
  const o = object(v, path, ['kind', 'number', 'young', 'dirty', 'flags'], ['number']);
  return { kind, number: u64(o.number, `${path}.number`), ...bits(o, path, ['young', 'dirty']), flags: swapFlags(o.flags, `${path}.flags`) };
}

function engineOptions(v: unknown): { options: EngineOptions; settings: EngineSettings; deviceChunks: number } {
  const path = '$.engine';
  const o = v === undefined ? {} : object(v, path, ['paging', 'semantics', 'deviceModel', 'ramPages', 'deviceChunkPages', 'deviceChunks']);
  const options: EngineOptions = {};
  if (o.paging !== undefined) options.paging = oneOf(o.paging, `${path}.paging`, [4, 5] as const);
  if (o.semantics !== undefined) options.semantics = oneOf(o.semantics, `${path}.semantics`, ['newest', 'series', 'v6.14'] as const);
  if (o.deviceModel !== undefined) options.deviceModel = oneOf(o.deviceModel, `${path}.deviceModel`, ['pfn', 'offset'] as const);
  for (const k of ['ramPages', 'deviceChunkPages'] as const) {
    if (o[k] === undefined) continue;
    options[k] = u64(o[k], `${path}.${k}`);
    try {
      resolveSettings({ [k]: options[k] });
    } catch (e) {
      if (e instanceof PvmwError) fail(e.code, `${path}.${k}`, e.message);
      throw e;
    }
  }
  const deviceChunks = o.deviceChunks === undefined ? 0 : int(o.deviceChunks, `${path}.deviceChunks`, 0, 64, 'BAD_RANGE');
  return { options, settings: resolveSettings(options), deviceChunks };
}

/**
 * Check a parsed scenario document completely (types, known keys, ranges, alignment, references between
 * processes, overlapping VMAs, entries inside a VMA) and resolve its numbers. Throws the first problem found
 * as a PvmwError with its JSON path; never touches an engine.
 */
export function validateScenario(doc: unknown): Scenario {
  const top = object(doc, '$', ['$schema', 'version', 'engine', 'folios', 'processes'], ['version']);
  if (top.version !== SCENARIO_VERSION) fail('BAD_SETTING', '$.version', `must be ${SCENARIO_VERSION}, got ${show(top.version)}`);
  const { options, settings, deviceChunks } = engineOptions(top.engine);
  const geo = geometry(settings.paging);

  const folios: Scenario['folios'] = array(top.folios, '$.folios').map((fv, i) => {
    const path = `$.folios[${i}]`;
    const o = object(fv, path, ['number', 'namespace', 'order', 'hugetlb', 'file', 'anonVma', 'index', 'flags', 'count', 'tags'], ['number']);
    const spec: FolioSpec = { number: u64(o.number, `${path}.number`) };
    if (o.namespace !== undefined) spec.namespace = oneOf(o.namespace, `${path}.namespace`, ['pfn', 'device-private'] as const);
    if (o.order !== undefined) spec.order = int(o.order, `${path}.order`, 0, 9, 'BAD_ORDER');
    if (o.hugetlb !== undefined) spec.hugetlb = oneOf(o.hugetlb, `${path}.hugetlb`, ['2M', '1G'] as const);
    if (o.order !== undefined && o.hugetlb !== undefined) fail('BAD_ORDER', `${path}.order`, 'a hugetlb folio takes its order from its size; give order or hugetlb, not both');
    if (o.file !== undefined) spec.file = int(o.file, `${path}.file`, 0, 2 ** 32 - 1);
    if (o.anonVma !== undefined) spec.anonVma = int(o.anonVma, `${path}.anonVma`, 0, 2 ** 32 - 1);
    if (o.file !== undefined && o.anonVma !== undefined) fail('BAD_SETTING', `${path}.anonVma`, 'a file folio has no anon_vma');
    if (o.index !== undefined) spec.index = u64(o.index, `${path}.index`);
    if (o.flags !== undefined) spec.flags = bits(object(o.flags, `${path}.flags`, FOLIO_FLAGS), `${path}.flags`, FOLIO_FLAGS);
    const count = o.count === undefined ? 1 : int(o.count, `${path}.count`, 1, 2 ** 32 - 1, 'BAD_RANGE');
    const pages = spec.hugetlb === '1G' ? 2 ** 18 : spec.hugetlb === '2M' ? 512 : 2 ** (spec.order ?? 0);
    if (count * pages > 2 ** 32) fail('BAD_RANGE', `${path}.count`, `${count} folios of ${pages} pages do not fit in 2^32 pages`);
    const tags = array(o.tags, `${path}.tags`).map((tv, j) => {
      const tp = `${path}.tags[${j}]`;
      const t = object(tv, tp, ['page', 'count', 'tag'], ['page', 'tag']);
      const page = int(t.page, `${tp}.page`, 0, pages - 1, 'BAD_RANGE');
      const n = t.count === undefined ? 1 : int(t.count, `${tp}.count`, 1, pages - page, 'BAD_RANGE');
      return { page, count: n, tag: int(t.tag, `${tp}.tag`, 0, 2 ** 32 - 1) };
    });
    return { spec, count, tags };
  });

  type Span = { start: number; end: number; path: string; dontcopy: boolean };
  const seen = new Map<string, Span[]>();
  const processes: Scenario['processes'] = array(top.processes, '$.processes').map((pv, i) => {
    const path = `$.processes[${i}]`;
    const o = object(pv, path, ['id', 'parent', 'vmas', 'entries'], ['id']);
    if (typeof o.id !== 'string' || o.id === '') fail('BAD_SETTING', `${path}.id`, `must be a non-empty string, got ${show(o.id)}`);
    const id = o.id;
    if (seen.has(id)) fail('BAD_SETTING', `${path}.id`, `duplicate process id ${JSON.stringify(id)}`);
    let parent: string | null = null;
    const vmaList: Span[] = [];
    if (o.parent !== undefined) {
      if (typeof o.parent !== 'string' || o.parent === '') fail('BAD_SETTING', `${path}.parent`, `must be a process id (a non-empty string), got ${show(o.parent)}`);
      parent = o.parent;
      if (parent === id) fail('BAD_SETTING', `${path}.parent`, `process ${JSON.stringify(id)} cannot be its own parent (a fork cycle)`);
      const inherited = seen.get(parent);
      if (!inherited) {
        const later = (top.processes as unknown[]).slice(i + 1).some((q) => typeof q === 'object' && q !== null && (q as Obj).id === parent);
        fail('BAD_SETTING', `${path}.parent`, later
          ? `parent ${JSON.stringify(parent)} is defined after this process: a parent must come earlier (forward references and fork cycles are not allowed)`
          : `unknown parent ${JSON.stringify(parent)}: no earlier process has that id`);
      }
      vmaList.push(...inherited.filter((w) => !w.dontcopy)); // fork copies the parent's VMAs but VM_DONTCOPY ones
    }
    seen.set(id, vmaList);

    const vmas = array(o.vmas, `${path}.vmas`).map((vv, j) => {
      const vp = `${path}.vmas[${j}]`;
      const v = object(vv, vp, ['start', 'end', 'pgoff', 'file', 'flags'], ['start', 'end']);
      const start = u64(v.start, `${vp}.start`);
      const end = u64(v.end, `${vp}.end`);
      address(start, `${vp}.start`, PAGE_SIZE, geo.taskSize, false);
      address(end, `${vp}.end`, PAGE_SIZE, geo.taskSize, true);
      if (end <= start) fail('BAD_RANGE', `${vp}.end`, `VMA [${hex(start)}, ${hex(end)}) is empty or reversed`);
      const spec: VmaSpec = { start, end };
      if (v.pgoff !== undefined) spec.pgoff = u64(v.pgoff, `${vp}.pgoff`);
      if (v.file !== undefined) spec.file = int(v.file, `${vp}.file`, 0, 2 ** 32 - 1);
      if (v.flags !== undefined) {
        const fp = `${vp}.flags`;
        const f = object(v.flags, fp, [...VMA_BOOL_FLAGS, 'hugetlb']);
        spec.flags = bits(f, fp, VMA_BOOL_FLAGS);
        if (f.hugetlb !== undefined) spec.flags.hugetlb = oneOf(f.hugetlb, `${fp}.hugetlb`, [null, '2M', '1G'] as const);
      }
      const clash = vmaList.find((w) => start < w.end && w.start < end);
      if (clash) fail('VMA_OVERLAP', vp, `VMA [${hex(start)}, ${hex(end)}) overlaps [${hex(clash.start)}, ${hex(clash.end)}) (${clash.path})`);
      vmaList.push({ start, end, path: vp, dontcopy: spec.flags?.dontcopy === true });
      return spec;
    });

    const entries = array(o.entries, `${path}.entries`).map((ev, j) => {
      const ep = `${path}.entries[${j}]`;
      const e = object(ev, ep, ['addr', 'level', 'count', 'entry'], ['addr', 'entry']);
      const level: LeafLevel = e.level === undefined ? 'pte' : oneOf(e.level, `${ep}.level`, ['pte', 'pmd', 'pud'] as const);
      const size = 2 ** LEAF_LEVELS[level];
      const addr = u64(e.addr, `${ep}.addr`);
      address(addr, `${ep}.addr`, size, geo.taskSize, false, level);
      const count = e.count === undefined ? 1 : int(e.count, `${ep}.count`, 1, 2 ** 32 - 1, 'BAD_RANGE');
      const end = addr + count * size;
      if (!vmaList.some((w) => w.start <= addr && end <= w.end)) {
        fail('NO_VMA', ep, `${count} ${level} entr${count === 1 ? 'y' : 'ies'} at [${hex(addr)}, ${hex(end)}) do not lie inside one VMA of process ${JSON.stringify(id)}`);
      }
      return { addr, level, count, entry: entrySpec(e.entry, `${ep}.entry`) };
    });
    return { id, parent, vmas, entries };
  });

  return { version: 1, engine: options, deviceChunks, folios, processes };
}

function address(a: number, path: string, align: number, taskSize: number, isEnd: boolean, level?: LeafLevel): void {
  if (a % align !== 0) fail('BAD_ADDRESS', path, `${hex(a)} is not aligned to ${hex(align)}${level ? ` (a ${level} entry)` : ''}`);
  if (a > taskSize || (!isEnd && a === taskSize)) fail('BAD_ADDRESS', path, `${hex(a)} is beyond user space (TASK_SIZE ${hex(taskSize)})`);
}
