// mremap moves (kernel-operations.md §4.2 move_vma: copy_vma pgoff, anon_vma links, move_page_tables with whole
// aligned PMDs moved as PMDs and others split, KSM break, MREMAP_DONTUNMAP / FIXED, the multi-VMA pure move;
// §4.3 every entry kind moved verbatim + soft-dirty): entries, mapcounts, folio index, rmap and tags.
import { describe, expect, it } from 'vitest';
import { Engine, PMD_SIZE, linearPageIndex } from '../src/index.js';
import { cpuAccess } from '../src/mm/access.js';
import { ksmScan } from '../src/mm/ksm.js';
import { leavesIn, presentRaw, writeLeaves, zeroPages, type LeafView } from '../src/mm/leaf.js';
import { MMAP_BASE } from '../src/mm/mmap.js';
import { mremap } from '../src/mm/mremap.js';
import { opsState } from '../src/mm/state.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { expectClean, leafAtOrThrow as at, rmapFinds } from './ops-helpers.js';
import { A, B, END, MOVE, P, anon, setup, vmas } from './ops-mremap-helpers.js';

const SOFT_DIRTY = 1 << 11; // present entries
const SWP_SOFT_DIRTY = 1 << 1; // swap-format entries

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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(cpuAccess(e, mm, to, 'read')).toEqual({ outcome: 'ok', tag: 0x100 });
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
  });

  it('§4.2 growing move (MAYMOVE|FIXED): the new VMA has new_len, old_len of page tables move', () => {
    const { e, mm, vma } = setup({}, { end: A + 4 * P });
    mm.addVma({ start: A + 4 * P, end: A + 5 * P, flags: { exec: true } });
    const f = anon(e, vma, A + 3 * P, 0x1000);
    mm.map(A + 3 * P, { entry: { kind: 'present', number: 0x1000, write: true } });
    expect(mremap(e, mm, A, 4 * P, 16 * P, MOVE)).toEqual({ ok: true, value: B });
    expect(vmas(mm)).toEqual([[A + 4 * P, A + 5 * P, A / P + 4], [B, B + 16 * P, A / P]]);
    expect(rmapFinds(e, f)).toEqual([B + 3 * P]);
    expectClean(e);
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
    expectClean(e);
  });

  it('§4.1 old_len 0 on a shared mapping: a second VMA of the same file pages; the old one stays', () => {
    const { e, mm } = setup({ shared: true }, { file: 4, pgoff: 10, end: A + 4 * P });
    const f = e.createFolio({ number: 0x3000, file: 4, index: 12 });
    mm.map(A + 2 * P, { entry: { kind: 'present', number: 0x3000, write: true } });
    expect(mremap(e, mm, A + P, 0, 2 * P, { ...MOVE })).toEqual({ ok: true, value: B });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, 10], [B, B + 2 * P, 11]]);
    expect(rmapCandidates(e, f).map((c) => c.address)).toEqual([A + 2 * P, B + P]);
    expect(rmapFinds(e, f)).toEqual([A + 2 * P]); // nothing moved
    expectClean(e);
  });

  it('§4.2 step 3: an anonymous VMA that never faulted (no anon_vma) takes pgoff = new_address / 4096', () => {
    const { e, mm } = setup({ write: false }, { end: A + 4 * P });
    writeLeaves(e, mm, [{ va: A, level: 'pte', raw: presentRaw('pte', zeroPages(e).zeroPfn, { user: true, special: true, nx: true }) }]);
    expect(mremap(e, mm, A, 4 * P, 4 * P, MOVE).ok).toBe(true);
    expect(vmas(mm)).toEqual([[B, B + 4 * P, B / P]]);
    expect(at(e, mm, B).kind).toBe('ZP');
    expectClean(e);
  });

  it('§4.2 a file VMA: pgoff = old pgoff + offset, the folio is found through i_mmap at the new address', () => {
    const { e, mm } = setup({ shared: true }, { file: 2, pgoff: 100 });
    const f = e.createFolio({ number: 0x3000, order: 2, file: 2, index: 104 });
    mm.map(A + 4 * P, { count: 4, entry: { kind: 'present', number: 0x3000, dirty: true, write: true } });
    expect(mremap(e, mm, A + 4 * P, 4 * P, 4 * P, MOVE).ok).toBe(true);
    expect(mm.vmas.find(B)!.pgoff).toBe(104);
    expect(rmapFinds(e, f)).toEqual([B, B + P, B + 2 * P, B + 3 * P]);
    expect(e.folio(f).mapcount).toBe(4);
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
  });
});
