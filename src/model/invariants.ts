import { hex } from '../errors.js';
import { decodeEntry } from './decode.js';
import type { Engine } from './engine.js';
import type { RawEntry } from './entry.js';
import type { LevelName } from './geometry.js';
import type { Mm } from './mm.js';
import { isDevicePrivateKind, type SoftleafKind } from './softleaf.js';
import { linearPageIndex, type Vma } from './vma.js';
import type { FolioInfo } from './folio.js';

/**
 * The invariant checker of issue 4 item 4, recomputing everything from the page tables and never from the
 * counters it checks: it reads every mm's tables itself (raw entries, the TypeScript decoder), recounts the
 * mappings of every folio page, and compares. Checked:
 * - tables agree with VMA bounds: every leaf lies wholly inside one VMA, at a level that VMA takes;
 * - no entry points outside physical or device memory, nor into the wrong kind of memory;
 * - every mapping names a folio page, and a PMD/PUD mapping a whole folio of that size;
 * - every mapping is reachable by rmap (kernel-operations §0.3, spec §6.1): anon folio in an anon VMA linked
 *   (an AVC in its chain) to the folio's anon_vma, file folio in a VMA of its file that is in the file's
 *   i_mmap tree, folio index + page = linear page index; a KSM folio's stable node holds an rmap_item at that
 *   address whose mm is the VMA's or whose anon_vma the VMA is linked to (a child forked after the merge);
 * - every folio's per-page, entire and folio mapcounts equal the mappings counted (spec §6.5, D5).
 */
export interface InvariantProblem {
  code: 'OUTSIDE_VMA' | 'WRONG_LEVEL' | 'OUTSIDE_MEMORY' | 'NOT_A_FOLIO' | 'UNREACHABLE' | 'MAPCOUNT' | 'BAD_ENTRY';
  message: string;
}

export interface InvariantReport {
  ok: boolean;
  /** The first problems found (at most `limit`). */
  problems: InvariantProblem[];
  /** Problems found in all, including those past the limit. */
  problemCount: number;
  checked: { mms: number; leaves: number; mappings: number; folios: number };
}

const HUGE_LEVEL = { '2M': 'pmd', '1G': 'pud' } as const;

export function checkInvariants(engine: Engine, limit = 100): InvariantReport {
  const problems: InvariantProblem[] = [];
  let problemCount = 0;
  const report = (code: InvariantProblem['code'], message: string) => {
    problemCount++;
    if (problems.length < limit) problems.push({ code, message });
  };
  const geo = engine.geometry;
  const ctx = engine.decodeContext;
  const exclusiveMaps = engine.settings.semantics !== 'v6.14'; // device-exclusive entries map pages from 6.15
  /** PTE mappings per page and PMD/PUD mappings per folio, keyed by global memmap index. */
  const pte = new Map<number, number>();
  const entire = new Map<number, number>();
  let leaves = 0;
  let mappings = 0;

  const visitLeaf = (mm: Mm, va: number, level: LevelName, raw: RawEntry) => {
    leaves++;
    const size = 2 ** geo.table.find((l) => l.name === level)!.shift;
    const where = `mm ${mm.id} ${level} entry at ${hex(va)}`;
    const vma = mm.vmas.find(va);
    if (!vma || va + size > vma.end) return report('OUTSIDE_VMA', `${where} is not inside one VMA`);
    const want = vma.flags.hugetlb ? HUGE_LEVEL[vma.flags.hugetlb] : null;
    if (want ? level !== want : level === 'pud') return report('WRONG_LEVEL', `${where}: VMA ${hex(vma.start)}-${hex(vma.end)} takes ${want ?? 'pte or pmd'} entries`);
    let d;
    try {
      d = decodeEntry(raw, level, ctx);
    } catch (e) {
      return report('BAD_ENTRY', `${where}: ${(e as Error).message}`);
    }
    if (d.namespace === null || d.number === null) return;
    const pages = level === 'pte' ? 1 : size / 4096;
    const range = engine.memory.rangeOf(d.namespace, d.number);
    if (!range || d.number + pages > range.base + range.pages) return report('OUTSIDE_MEMORY', `${where} names ${d.namespace} ${hex(d.number)}, beyond memory`);
    const kind = d.kind as SoftleafKind | 'present';
    const device = kind !== 'present' && isDevicePrivateKind(kind);
    if (device !== (range.kind === 'device-private') && !(kind !== 'present' && kind.startsWith('migration-'))) {
      return report('OUTSIDE_MEMORY', `${where}: a ${kind} entry names ${range.kind} memory at ${hex(d.number)}`);
    }
    const maps = (kind === 'present' && !d.present?.special) || kind === 'device-private-read' || kind === 'device-private-write' ||
      (kind === 'device-exclusive' && exclusiveMaps);
    if (!maps) return;
    mappings++;
    const page = engine.folios.lookup(d.namespace, d.number);
    if (!page) return report('NOT_A_FOLIO', `${where} maps ${d.namespace} ${hex(d.number)}, which is in no folio`);
    const f = engine.folios.info(page.folio);
    if (level !== 'pte' && (page.page !== 0 || f.nrPages !== pages)) {
      return report('NOT_A_FOLIO', `${where} maps ${hex(d.number)}, not a whole folio of ${pages} pages`);
    }
    if (f.anon ? vma.file !== null && vma.flags.shared : f.file !== vma.file) {
      // Private file VMAs hold anon COW copies (kernel-operations.md §5.7 do_cow_fault); shared ones never do.
      report('UNREACHABLE', `${where}: folio ${hex(f.id)} is ${f.anon ? 'anon' : `of file ${f.file}`}, the VMA ${vma.anon ? 'anon' : `${vma.flags.shared ? 'shared' : 'private'} of file ${vma.file}`}`);
    } else if (!f.flags.ksm && f.index + page.page !== linearPageIndex(vma, va)) {
      report('UNREACHABLE', `${where}: page index ${hex(f.index + page.page)} of folio ${hex(f.id)} is not the linear page index ${hex(linearPageIndex(vma, va))}`);
    } else {
      const why = rmapMiss(engine, mm, vma, va, f);
      if (why) report('UNREACHABLE', `${where}: folio ${hex(f.id)} ${why}`);
    }
    const g = page.folio + page.page;
    if (level === 'pte') pte.set(g, (pte.get(g) ?? 0) + 1);
    else entire.set(page.folio, (entire.get(page.folio) ?? 0) + 1);
  };

  const visitTable = (mm: Mm, table: number, depth: number, base: number) => {
    const level = geo.table[depth];
    const size = 2 ** level.shift;
    for (let i = 0; i < 512; i++) {
      const raw = mm.readEntry(table, i);
      if (raw.lo === 0 && raw.hi === 0) continue;
      const va = base + i * size;
      const leafLevel = depth === geo.table.length - 1;
      const isTable = !leafLevel && (raw.lo & 1) !== 0 && ((raw.lo & 0x80) === 0 || depth < geo.table.length - 3);
      if (isTable) visitTable(mm, (raw.lo & 0xfffff000) >>> 0, depth + 1, va);
      else if (level.name === 'pte' || level.name === 'pmd' || level.name === 'pud') visitLeaf(mm, va, level.name, raw);
      else report('BAD_ENTRY', `mm ${mm.id} ${level.name} entry at ${hex(va)} is not a table pointer`);
    }
  };

  const mms = engine.allMms();
  for (const mm of mms) visitTable(mm, mm.root, 0, 0);

  // Every folio: stored mapcounts against the recount.
  let folios = 0;
  const x = engine.folios;
  for (const id of x.all()) {
    folios++;
    const f = x.info(id);
    const entireCount = entire.get(id) ?? 0;
    let total = entireCount;
    for (let p = 0; p < f.nrPages; p++) {
      const counted = pte.get(id + p) ?? 0;
      total += counted;
      const stored = x.lookup(f.namespace, f.number + p)!.mapcount - f.entireMapcount;
      if (stored !== counted) report('MAPCOUNT', `folio ${hex(id)} page ${p}: mapcount ${stored}, but ${counted} PTE mappings in the tables`);
    }
    if (f.entireMapcount !== entireCount) report('MAPCOUNT', `folio ${hex(id)}: entire mapcount ${f.entireMapcount}, but ${entireCount} PMD/PUD mappings`);
    if (f.mapcount !== total) report('MAPCOUNT', `folio ${hex(id)}: folio mapcount ${f.mapcount}, but ${total} mappings`);
  }
  return { ok: problemCount === 0, problems, problemCount, checked: { mms: mms.length, leaves, mappings, folios } };
}

/** Why rmap's structures would not lead to this mapping, or null if they do (spec §6.3, kernel-operations §8.4). */
function rmapMiss(engine: Engine, mm: Mm, vma: Vma, va: number, f: FolioInfo): string | null {
  const rmap = engine.rmap;
  if (f.flags.ksm) {
    const node = f.anonVma !== null ? rmap.ksm.get(f.anonVma) : undefined;
    if (!node) return `is KSM but names no stable node (${f.anonVma})`;
    const hit = node.items.some((it) => it.address === va && (it.mm === mm.id || rmap.anon.linked(vma, it.anonVma)));
    return hit ? null : `has no rmap_item of its stable node at ${hex(va)} reaching mm ${mm.id}`;
  }
  if (f.anon) {
    const av = f.anonVma !== null ? rmap.anon.get(f.anonVma) : undefined;
    if (!av) return `names anon_vma ${f.anonVma}, which does not exist`;
    return rmap.anon.linked(vma, av) ? null : `names anon_vma ${av.id}, which VMA ${hex(vma.start)}-${hex(vma.end)} is not linked to`;
  }
  return rmap.iMmap.has(vma) ? null : `is of file ${f.file}, whose i_mmap tree lacks VMA ${hex(vma.start)}-${hex(vma.end)}`;
}
