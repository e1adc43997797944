// mremap (kernel-operations.md §4): the §4.1 argument/error rows a simulator has (in kernel order), shrink,
// grow in place, and moves (§4.2: copy_vma pgoff, anon_vma links, move_page_tables with whole aligned PMDs
// moved as PMDs and other huge PMDs split, KSM break, unmap or MREMAP_DONTUNMAP), the multi-VMA pure move, and
// every §4.3 entry kind moved verbatim + soft-dirty. Each test checks entries, mapcounts, folio index, rmap
// reachability and tags, and the invariants after every operation; rejected calls change nothing.
import { describe, expect, it } from 'vitest';
import { Engine, Mm, PMD_SIZE, PUD_SIZE, linearPageIndex, type Vma, type VmaFlags } from '../src/index.js';
import { cpuAccess } from '../src/mm/access.js';
import { ksmScan } from '../src/mm/ksm.js';
import { leavesIn, presentRaw, writeLeaves, zeroPages, type LeafView } from '../src/mm/leaf.js';
import { MMAP_BASE } from '../src/mm/mmap.js';
import { mremap, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE } from '../src/mm/mremap.js';
import { opsState } from '../src/mm/state.js';
import { rmapCandidates, rmapWalk } from '../src/rmap/rmap-walk.js';
import { expectPvmwError } from './helpers.js';

const P = 4096;
const A = 0x4000_0000; // the VMA's start (1 GiB aligned)
const END = A + 8 * PMD_SIZE;
const B = 0x8000_0000; // a free target, 1 GiB aligned
const SOFT_DIRTY = 1 << 11; // present entries
const SWP_SOFT_DIRTY = 1 << 1; // swap-format entries

function setup(flags: Partial<VmaFlags> = {}, o: { file?: number; pgoff?: number; start?: number; end?: number } = {}) {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: o.start ?? A, end: o.end ?? END, flags: { thp: true, ...flags }, file: o.file, pgoff: o.pgoff });
  return { e, mm, vma };
}

/** An anon folio at `addr` of `vma` (index = linear page index), AnonExclusive, tagged 0x100 + page. */
function anon(e: Engine, vma: Vma, addr: number, number: number, order = 0): number {
  const av = e.rmap.anon.prepare(vma);
  const f = e.createFolio({ number, order, anonVma: av.id, index: linearPageIndex(vma, addr) });
  e.folios.setAnonExclusive(f, 0, 1 << order, true);
  for (let i = 0; i < 1 << order; i++) e.folios.setTag(f, i, 1, 0x100 + i);
  return f;
}

function at(e: Engine, mm: Mm, va: number): LeafView {
  const l = leavesIn(e, mm, va, va + P)[0];
  if (!l || l.va !== va) throw new Error(`no leaf at 0x${va.toString(16)}`);
  return l;
}

function vmas(mm: Mm) {
  return mm.vmas.all().map((v) => [v.start, v.end, v.pgoff]);
}

function snapshot(e: Engine) {
  return JSON.stringify({
    mms: e.allMms().map((mm) => ({
      leaves: leavesIn(e, mm, 0, e.geometry.taskSize).map((l) => [l.va, l.level, l.raw.lo, l.raw.hi]),
      vmas: mm.vmas.all().map((v) => ({ ...v, chain: e.rmap.anon.chain(v).map((c) => c.anonVma.id), own: e.rmap.anon.of(v)?.id })),
    })),
    folios: [...e.folios.all()].map((id) => {
      const f = e.folio(id);
      return { f, pages: Array.from({ length: f.nrPages }, (_, i) => e.page(f.namespace, f.number + i)) };
    }),
  });
}

function clean(e: Engine): void {
  expect(e.checkInvariants().problems).toEqual([]);
}

/** Addresses at which rmap_walk finds the folio mapped. */
function rmapFinds(e: Engine, f: number): number[] {
  const out: number[] = [];
  rmapWalk(e, [f], { rmapOne: (_c, m) => (out.push(...m.map((x) => x.address)), true) });
  return out.sort((a, b) => a - b);
}

const MOVE = { maymove: true, fixed: true, newAddr: B };

describe('§4.1 arguments and errors', () => {
  function space() {
    const s = setup();
    anon(s.e, s.vma, A, 0x1000);
    s.mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    const h = s.mm.addVma({ start: 4 * PUD_SIZE, end: 4 * PUD_SIZE + 2 * PMD_SIZE, flags: { hugetlb: '2M' } });
    const sh = s.mm.addVma({ start: 6 * PUD_SIZE, end: 6 * PUD_SIZE + 4 * P, file: 9, flags: { shared: true } });
    const far = s.mm.addVma({ start: 8 * PUD_SIZE, end: 8 * PUD_SIZE + 4 * P, file: 10, pgoff: 2 ** 52 - 100 });
    s.mm.addVma({ start: END, end: END + P }); // a neighbour: growing in place is impossible
    return { ...s, h, sh, far };
  }

  it('§4.1 every rejected row returns its errno, in kernel order, and changes nothing', () => {
    const { e, mm, h, far } = space();
    const T = e.geometry.taskSize;
    const H = h.start;
    const before = snapshot(e);
    const cases: [number, number, number, object, string, string][] = [
      [A + 1, P, P, { flags: 8 }, 'EINVAL', 'flags other than MAYMOVE/FIXED/DONTUNMAP (before alignment)'],
      [A + 1, P, P, {}, 'EINVAL', 'old_address not page aligned'],
      [A, P, 0, {}, 'EINVAL', 'new_len 0'],
      [A, P, T + P, {}, 'EINVAL', 'new_len > TASK_SIZE'],
      [A, P, P, { ...MOVE, newAddr: T }, 'EINVAL', 'FIXED: new_address > TASK_SIZE − new_len'],
      [A, P, P, { ...MOVE, newAddr: B + 1 }, 'EINVAL', 'FIXED: new_address not aligned'],
      [A, P, P, { fixed: true, newAddr: B }, 'EINVAL', 'FIXED without MAYMOVE'],
      [A, P, P, { dontunmap: true, newAddr: B }, 'EINVAL', 'DONTUNMAP without MAYMOVE'],
      [A, P, 2 * P, { maymove: true, dontunmap: true, newAddr: B }, 'EINVAL', 'DONTUNMAP with old_len != new_len'],
      [A, 4 * P, 4 * P, { ...MOVE, newAddr: A + 2 * P }, 'EINVAL', 'FIXED: old and new ranges overlap'],
      [A, 4 * P, 2 * P, { ...MOVE, newAddr: A - P }, 'EINVAL', 'overlap at the low end'],
      [A, P, P, { ...MOVE, maxMapCount: 10 }, 'ENOMEM', 'FIXED: map_count + 2 ≥ max_map_count − 3 (5 VMAs)'],
      [B, P, 2 * P, { maymove: true }, 'EFAULT', 'no VMA contains old_address'],
      [B, P, P, { ...MOVE, newAddr: 2 * B }, 'EFAULT', 'pure move: no VMA in the range'],
      [A - P, 2 * P, 2 * P, { ...MOVE, newAddr: 2 * B }, 'EFAULT', 'pure move: a gap at the very start'],
      [H + P, P, P, {}, 'EINVAL', 'hugetlb: old_address not huge-page aligned'],
      [H, PMD_SIZE, 2 * PMD_SIZE, { maymove: true }, 'EINVAL', 'hugetlb: growing'],
      [H, PMD_SIZE, PMD_SIZE, { newAddr: P }, 'EINVAL', 'hugetlb: new_address (even unused) not aligned'],
      [H, PMD_SIZE, PMD_SIZE, { maymove: true, dontunmap: true, newAddr: B }, 'EINVAL', 'DONTUNMAP on a VM_DONTEXPAND (hugetlb) VMA'],
      [H, 2 * PMD_SIZE, PMD_SIZE, { ...MOVE }, 'EFAULT', 'resizing move of a VM_DONTEXPAND (hugetlb) VMA'],
      [A, 0, P, { maymove: true }, 'EINVAL', 'old_len 0 on a private mapping'],
      [END - P, 2 * P, 4 * P, { maymove: true }, 'EFAULT', 'old range past the VMA end (not a shrink)'],
      [far.start, 4 * P, 200 * P, { maymove: true }, 'EINVAL', 'growing: pgoff overflow'],
      [END - 4 * P, 4 * P, 8 * P, {}, 'ENOMEM', 'growing, not in place (a neighbour), no MAYMOVE'],
      [A, 4 * P, 8 * P, {}, 'ENOMEM', 'growing a range that does not end at vm_end, no MAYMOVE'],
      [A, 4 * P, 8 * P, { maymove: true, maxMapCount: 8 }, 'ENOMEM', 'moving: map_count ≥ max_map_count − 3'],
    ];
    for (const [addr, oldLen, newLen, opts, errno, what] of cases) {
      expect(mremap(e, mm, addr, oldLen, newLen, opts), what).toEqual({ ok: false, errno });
      expect(snapshot(e), what).toBe(before);
    }
    clean(e);
  });

  it('§4.1 flags may be given as kernel bits', () => {
    const { e, mm } = space();
    expect(mremap(e, mm, A, P, P, { flags: MREMAP_MAYMOVE | MREMAP_FIXED, newAddr: B })).toEqual({ ok: true, value: B });
    expect(mremap(e, mm, B, P, P, { flags: MREMAP_MAYMOVE | MREMAP_DONTUNMAP | 0x10, newAddr: 2 * B })).toEqual({ ok: false, errno: 'EINVAL' });
    clean(e);
  });

  it('§4.1 input the syscall could never see is a PvmwError, nothing changed', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    expectPvmwError(() => mremap(e, mm, 'a' as never, P, P), 'BAD_ADDRESS', 'a');
    expectPvmwError(() => mremap(e, mm, A, 1.5, P), 'BAD_RANGE', '1.5');
    expectPvmwError(() => mremap(e, mm, A, P, P, { mayMove: true } as never), 'BAD_SETTING', 'mayMove');
    expectPvmwError(() => mremap(e, mm, A, P, P, { fixed: 1 } as never), 'BAD_SETTING', 'fixed');
    expectPvmwError(() => mremap(e, mm, A, P, P, { flags: -1 }), 'BAD_SETTING', '-1');
    expect(snapshot(e)).toBe(before);
  });

  it('§4.1 same size without a new address: nothing happens, the address is returned', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    expect(mremap(e, mm, A, 4 * P, 4 * P)).toEqual({ ok: true, value: A });
    expect(snapshot(e)).toBe(before);
  });
});

describe('§4.2 shrink and grow', () => {
  it('§4.2 shrink = unmap of the tail: its pages are unmapped (and freed), the head stays', () => {
    const { e, mm, vma } = setup({}, { end: A + 8 * P });
    const f0 = anon(e, vma, A, 0x1000);
    const f1 = anon(e, vma, A + 6 * P, 0x1001);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.map(A + 6 * P, { entry: { kind: 'present', number: 0x1001, write: true } });
    expect(mremap(e, mm, A, 8 * P, 4 * P)).toEqual({ ok: true, value: A });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, A / P]]);
    expect(leavesIn(e, mm, A, A + 8 * P).map((l) => l.va)).toEqual([A]);
    expect(e.folios.exists(f1)).toBe(false);
    expect(e.folio(f0).mapcount).toBe(1);
    clean(e);
  });

  it('§4.2 grow in place: the VMA is extended (same pgoff, same anon_vma), entries untouched; it merges with a compatible neighbour', () => {
    const { e, mm, vma } = setup({}, { end: A + 4 * P });
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.addVma({ start: A + 8 * P, end: A + 12 * P, flags: { thp: true } }); // pgoff continues: mergeable, unfaulted
    const av = e.rmap.anon.of(vma);
    const raw = at(e, mm, A).raw;
    expect(mremap(e, mm, A, 4 * P, 8 * P)).toEqual({ ok: true, value: A });
    expect(vmas(mm)).toEqual([[A, A + 12 * P, A / P]]);
    expect(e.rmap.anon.of(mm.vmas.find(A)!)).toBe(av);
    expect(at(e, mm, A).raw).toEqual(raw);
    expect(rmapFinds(e, f)).toEqual([A]);
    clean(e);
  });

  it('§4.2 grow that cannot stay in place, with MAYMOVE: moved to a free area found top-down below the mmap base', () => {
    const { e, mm, vma } = setup({}, { end: A + 4 * P });
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.addVma({ start: A + 4 * P, end: A + 8 * P, flags: { exec: true } });
    const r = mremap(e, mm, A, 4 * P, 8 * P, { maymove: true });
    const to = MMAP_BASE - 8 * P;
    expect(r).toEqual({ ok: true, value: to });
    expect(vmas(mm)).toEqual([[A + 4 * P, A + 8 * P, A / P + 4], [to, to + 8 * P, A / P]]);
    expect(at(e, mm, to).entry.number).toBe(0x1000);
    expect(e.folio(f)).toMatchObject({ index: A / P, mapcount: 1 });
    expect(rmapFinds(e, f)).toEqual([to]);
    clean(e);
  });
});

describe('§4.2 move', () => {
  it('§4.2 a PTE range moves: entries verbatim + soft-dirty, folio index, mapcounts, AnonExclusive and tags kept; rmap finds the folio at the new address', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A, 0x1010, 2);
    const g = anon(e, vma, A + 4 * P, 0x1000);
    mm.map(A, { count: 4, entry: { kind: 'present', number: 0x1010, write: true, dirty: true, young: true } });
    mm.map(A + 4 * P, { entry: { kind: 'present', number: 0x1000, write: true } });
    const old = leavesIn(e, mm, A, A + 4 * P).map((l) => l.raw);
    const av = e.rmap.anon.of(vma);
    expect(mremap(e, mm, A, 4 * P, 4 * P, MOVE)).toEqual({ ok: true, value: B });
    expect(vmas(mm)).toEqual([[A + 4 * P, END, A / P + 4], [B, B + 4 * P, A / P]]); // pgoff = old pgoff + offset
    expect(leavesIn(e, mm, A, A + 4 * P)).toEqual([]);
    const moved = leavesIn(e, mm, B, B + 4 * P);
    expect(moved.map((l) => l.raw)).toEqual(old.map((r) => ({ lo: (r.lo | SOFT_DIRTY) >>> 0, hi: r.hi })));
    expect(moved.map((l) => l.kind)).toEqual(['PL', 'PL', 'PL', 'PL']);
    expect(e.folio(f)).toMatchObject({ index: A / P, mapcount: 4, anonVma: av!.id });
    expect(e.page('pfn', 0x1012)).toMatchObject({ anonExclusive: true, tag: 0x102, mapcount: 1 });
    expect(rmapFinds(e, f)).toEqual([B, B + P, B + 2 * P, B + 3 * P]);
    expect(rmapCandidates(e, f).map((c) => c.address)).toEqual([B]);
    expect(e.rmap.anon.of(mm.vmas.find(B)!)).toBe(av); // same anon_vma (AVCs cloned)
    expect(rmapFinds(e, g)).toEqual([A + 4 * P]);
    clean(e);
  });

  it('§4.2 a whole aligned PMD moves as a PMD leaf (+soft-dirty): entire mapcount 1, rmap finds it at the new address', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A + PMD_SIZE, 0x2000, 9);
    mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true, dirty: true } });
    const raw = at(e, mm, A + PMD_SIZE).raw;
    expect(mremap(e, mm, A + PMD_SIZE, PMD_SIZE, PMD_SIZE, MOVE).ok).toBe(true);
    const l = at(e, mm, B);
    expect(l).toMatchObject({ level: 'pmd', kind: 'PMD' });
    expect(l.raw).toEqual({ lo: (raw.lo | SOFT_DIRTY) >>> 0, hi: raw.hi });
    expect(e.folio(f)).toMatchObject({ mapcount: 1, entireMapcount: 1, index: A / P + 512 });
    expect(rmapFinds(e, f)).toEqual([B]);
    expect(leavesIn(e, mm, A, END)).toEqual([]);
    expect(mm.vmas.find(A + PMD_SIZE)).toBeUndefined();
    clean(e);
  });

  it('§4.2 an unaligned destination: the PMD is split into 512 PTEs of the same large folio, each moved + soft-dirty', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A + PMD_SIZE, 0x2000, 9);
    mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true, dirty: true } });
    expect(mremap(e, mm, A + PMD_SIZE, PMD_SIZE, PMD_SIZE, { ...MOVE, newAddr: B + P }).ok).toBe(true);
    const leaves = leavesIn(e, mm, B, B + 2 * PMD_SIZE);
    expect(leaves.length).toBe(512);
    expect(leaves.every((l, i) => l.level === 'pte' && l.kind === 'PL' && l.va === B + P + i * P && l.entry.number === 0x2000 + i)).toBe(true);
    expect(leaves.every((l) => l.entry.bits.softDirty && l.entry.bits.write)).toBe(true);
    expect(e.folio(f)).toMatchObject({ order: 9, mapcount: 512, entireMapcount: 0, index: A / P + 512 });
    expect(e.page('pfn', 0x2000 + 300)).toMatchObject({ mapcount: 1, anonExclusive: true, tag: 0x100 + 300 });
    expect(rmapFinds(e, f)).toEqual(leaves.map((l) => l.va));
    clean(e);
  });

  it('§4.2 a range covering part of a PMD: split first; the covered PTEs move, the rest stay; rmap reaches both halves', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A + PMD_SIZE, 0x2000, 9);
    mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true } });
    expect(mremap(e, mm, A + PMD_SIZE, 16 * P, 16 * P, MOVE).ok).toBe(true);
    expect(leavesIn(e, mm, B, B + PMD_SIZE).length).toBe(16);
    expect(leavesIn(e, mm, A + PMD_SIZE, A + 2 * PMD_SIZE).length).toBe(496);
    expect(e.folio(f)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    const found = rmapFinds(e, f);
    expect(found.length).toBe(512);
    expect(found.filter((a) => a >= B).length).toBe(16);
    clean(e);
  });

  it('§4.2 MREMAP_DONTUNMAP of a whole VMA: the old VMA stays with empty tables, loses VM_LOCKED and its anon_vma links; a later read there sees the zero page', () => {
    const { e, mm, vma } = setup({ locked: true }, { end: A + 4 * P });
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    const av = e.rmap.anon.of(vma);
    const r = mremap(e, mm, A, 4 * P, 4 * P, { maymove: true, dontunmap: true });
    const to = MMAP_BASE - 4 * P;
    expect(r).toEqual({ ok: true, value: to });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, A / P], [to, to + 4 * P, A / P]]);
    const old = mm.vmas.find(A)!;
    expect(old.flags.locked).toBe(false);
    expect(mm.vmas.find(to)!.flags.locked).toBe(true);
    expect(e.rmap.anon.of(old)).toBeNull();
    expect(e.rmap.anon.chain(old)).toEqual([]);
    expect(e.rmap.anon.of(mm.vmas.find(to)!)).toBe(av);
    expect(leavesIn(e, mm, A, A + 4 * P)).toEqual([]);
    expect(rmapFinds(e, f)).toEqual([to]);
    clean(e);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(cpuAccess(e, mm, to, 'read')).toEqual({ outcome: 'ok', tag: 0x100 });
    clean(e);
  });

  it('§4.2 MREMAP_DONTUNMAP of part of a VMA (with FIXED): the old VMA keeps its anon_vma links', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A + P, 0x1000);
    anon(e, vma, A, 0x1001);
    mm.map(A, { entry: { kind: 'present', number: 0x1001, write: true } });
    mm.map(A + P, { entry: { kind: 'present', number: 0x1000, write: true } });
    expect(mremap(e, mm, A + P, P, P, { ...MOVE, dontunmap: true }).ok).toBe(true);
    expect(vmas(mm)).toEqual([[A, END, A / P], [B, B + P, A / P + 1]]);
    expect(e.rmap.anon.of(mm.vmas.find(A)!)).not.toBeNull();
    expect(leavesIn(e, mm, A, END).map((l) => l.va)).toEqual([A]);
    expect(rmapFinds(e, f)).toEqual([B]);
    clean(e);
  });

  it('§4.2 MREMAP_FIXED over an existing mapping: the target is unmapped first', () => {
    const { e, mm, vma } = setup();
    anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    const tv = mm.addVma({ start: B - P, end: B + 2 * P });
    const old = anon(e, tv, B, 0x1005);
    mm.map(B, { entry: { kind: 'present', number: 0x1005, write: true } });
    expect(mremap(e, mm, A, P, P, MOVE)).toEqual({ ok: true, value: B });
    expect(e.folios.exists(old)).toBe(false);
    expect(at(e, mm, B).entry.number).toBe(0x1000);
    expect(vmas(mm)).toEqual([[A + P, END, A / P + 1], [B - P, B, B / P - 1], [B, B + P, A / P], [B + P, B + 2 * P, B / P + 1]]);
    clean(e);
  });

  it('§4.2 MREMAP_FIXED with a smaller new_len: the old tail is unmapped, then new_len moves', () => {
    const { e, mm, vma } = setup();
    const f0 = anon(e, vma, A, 0x1000);
    const f1 = anon(e, vma, A + 3 * P, 0x1001);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.map(A + 3 * P, { entry: { kind: 'present', number: 0x1001, write: true } });
    expect(mremap(e, mm, A, 4 * P, 2 * P, MOVE)).toEqual({ ok: true, value: B });
    expect(e.folios.exists(f1)).toBe(false);
    expect(rmapFinds(e, f0)).toEqual([B]);
    expect(vmas(mm)).toEqual([[A + 4 * P, END, A / P + 4], [B, B + 2 * P, A / P]]);
    clean(e);
  });

  it('§4.2 growing move (MAYMOVE|FIXED): the new VMA has new_len, old_len of page tables move', () => {
    const { e, mm, vma } = setup({}, { end: A + 4 * P });
    mm.addVma({ start: A + 4 * P, end: A + 5 * P, flags: { exec: true } });
    const f = anon(e, vma, A + 3 * P, 0x1000);
    mm.map(A + 3 * P, { entry: { kind: 'present', number: 0x1000, write: true } });
    expect(mremap(e, mm, A, 4 * P, 16 * P, MOVE)).toEqual({ ok: true, value: B });
    expect(vmas(mm)).toEqual([[A + 4 * P, A + 5 * P, A / P + 4], [B, B + 16 * P, A / P]]);
    expect(rmapFinds(e, f)).toEqual([B + 3 * P]);
    clean(e);
  });

  it('§4.1 multi-VMA pure move (FIXED, old_len == new_len): every VMA moves, gaps kept', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const mm = e.createMm();
    const v1 = mm.addVma({ start: A, end: A + 4 * P });
    const v2 = mm.addVma({ start: A + 6 * P, end: A + 10 * P, flags: { exec: true } });
    const f1 = anon(e, v1, A + P, 0x1000);
    const f2 = anon(e, v2, A + 9 * P, 0x1001);
    mm.map(A + P, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.map(A + 9 * P, { entry: { kind: 'present', number: 0x1001, write: true } });
    expect(mremap(e, mm, A + P, 9 * P, 9 * P, MOVE)).toEqual({ ok: true, value: B });
    expect(vmas(mm)).toEqual([[A, A + P, A / P], [B, B + 3 * P, A / P + 1], [B + 5 * P, B + 9 * P, A / P + 6]]);
    expect(rmapFinds(e, f1)).toEqual([B]);
    expect(rmapFinds(e, f2)).toEqual([B + 8 * P]);
    clean(e);
  });

  it('§4.1 old_len 0 on a shared mapping: a second VMA of the same file pages; the old one stays', () => {
    const { e, mm } = setup({ shared: true }, { file: 4, pgoff: 10, end: A + 4 * P });
    const f = e.createFolio({ number: 0x3000, file: 4, index: 12 });
    mm.map(A + 2 * P, { entry: { kind: 'present', number: 0x3000, write: true } });
    expect(mremap(e, mm, A + P, 0, 2 * P, { ...MOVE })).toEqual({ ok: true, value: B });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, 10], [B, B + 2 * P, 11]]);
    expect(rmapCandidates(e, f).map((c) => c.address)).toEqual([A + 2 * P, B + P]);
    expect(rmapFinds(e, f)).toEqual([A + 2 * P]); // nothing moved
    clean(e);
  });

  it('§4.2 step 3: an anonymous VMA that never faulted (no anon_vma) takes pgoff = new_address / 4096', () => {
    const { e, mm } = setup({ write: false }, { end: A + 4 * P });
    writeLeaves(e, mm, [{ va: A, level: 'pte', raw: presentRaw('pte', zeroPages(e).zeroPfn, { user: true, special: true, nx: true }) }]);
    expect(mremap(e, mm, A, 4 * P, 4 * P, MOVE).ok).toBe(true);
    expect(vmas(mm)).toEqual([[B, B + 4 * P, B / P]]);
    expect(at(e, mm, B).kind).toBe('ZP');
    clean(e);
  });

  it('§4.2 a file VMA: pgoff = old pgoff + offset, the folio is found through i_mmap at the new address', () => {
    const { e, mm } = setup({ shared: true }, { file: 2, pgoff: 100 });
    const f = e.createFolio({ number: 0x3000, order: 2, file: 2, index: 104 });
    mm.map(A + 4 * P, { count: 4, entry: { kind: 'present', number: 0x3000, dirty: true, write: true } });
    expect(mremap(e, mm, A + 4 * P, 4 * P, 4 * P, MOVE).ok).toBe(true);
    expect(mm.vmas.find(B)!.pgoff).toBe(104);
    expect(rmapFinds(e, f)).toEqual([B, B + P, B + 2 * P, B + 3 * P]);
    expect(e.folio(f).mapcount).toBe(4);
    clean(e);
  });

  it('§4.2 step 1: in a VM_MERGEABLE VMA KSM pages are unshared before the move; the copy keeps the tag', () => {
    const { e, mm, vma } = setup({ mergeable: true });
    for (const [i, n] of [[0, 0x1000], [1, 0x1001]] as const) {
      anon(e, vma, A + i * P, n);
      e.folios.setTag(n, 0, 1, 0xa1);
      mm.map(A + i * P, { entry: { kind: 'present', number: n, write: true, dirty: true } });
    }
    ksmScan(e);
    ksmScan(e);
    const k = at(e, mm, A).folio!;
    expect(k.flags.ksm).toBe(true);
    expect(mremap(e, mm, A, P, P, MOVE).ok).toBe(true);
    const moved = at(e, mm, B);
    expect(moved.folio!.flags.ksm).toBe(false);
    expect(moved.folio!.id).not.toBe(k.id);
    expect(e.page('pfn', moved.entry.number!)).toMatchObject({ tag: 0xa1, anonExclusive: true, mapcount: 1 });
    expect(rmapFinds(e, moved.folio!.id)).toEqual([B]);
    expect(e.folio(k.id).mapcount).toBe(1); // still mapped at A + P
    clean(e);
  });

  it('§4.2 hugetlb: the huge leaf moves unchanged (move_huge_pte adds no soft-dirty)', () => {
    const { e, mm, vma } = setup({ hugetlb: '2M' }, { end: A + 2 * PMD_SIZE });
    const av = e.rmap.anon.prepare(vma);
    const f = opsState(e).alloc.alloc({ hugetlb: '2M', anonVma: av.id, index: linearPageIndex(vma, A + PMD_SIZE) })!;
    mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    const raw = at(e, mm, A + PMD_SIZE).raw;
    expect(mremap(e, mm, A + PMD_SIZE, PMD_SIZE, PMD_SIZE, MOVE).ok).toBe(true);
    expect(at(e, mm, B)).toMatchObject({ kind: 'HT', level: 'pmd', raw });
    expect(rmapFinds(e, f)).toEqual([B]);
    clean(e);
  });
});

describe('§4.3 per entry kind: moved verbatim + soft-dirty', () => {
  function everything() {
    const s = setup();
    const { e, mm, vma } = s;
    const av = e.rmap.anon.prepare(vma);
    const chunk = e.addDeviceMemory();
    for (let i = 0; i < 12; i++) anon(e, vma, A + i * P, 0x1000 + i);
    anon(e, vma, A + 16 * P, 0x1010, 2);
    e.folios.setAnonExclusive(0x1001, 0, 1, false);
    const dev = (i: number) => e.createFolio({ number: chunk.base + i, anonVma: av.id, index: linearPageIndex(vma, A + (20 + i) * P) });
    dev(0);
    dev(1);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true, dirty: true } }); // P
    mm.map(A + P, { entry: { kind: 'present', number: 0x1001, protnone: true } }); // PN
    writeLeaves(e, mm, [{ va: A + 2 * P, level: 'pte', raw: presentRaw('pte', zeroPages(e).zeroPfn, { user: true, special: true }) }]); // ZP
    mm.map(A + 3 * P, { entry: { kind: 'migration-read', number: 0x1003 } });
    mm.map(A + 4 * P, { entry: { kind: 'migration-read-exclusive', number: 0x1004, young: true } });
    mm.map(A + 5 * P, { entry: { kind: 'migration-write', number: 0x1005, dirty: true } });
    mm.map(A + 6 * P, { entry: { kind: 'device-exclusive', number: 0x1006 } });
    mm.map(A + 7 * P, { entry: { kind: 'swap', swapType: 0, offset: 3 } });
    mm.map(A + 8 * P, { entry: { kind: 'hwpoison', number: 0x1008 } });
    mm.map(A + 9 * P, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(A + 10 * P, { entry: { kind: 'marker', poisoned: true } });
    mm.map(A + 11 * P, { entry: { kind: 'marker', guard: true } });
    mm.map(A + 16 * P, { count: 4, entry: { kind: 'present', number: 0x1010, write: true } }); // PL
    mm.map(A + 20 * P, { entry: { kind: 'device-private-read', number: chunk.base } });
    mm.map(A + 21 * P, { entry: { kind: 'device-private-write', number: chunk.base + 1 } });
    // PMD level: THP, HZP, PMD migration, device-private THP.
    anon(e, vma, A + PMD_SIZE, 0x2000, 9);
    mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true } });
    writeLeaves(e, mm, [{ va: A + 2 * PMD_SIZE, level: 'pmd', raw: presentRaw('pmd', zeroPages(e).hugePfn, { user: true, special: true }) }]);
    anon(e, vma, A + 3 * PMD_SIZE, 0x2200, 9);
    mm.map(A + 3 * PMD_SIZE, { level: 'pmd', entry: { kind: 'migration-write', number: 0x2200, young: true } });
    const dthp = e.createFolio({ number: chunk.base + 512, order: 9, anonVma: av.id, index: linearPageIndex(vma, A + 4 * PMD_SIZE) });
    mm.map(A + 4 * PMD_SIZE, { level: 'pmd', entry: { kind: 'device-private-write', number: chunk.base + 512 } });
    return { ...s, chunk, dthp };
  }

  const softDirty = (l: LeafView) => ({ lo: (l.raw.lo | (l.entry.kind === 'present' ? SOFT_DIRTY : SWP_SOFT_DIRTY)) >>> 0, hi: l.raw.hi });

  it('§4.3 every kind at PTE and PMD level, aligned move: same kinds, raw + soft-dirty, mapcounts unchanged', () => {
    const { e, mm } = everything();
    const before = leavesIn(e, mm, A, END);
    expect([...new Set(before.map((l) => l.kind))].sort()).toEqual(
      ['DP-R', 'DP-W', 'DX', 'HWP', 'HZP', 'MIG-R', 'MIG-RX', 'MIG-W', 'MK-GRD', 'MK-PSN', 'MK-UW', 'P', 'PL', 'PMD', 'PN', 'SWAP', 'ZP'],
    );
    const counts = [...e.folios.all()].map((id) => [id, e.folio(id).mapcount, e.folio(id).entireMapcount]);
    expect(mremap(e, mm, A, 5 * PMD_SIZE, 5 * PMD_SIZE, MOVE)).toEqual({ ok: true, value: B });
    const after = leavesIn(e, mm, B, B + 5 * PMD_SIZE);
    expect(after.map((l) => [l.va - B, l.level, l.kind, l.raw])).toEqual(before.map((l) => [l.va - A, l.level, l.kind, softDirty(l)]));
    expect([...e.folios.all()].map((id) => [id, e.folio(id).mapcount, e.folio(id).entireMapcount])).toEqual(counts);
    expect(leavesIn(e, mm, A, A + 5 * PMD_SIZE)).toEqual([]);
    expect(rmapFinds(e, 0x2000)).toEqual([B + PMD_SIZE]);
    clean(e);
  });

  it('§4.3 unaligned move: HZP → 512 ZP, PMD MIG-W → 512 PTE MIG-W, PMD DP-W → 512 DP-W PTEs (the folios stay large)', () => {
    const { e, mm, chunk, dthp } = everything();
    const to = B + 3 * P;
    expect(mremap(e, mm, A + 2 * PMD_SIZE, 3 * PMD_SIZE, 3 * PMD_SIZE, { ...MOVE, newAddr: to }).ok).toBe(true);
    const kinds = (s: number) => leavesIn(e, mm, s, s + PMD_SIZE);
    const hzp = kinds(to);
    expect(hzp.length).toBe(512);
    expect(hzp.every((l) => l.kind === 'ZP' && l.level === 'pte' && l.entry.bits.softDirty)).toBe(true);
    const mig = kinds(to + PMD_SIZE);
    expect(mig.every((l, i) => l.kind === 'MIG-W' && l.entry.number === 0x2200 + i && l.entry.bits.young && l.entry.bits.softDirty)).toBe(true);
    expect(mig.length).toBe(512);
    const dp = kinds(to + 2 * PMD_SIZE);
    expect(dp.length).toBe(512);
    expect(dp.every((l, i) => l.kind === 'DP-W' && l.entry.number === chunk.base + 512 + i && l.entry.bits.softDirty)).toBe(true);
    expect(e.folio(dthp)).toMatchObject({ order: 9, mapcount: 512, entireMapcount: 0 });
    expect(rmapFinds(e, dthp)).toEqual(dp.map((l) => l.va));
    clean(e);
  });
});
