// Helpers shared by the operation tests (test/ops-*.test.ts): the engine snapshot a rejected or no-op call must
// leave unchanged, the invariant check, leaf look-ups, rmap look-ups, folio placement, and the one-VMA fixture.
import { expect } from 'vitest';
import { Engine, PMD_SIZE, linearPageIndex, type EntrySpec, type FolioId, type Mm, type VmaFlags } from '../src/index.js';
import { leavesIn, type LeafView } from '../src/mm/leaf.js';
import { folioAge } from '../src/mm/folio-age.js';
import { opsState } from '../src/mm/state.js';
import { rmapWalk } from '../src/rmap/rmap-walk.js';

/** Pages per folio a snapshot records (every folio the tests make has at most 512). */
const SNAPSHOT_PAGES = 512;

/**
 * Everything an operation could change, as one JSON string: per mm its id, VMAs (every field, plus the ids of
 * the anon_vmas its chain links and of its own anon_vma), every leaf (va, level, raw lo/hi) and table counts
 * (mm.stats()); every folio's info, its first 512 pages and its PG_idle / PG_young flags; swap slots (offset,
 * tag, count); the anon_vma count; KSM stable nodes (id, folio, rmap_items as mm / address / anon_vma id).
 * Leaves are read first: viewing a present leaf makes the zero pages on first use.
 */
export function engineSnapshot(e: Engine): string {
  const mms = e.allMms().map((mm) => ({
    id: mm.id,
    vmas: mm.vmas.all().map((v) => ({ ...v, chain: e.rmap.anon.chain(v).map((c) => c.anonVma.id), own: e.rmap.anon.of(v)?.id ?? null })),
    leaves: leavesIn(e, mm, 0, e.geometry.taskSize).map((l) => [l.va, l.level, l.raw.lo, l.raw.hi]),
    stats: mm.stats(),
  }));
  const age = folioAge(e);
  const folios = [...e.folios.all()].map((id) => {
    const f = e.folio(id);
    const pages = Array.from({ length: Math.min(f.nrPages, SNAPSHOT_PAGES) }, (_, i) => e.page(f.namespace, f.number + i));
    return { f, pages, idle: age.isIdle(id), young: age.isYoung(id) };
  });
  const swap = opsState(e).swap;
  const slots: number[][] = [];
  for (let offset = 1; slots.length < swap.used; offset++) if (swap.has(offset)) slots.push([offset, swap.tag(offset), swap.count(offset)]);
  const ksm = [...e.rmap.ksm.all()].map((n) => ({ id: n.id, folio: n.folio, items: n.items.map((i) => [i.mm, i.address, i.anonVma.id]) }));
  return JSON.stringify({ mms, folios, swap: { used: swap.used, slots }, anonVmas: e.rmap.anon.count, ksm });
}

/** The engine's invariants hold (the problems are listed on failure). */
export function expectClean(e: Engine): void {
  expect(e.checkInvariants().problems).toEqual([]);
}

/** The call returns { ok: false, errno } and changes nothing; the invariants hold. */
export function expectRejected(e: Engine, f: () => { ok: boolean }, errno: string): void {
  const before = engineSnapshot(e);
  expect(f()).toEqual({ ok: false, errno });
  expect(engineSnapshot(e)).toBe(before);
  expectClean(e);
}

/** The leaf starting at va (undefined: none starts there). */
export function leafAt(e: Engine, mm: Mm, va: number): LeafView | undefined {
  return leavesIn(e, mm, va, va + 4096).find((l) => l.va === va);
}

/** The leaf starting at va; throws if none starts there. */
export function leafAtOrThrow(e: Engine, mm: Mm, va: number): LeafView {
  const l = leafAt(e, mm, va);
  if (!l) throw new Error(`no leaf at 0x${va.toString(16)}`);
  return l;
}

/** The kind of the leaf starting at va, or 'NONE'. */
export const kindAt = (e: Engine, mm: Mm, va: number) => leafAt(e, mm, va)?.kind ?? 'NONE';

/** Addresses at which rmap_walk finds the folio mapped, ascending. */
export function rmapFinds(e: Engine, f: FolioId): number[] {
  const out: number[] = [];
  rmapWalk(e, [f], { rmapOne: (_c, m) => (out.push(...m.map((x) => x.address)), true) });
  return out.sort((a, b) => a - b);
}

/**
 * A folio rmap finds at `addr` of `mm` (anon: the VMA's anon_vma, hugetlb as the VMA is; file: its file and
 * index), mapped there by `entry`: one PMD, or one PTE per page for kinds that name a page (present,
 * device-*, migration-*), else one PTE.
 */
export function place(
  e: Engine,
  mm: Mm,
  addr: number,
  number: number,
  entry: Partial<EntrySpec> & { kind: EntrySpec['kind'] },
  order = 0,
  level: 'pte' | 'pmd' = 'pte',
): FolioId {
  const vma = mm.vmas.find(addr)!;
  const index = linearPageIndex(vma, addr);
  const id = vma.anon
    ? e.createFolio({ number, order, anonVma: e.rmap.anon.prepare(vma).id, index, hugetlb: vma.flags.hugetlb ?? undefined })
    : e.createFolio({ number, order, file: vma.file!, index });
  const perPage = entry.kind === 'present' || entry.kind.startsWith('device') || entry.kind.startsWith('migration');
  const count = level === 'pmd' ? 1 : perPage ? 2 ** order : 1;
  mm.map(addr, { level, count, entry: { number, ...entry } as EntrySpec });
  return id;
}

/** Where oneVmaSetup puts its VMA by default: [ONE_VMA_START, ONE_VMA_END), 1 GiB aligned, 8 PMDs. */
export const ONE_VMA_START = 0x4000_0000;
export const ONE_VMA_END = ONE_VMA_START + 8 * PMD_SIZE;

/** An engine (2^16 RAM pages) with one mm and one VMA, THP allowed unless `flags` say otherwise. */
export function oneVmaSetup(flags: Partial<VmaFlags> = {}, o: { file?: number; pgoff?: number; start?: number; end?: number } = {}) {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: o.start ?? ONE_VMA_START, end: o.end ?? ONE_VMA_END, flags: { thp: true, ...flags }, file: o.file, pgoff: o.pgoff });
  return { e, mm, vma };
}
