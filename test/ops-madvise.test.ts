// madvise(2) (kernel-operations.md §7.1 arguments, §7.2 MADV_DONTNEED, §7.3 MADV_FREE per entry, §7.4 flag
// advice, §12.2 tags). Every operation, and every rejected one, leaves the invariants intact; a rejected one
// (refused before any change) leaves the engine exactly as it was.
import { describe, expect, it } from 'vitest';
import { Engine, PvmwError, type EntrySpec, type Mm } from '../src/index.js';
import { ksmScan } from '../src/mm/ksm.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { madvise, type MadviseAdvice } from '../src/mm/madvise.js';
import { opsState } from '../src/mm/state.js';
import { engineSnapshot, expectClean, expectRejected, kindAt, leafAt, place } from './ops-helpers.js';

const P = 4096;
const M2 = 0x200000;
const ANON = 0x400000; // anon VMA [4 MiB, 12 MiB), THP allowed
const FILE = 0x1000000; // shared file VMA of file 7, [16 MiB, 20 MiB)
const HUGE = 0x2000000; // 2M hugetlb VMA [32 MiB, 40 MiB)

function space() {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  zeroPages(e);
  const mm = e.createMm();
  mm.addVma({ start: ANON, end: ANON + 4 * M2, flags: { thp: true } });
  mm.addVma({ start: FILE, end: FILE + 2 * M2, file: 7, flags: { shared: true } });
  mm.addVma({ start: HUGE, end: HUGE + 4 * M2, flags: { hugetlb: '2M' } });
  return { e, mm };
}

/** A second mm mapping `number` at `addr` too (as after fork: its VMA is linked to the parent's anon_vma). */
function alsoMapped(e: Engine, mm: Mm, addr: number, entry: EntrySpec, level: 'pte' | 'pmd' = 'pte'): Mm {
  const child = e.createMm();
  const parent = mm.vmas.find(addr)!;
  const cv = child.addVma({ start: parent.start, end: parent.end, flags: parent.flags });
  e.rmap.anon.fork(cv, parent);
  child.map(addr, { level, entry });
  return child;
}

const adv = (e: Engine, mm: Mm, addr: number, len: number, a: MadviseAdvice) => madvise(e, mm, addr, len, a);
const done = { ok: true, value: 0 };

describe('§7.1 common argument rules', () => {
  it('§7.1 unknown advice, unaligned start, a wrapping length → EINVAL; nothing changed', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x1000, { kind: 'present', write: true });
    expectRejected(e, () => madvise(e, mm, ANON, P, 'MADV_COLD' as MadviseAdvice), 'EINVAL');
    expectRejected(e, () => adv(e, mm, ANON + 1, P, 'MADV_DONTNEED'), 'EINVAL');
    expectRejected(e, () => adv(e, mm, ANON, -1, 'MADV_DONTNEED'), 'EINVAL');
    expect(() => madvise(e, mm, ANON, P, 4 as unknown as MadviseAdvice)).toThrow(PvmwError);
  });

  it('§7.1 len rounding to 0 → 0, nothing changed', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x1000, { kind: 'present', write: true });
    const before = engineSnapshot(e);
    expect(adv(e, mm, ANON, 0, 'MADV_DONTNEED')).toEqual(done);
    expect(engineSnapshot(e)).toBe(before);
  });

  it('§7.1 a hole in the range: the advice is applied to the mapped parts, then ENOMEM', () => {
    const { e, mm } = space();
    const a = place(e, mm, ANON + 4 * M2 - P, 0x1000, { kind: 'present', write: true });
    const f = place(e, mm, FILE, 0x1001, { kind: 'present' });
    expect(adv(e, mm, ANON + 4 * M2 - P, FILE + P - (ANON + 4 * M2 - P), 'MADV_DONTNEED')).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(e.folios.exists(a)).toBe(false);
    expect(e.folio(f).mapcount).toBe(0);
    expect(adv(e, mm, 0x40000000, P, 'MADV_DONTNEED')).toEqual({ ok: false, errno: 'ENOMEM' });
    // Flag advice too: the mapped part changes.
    expect(adv(e, mm, ANON + 4 * M2 - P, 2 * P, 'MADV_DONTFORK')).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(mm.vmas.find(ANON + 4 * M2 - P)!.flags.dontcopy).toBe(true);
    expectClean(e);
  });

  it('§7.1 a per-VMA refusal returns at once; earlier VMAs are already done', () => {
    const { e, mm } = space();
    const locked = mm.addVma({ start: ANON + 4 * M2, end: ANON + 5 * M2, flags: { locked: true } });
    const a = place(e, mm, ANON + 4 * M2 - P, 0x1000, { kind: 'present', write: true });
    const b = place(e, mm, locked.start, 0x1001, { kind: 'present', write: true });
    expect(adv(e, mm, ANON + 4 * M2 - P, 2 * P, 'MADV_DONTNEED')).toEqual({ ok: false, errno: 'EINVAL' });
    expect(e.folios.exists(a)).toBe(false);
    expect(e.folio(b).mapcount).toBe(1);
    expectClean(e);
  });
});

describe('§7.2 MADV_DONTNEED', () => {
  it('§7.2 private anon: the mapping goes and the folio is freed; the VMA stays (§12.2: the next access sees ZERO)', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', write: true, dirty: true });
    e.folios.setTag(f, 0, 1, 0x77);
    expect(adv(e, mm, ANON, P, 'MADV_DONTNEED')).toEqual(done);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    expect(mm.vmas.find(ANON)!.end).toBe(ANON + 4 * M2);
    expectClean(e);
  });

  it('§7.2 file: the mapping goes, the page-cache folio and its tag stay (§12.2: the file content is seen again)', () => {
    const { e, mm } = space();
    const f = place(e, mm, FILE, 0x1000, { kind: 'present', write: true, dirty: true });
    e.folios.setTag(f, 0, 1, 0x99);
    expect(adv(e, mm, FILE, P, 'MADV_DONTNEED')).toEqual(done);
    expect(e.folio(f)).toMatchObject({ mapcount: 0 });
    expect(e.folio(f).flags.dirty).toBe(true);
    expect(e.page('pfn', 0x1000)!.tag).toBe(0x99);
    expectClean(e);
  });

  it('§7.2 a PMD partly covered is split first: the other half stays PTE-mapped', () => {
    const { e, mm } = space();
    const thp = place(e, mm, ANON, 0x2000, { kind: 'present', write: true }, 9, 'pmd');
    expect(adv(e, mm, ANON, 16 * P, 'MADV_DONTNEED')).toEqual(done);
    expect(e.folio(thp)).toMatchObject({ entireMapcount: 0, mapcount: 512 - 16 });
    expect(kindAt(e, mm, ANON + 16 * P)).toBe('PL');
    expectClean(e);
  });

  it('§7.2 markers are not dropped: guard markers and uffd-wp markers of file VMAs survive; anon uffd-wp markers go', () => {
    const { e, mm } = space();
    mm.map(ANON, { entry: { kind: 'marker', guard: true } });
    mm.map(ANON + P, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(FILE, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(FILE + P, { entry: { kind: 'marker', guard: true } });
    expect(adv(e, mm, ANON, 2 * P, 'MADV_DONTNEED')).toEqual(done);
    expect(adv(e, mm, FILE, 2 * P, 'MADV_DONTNEED')).toEqual(done);
    expect([kindAt(e, mm, ANON), kindAt(e, mm, ANON + P), kindAt(e, mm, FILE), kindAt(e, mm, FILE + P)]).toEqual(['MK-GRD', 'NONE', 'MK-UW', 'MK-GRD']);
    expectClean(e);
  });

  it('§7.2 aftermath: device-private pages are freed back to the device, migration entries dropped, swap counts dropped', () => {
    const { e, mm } = space();
    const dev = e.addDeviceMemory();
    const dp = place(e, mm, ANON, dev.base, { kind: 'device-private-write' });
    const mig = place(e, mm, ANON + P, 0x1000, { kind: 'migration-read' });
    const slot = opsState(e).swap.alloc(5);
    mm.map(ANON + 2 * P, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    expect(adv(e, mm, ANON, 3 * P, 'MADV_DONTNEED')).toEqual(done);
    expect(leavesIn(e, mm, ANON, ANON + 3 * P)).toEqual([]);
    expect(e.folios.exists(dp)).toBe(false);
    expect(e.folios.exists(mig)).toBe(true);
    expect(opsState(e).swap.has(slot)).toBe(false);
    expectClean(e);
  });

  it('§7.2 VM_LOCKED → EINVAL for MADV_DONTNEED; MADV_DONTNEED_LOCKED zaps it', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x3000000, end: 0x3010000, flags: { locked: true } });
    const f = place(e, mm, v.start, 0x1000, { kind: 'present', write: true });
    expectRejected(e, () => adv(e, mm, v.start, P, 'MADV_DONTNEED'), 'EINVAL');
    expect(adv(e, mm, v.start, P, 'MADV_DONTNEED_LOCKED')).toEqual(done);
    expect(e.folios.exists(f)).toBe(false);
    expectClean(e);
  });

  it('§7.2 hugetlb: start not huge-page aligned → EINVAL; the end is rounded down to a huge page', () => {
    const { e, mm } = space();
    const a = place(e, mm, HUGE, 0x4000, { kind: 'present', write: true }, 9, 'pmd');
    const b = place(e, mm, HUGE + M2, 0x4200, { kind: 'present', write: true }, 9, 'pmd');
    expectRejected(e, () => adv(e, mm, HUGE + P, M2, 'MADV_DONTNEED'), 'EINVAL');
    expect(adv(e, mm, HUGE, M2 + 8 * P, 'MADV_DONTNEED')).toEqual(done);
    expect(e.folios.exists(a)).toBe(false);
    expect(e.folio(b).mapcount).toBe(1);
    expectClean(e);
  });
});

describe('§7.3 MADV_FREE', () => {
  it('§7.3 only private anonymous VMAs: file and shmem-like (shared file) VMAs, VM_LOCKED and hugetlb → EINVAL', () => {
    const { e, mm } = space();
    const locked = mm.addVma({ start: 0x3000000, end: 0x3010000, flags: { locked: true } });
    expectRejected(e, () => adv(e, mm, FILE, P, 'MADV_FREE'), 'EINVAL');
    expectRejected(e, () => adv(e, mm, locked.start, P, 'MADV_FREE'), 'EINVAL');
    expectRejected(e, () => adv(e, mm, HUGE, M2, 'MADV_FREE'), 'EINVAL');
  });

  it('§7.3 P mapped only here: folio dirty cleared, PTE old and clean, folio lazyfree (swapbacked cleared); §12.2 tag unchanged', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', write: true, dirty: true, young: true });
    e.folios.setFlags(f, { dirty: true, swapbacked: true });
    e.folios.setTag(f, 0, 1, 0x42);
    expect(adv(e, mm, ANON, P, 'MADV_FREE')).toEqual(done);
    const l = leafAt(e, mm, ANON)!;
    expect(l.kind).toBe('P');
    expect(l.entry.present).toMatchObject({ young: false, dirty: false, write: true });
    expect(e.folio(f).flags).toMatchObject({ dirty: false, swapbacked: false });
    expect(e.folio(f).mapcount).toBe(1);
    expect(e.page('pfn', 0x1000)!.tag).toBe(0x42);
    expectClean(e);
  });

  it('§7.3 a dirty folio mapped by another process too is skipped (PTE and folio unchanged)', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', dirty: true });
    e.folios.setFlags(f, { dirty: true, swapbacked: true });
    alsoMapped(e, mm, ANON, { kind: 'present', number: 0x1000 });
    expect(adv(e, mm, ANON, P, 'MADV_FREE')).toEqual(done);
    expect(leafAt(e, mm, ANON)!.entry.present!.dirty).toBe(true);
    expect(e.folio(f).flags).toMatchObject({ dirty: true, swapbacked: true });
    expectClean(e);
  });

  it('§7.3 a clean folio is made lazyfree even if mapped elsewhere (the mapcount test guards only dirty folios)', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', young: true });
    e.folios.setFlags(f, { dirty: false, swapbacked: true });
    alsoMapped(e, mm, ANON, { kind: 'present', number: 0x1000 });
    expect(adv(e, mm, ANON, P, 'MADV_FREE')).toEqual(done);
    expect(leafAt(e, mm, ANON)!.entry.present!.young).toBe(false);
    expect(e.folio(f).flags.swapbacked).toBe(false);
    expectClean(e);
  });

  it('§7.3 PL of a large folio wholly in the range: lazyfree; partly in the range, mapped only here: split (§6.2), the covered pages lazyfree', () => {
    const { e, mm } = space();
    const whole = place(e, mm, ANON, 0x1000, { kind: 'present', write: true, dirty: true }, 2);
    const part = place(e, mm, ANON + 4 * P, 0x1010, { kind: 'present', write: true, dirty: true }, 2);
    for (const f of [whole, part]) e.folios.setFlags(f, { dirty: true, swapbacked: true });
    e.folios.setTag(part, 0, 4, 0x42); // not ZERO: the split keeps the pages (a ZERO page would become ZP)
    expect(adv(e, mm, ANON, 6 * P, 'MADV_FREE')).toEqual(done);
    expect(e.folio(whole).flags).toMatchObject({ dirty: false, swapbacked: false });
    expect(leavesIn(e, mm, ANON, ANON + 4 * P).every((l) => !l.entry.present!.dirty)).toBe(true);
    // The part folio is now four order-0 folios: the two in the range lazyfree, the two beyond it untouched.
    for (let i = 0; i < 4; i++) expect(e.folio(part + i)).toMatchObject({ order: 0, mapcount: 1, index: e.folio(part).index + i });
    for (const i of [0, 1]) expect(e.folio(part + i).flags).toMatchObject({ dirty: false, swapbacked: false });
    for (const i of [2, 3]) expect(e.folio(part + i).flags).toMatchObject({ dirty: true, swapbacked: true });
    expect(leavesIn(e, mm, ANON + 4 * P, ANON + 6 * P).every((l) => l.kind === 'P' && !l.entry.present!.dirty)).toBe(true);
    expect(leavesIn(e, mm, ANON + 6 * P, ANON + 8 * P).every((l) => l.kind === 'P' && l.entry.present!.dirty)).toBe(true);
    expect(e.page('pfn', 0x1013)!.tag).toBe(0x42);
    expectClean(e);
  });

  it('§7.3 SWAP: the swap entry is freed and the PTE cleared', () => {
    const { e, mm } = space();
    const slot = opsState(e).swap.alloc(3);
    mm.map(ANON, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    expect(adv(e, mm, ANON, P, 'MADV_FREE')).toEqual(done);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(opsState(e).swap.has(slot)).toBe(false);
    expectClean(e);
  });

  it('§7.3 HWP and MK-PSN: cleared', () => {
    const { e, mm } = space();
    e.createFolio({ number: 0x1000 });
    mm.map(ANON, { entry: { kind: 'hwpoison', number: 0x1000 } });
    mm.map(ANON + P, { entry: { kind: 'marker', poisoned: true } });
    expect(adv(e, mm, ANON, 2 * P, 'MADV_FREE')).toEqual(done);
    expect(leavesIn(e, mm, ANON, ANON + 2 * P)).toEqual([]);
    expectClean(e);
  });

  it('§7.3 other non-present entries (MIG, DP, DX, MK-UW, MK-GRD) and ZP are untouched', () => {
    const { e, mm } = space();
    const dev = e.addDeviceMemory();
    place(e, mm, ANON, 0x1000, { kind: 'migration-write' });
    place(e, mm, ANON + P, dev.base, { kind: 'device-private-read' });
    place(e, mm, ANON + 2 * P, 0x1001, { kind: 'device-exclusive' });
    mm.map(ANON + 3 * P, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(ANON + 4 * P, { entry: { kind: 'marker', guard: true } });
    mm.map(ANON + 5 * P, { entry: { kind: 'present', number: zeroPages(e).zeroPfn, special: true, young: true } });
    const before = engineSnapshot(e);
    expect(adv(e, mm, ANON, 6 * P, 'MADV_FREE')).toEqual(done);
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§7.3 PMD wholly in the range and mapped only here: folio dirty cleared, PMD old and clean, lazyfree', () => {
    const { e, mm } = space();
    const thp = place(e, mm, ANON, 0x2000, { kind: 'present', write: true, dirty: true, young: true }, 9, 'pmd');
    e.folios.setFlags(thp, { dirty: true, swapbacked: true });
    expect(adv(e, mm, ANON, M2, 'MADV_FREE')).toEqual(done);
    const l = leafAt(e, mm, ANON)!;
    expect([l.kind, l.entry.present!.dirty, l.entry.present!.young]).toEqual(['PMD', false, false]);
    expect(e.folio(thp).flags).toMatchObject({ dirty: false, swapbacked: false });
    expectClean(e);
  });

  it('§7.3 PMD partly covered, mapped only here: the folio is split (§6.2) and the covered half made lazyfree', () => {
    const { e, mm } = space();
    const part = place(e, mm, ANON, 0x2000, { kind: 'present', dirty: true }, 9, 'pmd');
    e.folios.setFlags(part, { dirty: true, swapbacked: true });
    e.folios.setTag(part, 0, 512, 0x77);
    expect(adv(e, mm, ANON + M2 / 2, M2 / 2, 'MADV_FREE')).toEqual(done);
    const l = leavesIn(e, mm, ANON, ANON + M2);
    expect(l).toHaveLength(512);
    expect(l.every((x) => x.kind === 'P' && x.level === 'pte')).toBe(true);
    for (let i = 0; i < 512; i++) {
      expect(e.folio(part + i).flags).toMatchObject(i < 256 ? { dirty: true, swapbacked: true } : { dirty: false, swapbacked: false });
      expect(l[i].entry.present!.dirty).toBe(i < 256);
    }
    expectClean(e);
  });

  it('§7.3 PMD skipped: mapped by another process (even partly covered), HZP, PMD migration entry', () => {
    const { e, mm } = space();
    const shared = place(e, mm, ANON + M2, 0x2200, { kind: 'present', dirty: true }, 9, 'pmd');
    alsoMapped(e, mm, ANON + M2, { kind: 'present', number: 0x2200 }, 'pmd');
    mm.map(ANON + 2 * M2, { level: 'pmd', entry: { kind: 'present', number: zeroPages(e).hugePfn, special: true } });
    place(e, mm, ANON + 3 * M2, 0x2400, { kind: 'migration-write' }, 9, 'pmd');
    e.folios.setFlags(shared, { dirty: true, swapbacked: true });
    const before = engineSnapshot(e);
    expect(adv(e, mm, ANON + M2 + M2 / 2, 3 * M2 - M2 / 2, 'MADV_FREE')).toEqual(done);
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });
});

describe('§7.4 flag advice', () => {
  const flagsOf = (mm: Mm) => mm.vmas.all().map((v) => [v.start, v.end, v.pgoff, v.flags.thp, v.flags.dontcopy, v.flags.wipeonfork, v.flags.mergeable]);

  it('§7.4 MADV_NOHUGEPAGE on the middle splits the VMA (pgoffs §2.2) and changes no mapping; MADV_HUGEPAGE merges it back', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x2000, { kind: 'present', write: true }, 9, 'pmd');
    place(e, mm, ANON + M2 + P, 0x1000, { kind: 'present', write: true });
    const leaves = () => leavesIn(e, mm, ANON, ANON + 4 * M2).map((l) => [l.va, l.raw]);
    const before = leaves();
    expect(adv(e, mm, ANON + M2, M2, 'MADV_NOHUGEPAGE')).toEqual(done);
    expect(flagsOf(mm).slice(0, 3)).toEqual([
      [ANON, ANON + M2, ANON / P, true, false, false, false],
      [ANON + M2, ANON + 2 * M2, (ANON + M2) / P, false, false, false, false],
      [ANON + 2 * M2, ANON + 4 * M2, (ANON + 2 * M2) / P, true, false, false, false],
    ]);
    expect(leaves()).toEqual(before);
    expectClean(e);
    expect(adv(e, mm, ANON + M2, M2, 'MADV_HUGEPAGE')).toEqual(done);
    expect(flagsOf(mm)[0]).toEqual([ANON, ANON + 4 * M2, ANON / P, true, false, false, false]);
    expect(leaves()).toEqual(before);
    expectClean(e);
  });

  it('§7.4 advice that changes nothing splits nothing', () => {
    const { e, mm } = space();
    expect(adv(e, mm, ANON + M2, P, 'MADV_HUGEPAGE')).toEqual(done);
    expect(adv(e, mm, ANON + M2, P, 'MADV_DOFORK')).toEqual(done);
    expect(mm.vmas.size).toBe(3);
  });

  it('§7.4 MADV_DONTFORK / MADV_DOFORK set and clear VM_DONTCOPY (any VMA kind)', () => {
    const { e, mm } = space();
    expect(adv(e, mm, FILE, 2 * M2, 'MADV_DONTFORK')).toEqual(done);
    expect(mm.vmas.find(FILE)!.flags.dontcopy).toBe(true);
    expect(adv(e, mm, FILE, P, 'MADV_DOFORK')).toEqual(done);
    expect([mm.vmas.find(FILE)!.flags.dontcopy, mm.vmas.find(FILE + P)!.flags.dontcopy, mm.vmas.find(FILE + P)!.pgoff]).toEqual([false, true, 1]);
    expectClean(e);
  });

  it('§7.4 MADV_WIPEONFORK: EINVAL on file or shared VMAs; sets VM_WIPEONFORK on private anon; MADV_KEEPONFORK clears it', () => {
    const { e, mm } = space();
    const shared = mm.addVma({ start: 0x3000000, end: 0x3010000, file: 0x8000_0000, flags: { shared: true } });
    expectRejected(e, () => adv(e, mm, FILE, P, 'MADV_WIPEONFORK'), 'EINVAL');
    expectRejected(e, () => adv(e, mm, shared.start, P, 'MADV_WIPEONFORK'), 'EINVAL');
    expect(adv(e, mm, ANON, 4 * M2, 'MADV_WIPEONFORK')).toEqual(done);
    expect(mm.vmas.find(ANON)!.flags.wipeonfork).toBe(true);
    expect(adv(e, mm, ANON, 4 * M2, 'MADV_KEEPONFORK')).toEqual(done);
    expect(mm.vmas.find(ANON)!.flags.wipeonfork).toBe(false);
    expectClean(e);
  });

  it('§7.4/§8 MADV_MERGEABLE sets VM_MERGEABLE; a KSM-incompatible (shared, hugetlb) VMA is left alone without error', () => {
    const { e, mm } = space();
    expect(adv(e, mm, ANON, 4 * M2, 'MADV_MERGEABLE')).toEqual(done);
    expect(mm.vmas.find(ANON)!.flags.mergeable).toBe(true);
    expect(adv(e, mm, FILE, P, 'MADV_MERGEABLE')).toEqual(done);
    expect(adv(e, mm, HUGE, P, 'MADV_MERGEABLE')).toEqual(done);
    expect(mm.vmas.find(FILE)!.flags.mergeable || mm.vmas.find(HUGE)!.flags.mergeable).toBe(false);
    expect(mm.vmas.size).toBe(3);
    expectClean(e);
  });

  it('§7.4/§8.3 MADV_UNMERGEABLE unshares the KSM pages of the range (private copies, same tags), then clears VM_MERGEABLE', () => {
    const { e, mm } = space();
    expect(adv(e, mm, ANON, 4 * M2, 'MADV_MERGEABLE')).toEqual(done);
    for (const [i, n] of [0x1000, 0x1001].entries()) {
      const f = place(e, mm, ANON + i * P, n, { kind: 'present', write: true, dirty: true });
      e.folios.setTag(f, 0, 1, 0x5a);
    }
    ksmScan(e, { rounds: 3 });
    const ksmBefore = [ANON, ANON + P].map((a) => leafAt(e, mm, a)!.folio!.flags.ksm);
    expect(adv(e, mm, ANON, 2 * P, 'MADV_UNMERGEABLE')).toEqual(done);
    for (const a of [ANON, ANON + P]) {
      const l = leafAt(e, mm, a)!;
      expect(l.folio!.flags.ksm).toBe(false);
      expect(e.page('pfn', l.entry.number!)!.tag).toBe(0x5a);
    }
    expect(ksmBefore).toEqual([true, true]);
    expect(mm.vmas.find(ANON)!.flags.mergeable).toBe(false);
    expect(mm.vmas.find(ANON + 2 * P)!.flags.mergeable).toBe(true);
    expectClean(e);
  });

  it('§7.4 a hugetlb VMA refuses an unaligned split → EINVAL, nothing changed', () => {
    const { e, mm } = space();
    expectRejected(e, () => adv(e, mm, HUGE + P, P, 'MADV_DONTFORK'), 'EINVAL');
    expectRejected(e, () => adv(e, mm, HUGE, P, 'MADV_DONTFORK'), 'EINVAL');
    expect(adv(e, mm, HUGE, M2, 'MADV_DONTFORK')).toEqual(done);
    expect(flagsOf(mm).filter((v) => (v[0] as number) >= HUGE).map((v) => [v[0], v[1], v[4]])).toEqual([[HUGE, HUGE + M2, true], [HUGE + M2, HUGE + 4 * M2, false]]);
    expectClean(e);
  });

  it('§7.4/§2.2 a split at map_count ≥ max_map_count → ENOMEM, nothing changed', () => {
    const { e, mm } = space();
    expectRejected(e, () => madvise(e, mm, ANON + M2, P, 'MADV_DONTFORK', { maxMapCount: 4 }), 'ENOMEM');
    expect(madvise(e, mm, ANON + M2, P, 'MADV_DONTFORK', { maxMapCount: 5 })).toEqual(done);
    expect(mm.vmas.size).toBe(5);
    expectClean(e);
  });
});
