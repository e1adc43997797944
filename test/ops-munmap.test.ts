// mmap(2) placement and MAP_FIXED, munmap(2) and exit (kernel-operations.md §2.1 arguments, §2.2 splits, §2.3
// procedure and exit_mmap, §12.2 tags). The invariants hold after every operation, and a rejected one leaves the
// engine exactly as it was. Zap per entry kind (§2.4/§2.5) is in ops-zap.test.ts.
import { describe, expect, it } from 'vitest';
import { Engine, PvmwError } from '../src/index.js';
import { zeroPages } from '../src/mm/leaf.js';
import { MMAP_BASE, mmap, type MmapRequest } from '../src/mm/mmap.js';
import { exitMmap, munmap } from '../src/mm/munmap.js';
import { opsState } from '../src/mm/state.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { engineSnapshot, expectClean, expectRejected, kindAt, place } from './ops-helpers.js';
import { ANON, FILE, M2, P, space } from './ops-munmap-helpers.js';

describe('§2.1 munmap arguments', () => {
  it('§2.1 start not 4 KiB aligned → EINVAL, nothing changed', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x1000, { kind: 'present', write: true });
    expectRejected(e, () => munmap(e, mm, ANON + 1, P), 'EINVAL');
  });

  it('§2.1 start > TASK_SIZE or len > TASK_SIZE − start → EINVAL', () => {
    const { e, mm } = space();
    const task = e.geometry.taskSize;
    expectRejected(e, () => munmap(e, mm, task + P, P), 'EINVAL');
    expectRejected(e, () => munmap(e, mm, ANON, task - ANON + 1), 'EINVAL');
    expectRejected(e, () => munmap(e, mm, ANON, -P), 'EINVAL');
  });

  it('§2.1 len == 0 → EINVAL', () => {
    const { e, mm } = space();
    expectRejected(e, () => munmap(e, mm, ANON, 0), 'EINVAL');
  });

  it('§2.1 no VMA in the range → 0, nothing happens', () => {
    const { e, mm } = space();
    const before = engineSnapshot(e);
    expect(munmap(e, mm, 0x40000000, 16 * P)).toEqual({ ok: true, value: 0 });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§2.1 a range with holes spanning several VMAs: success, only the mapped parts go; len rounds up to pages', () => {
    const { e, mm } = space();
    const a = place(e, mm, ANON + 4 * M2 - P, 0x1000, { kind: 'present', write: true });
    const f = place(e, mm, FILE, 0x1001, { kind: 'present' });
    expect(munmap(e, mm, ANON + 4 * M2 - P, FILE - ANON - 4 * M2 + P + 1)).toEqual({ ok: true, value: 0 });
    expect(mm.vmas.all().map((v) => [v.start, v.end, v.pgoff])).toEqual([[ANON, ANON + 4 * M2 - P, ANON / P], [FILE + P, FILE + 2 * M2, 1]]);
    expect(e.folios.exists(a)).toBe(false);
    expect(e.folio(f).mapcount).toBe(0);
    expectClean(e);
  });

  it('§2.1 a range strictly inside one VMA at map_count ≥ max_map_count → ENOMEM; below it, success', () => {
    const { e, mm } = space();
    expectRejected(e, () => munmap(e, mm, ANON + M2, P, { maxMapCount: 2 }), 'ENOMEM');
    expect(munmap(e, mm, ANON + M2, P, { maxMapCount: 3 }).ok).toBe(true);
    expect(mm.vmas.size).toBe(3);
    // Unmapping a VMA's head needs one split only: no map_count check.
    expect(munmap(e, mm, ANON, P, { maxMapCount: 3 }).ok).toBe(true);
    expectClean(e);
  });

  it('§2.1 a hugetlb VMA refuses a split at an unaligned start or end → EINVAL, nothing changed (no split of the other end either)', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x2000000, end: 0x2800000, flags: { hugetlb: '2M' } });
    expectRejected(e, () => munmap(e, mm, 0x2000000 + P, M2), 'EINVAL');
    expectRejected(e, () => munmap(e, mm, FILE + M2, 0x2000000 - FILE - M2 + P), 'EINVAL');
    expect(munmap(e, mm, 0x2200000, M2).ok).toBe(true);
    expect(mm.vmas.all().filter((v) => v.flags.hugetlb).map((v) => [v.start, v.end, v.pgoff])).toEqual([[0x2000000, 0x2200000, 0x2000], [0x2400000, 0x2800000, 0x2400]]);
    expectClean(e);
  });

  it('§2.1 (D7) an address that is not a number is a PvmwError, not an errno', () => {
    const { e, mm } = space();
    expect(() => munmap(e, mm, 'x' as unknown as number, P)).toThrow(PvmwError);
    expect(() => munmap(e, mm, ANON, 1.5)).toThrow(PvmwError);
  });
});

describe('§2.2/§2.3 partial unmap', () => {
  it('§2.2 unmapping the middle of an anon VMA leaves two VMAs: low keeps pgoff, high gets pgoff + delta; both keep the anon_vma', () => {
    const { e, mm } = space();
    const lo = place(e, mm, ANON, 0x1000, { kind: 'present', write: true });
    const hi = place(e, mm, ANON + 3 * M2, 0x1001, { kind: 'present', write: true });
    expect(munmap(e, mm, ANON + M2, M2).ok).toBe(true);
    const [a, b] = mm.vmas.all();
    expect([a.start, a.end, a.pgoff]).toEqual([ANON, ANON + M2, ANON / P]);
    expect([b.start, b.end, b.pgoff]).toEqual([ANON + 2 * M2, ANON + 4 * M2, (ANON + 2 * M2) / P]);
    expect(e.rmap.anon.of(a)).toBe(e.rmap.anon.of(b));
    expect(rmapCandidates(e, hi).map((c) => c.vma.start)).toEqual([ANON + 2 * M2]);
    expect(rmapCandidates(e, lo).map((c) => c.vma.start)).toEqual([ANON]);
    expectClean(e);
  });

  it('§2.2 unmapping the middle of a file VMA: high pgoff = pgoff + delta, both halves in i_mmap', () => {
    const { e, mm } = space();
    const f = place(e, mm, FILE + 0x10 * P, 0x1000, { kind: 'present' });
    expect(munmap(e, mm, FILE + 4 * P, 4 * P).ok).toBe(true);
    const [, a, b] = mm.vmas.all();
    expect([a.pgoff, b.pgoff, b.start]).toEqual([0, 8, FILE + 8 * P]);
    expect(e.rmap.iMmap.has(a) && e.rmap.iMmap.has(b)).toBe(true);
    expect(rmapCandidates(e, f).map((c) => [c.vma.start, c.address])).toEqual([[FILE + 8 * P, FILE + 0x10 * P]]);
    expectClean(e);
  });

  it('§2.2 rule 3 / §2.5: unmapping half of a PMD-mapped THP leaves a PTE-mapped THP with the other half', () => {
    const { e, mm } = space();
    const thp = place(e, mm, ANON + M2, 0x2000, { kind: 'present', write: true, dirty: true }, 9, 'pmd');
    e.folios.setAnonExclusive(thp, 0, 1, true);
    expect(munmap(e, mm, ANON + M2, M2 / 2).ok).toBe(true);
    const f = e.folio(thp);
    expect([f.order, f.entireMapcount, f.mapcount]).toEqual([9, 0, 256]);
    expect(kindAt(e, mm, ANON + M2)).toBe('NONE');
    expect(kindAt(e, mm, ANON + M2 + M2 / 2)).toBe('PL');
    expect(e.page('pfn', 0x2000 + 100)!.mapcount).toBe(0);
    expect(e.page('pfn', 0x2000 + 300)).toMatchObject({ mapcount: 1, anonExclusive: true });
    expect(mm.vmas.find(ANON + M2 + M2 / 2)!.pgoff).toBe((ANON + M2 + M2 / 2) / P);
    // The rest goes too: the folio is freed.
    expect(munmap(e, mm, ANON + M2 + M2 / 2, M2 / 2).ok).toBe(true);
    expect(e.folios.exists(thp)).toBe(false);
    expectClean(e);
  });

  it('§2.5/§6.1 step 1: unmapping half of a file THP PMD clears the whole PMD; the folio stays in the page cache, dirty', () => {
    const { e, mm } = space();
    const thp = place(e, mm, FILE, 0x2000, { kind: 'present', write: true, dirty: true }, 9, 'pmd');
    expect(munmap(e, mm, FILE, M2 / 2).ok).toBe(true);
    expect(kindAt(e, mm, FILE + M2 / 2)).toBe('NONE');
    expect(e.folio(thp)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.folio(thp).flags.dirty).toBe(true);
    expectClean(e);
  });

  it('§2.3 step 3: page tables that emptied are freed; step 4: the last VMA of an anon_vma frees it', () => {
    const { e, mm } = space();
    place(e, mm, ANON + 5 * P, 0x1000, { kind: 'present', write: true });
    const av = e.rmap.anon.of(mm.vmas.find(ANON)!)!;
    const tablesBefore = e.memoryUsage().tables;
    expect(munmap(e, mm, ANON, 4 * M2).ok).toBe(true);
    expect(mm.stats().leaves.pte).toBe(0);
    expect(e.memoryUsage().tables).toBeLessThan(tablesBefore);
    expect(e.rmap.anon.get(av.id)).toBeUndefined();
    expectClean(e);
  });
});

describe('§2.3 process exit', () => {
  it('§2.3 exit_mmap zaps every VMA (folios freed, swap counts dropped, shared folios kept) and frees the mm', () => {
    const { e, mm } = space();
    const a = place(e, mm, ANON, 0x1000, { kind: 'present', write: true });
    const thp = place(e, mm, ANON + M2, 0x2000, { kind: 'present', write: true }, 9, 'pmd');
    const file = place(e, mm, FILE, 0x1001, { kind: 'present', dirty: true });
    const shared = place(e, mm, ANON + 2 * M2, 0x1002, { kind: 'present' });
    const child = e.createMm();
    const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
    e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
    child.map(ANON + 2 * M2, { entry: { kind: 'present', number: 0x1002 } });
    const slot = opsState(e).swap.alloc(1);
    mm.map(ANON + 3 * M2, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    mm.map(ANON + 3 * M2 + P, { entry: { kind: 'marker', guard: true } });
    exitMmap(e, mm);
    expect(e.allMms().map((m) => m.id)).toEqual([child.id]);
    expect(e.folios.exists(a) || e.folios.exists(thp)).toBe(false);
    expect(e.folio(file)).toMatchObject({ mapcount: 0 });
    expect(e.folio(file).flags.dirty).toBe(true);
    expect(e.folio(shared).mapcount).toBe(1);
    expect(opsState(e).swap.has(slot)).toBe(false);
    expectClean(e);
  });
});

describe('mmap (do_mmap; MAP_FIXED unmaps first as §2.3; merging §2.2)', () => {
  const rw = { read: true, write: true };
  const anonReq = (len: number, more: Partial<MmapRequest> = {}): MmapRequest => ({ addr: 0, len, prot: rw, shared: false, ...more });
  const fresh = () => {
    const e = new Engine({ ramPages: 1 << 16 });
    zeroPages(e);
    return { e, mm: e.createMm() };
  };

  it('private anonymous: top-down below the mmap base (0x7ffff7fff000), pgoff = addr / 4096, flags from prot', () => {
    const { e, mm } = fresh();
    expect(MMAP_BASE).toBe(0x7ffff7fff000);
    const a = mmap(e, mm, anonReq(3 * P));
    expect(a).toEqual({ ok: true, value: MMAP_BASE - 3 * P });
    const b = mmap(e, mm, anonReq(P, { prot: { read: true } }));
    expect(b).toEqual({ ok: true, value: MMAP_BASE - 4 * P });
    const v = mm.vmas.find(MMAP_BASE - 3 * P)!;
    expect(v).toMatchObject({ anon: true, pgoff: (MMAP_BASE - 3 * P) / P });
    expect(v.flags).toMatchObject({ read: true, write: true, exec: false, shared: false, mayWrite: true, hugetlb: null });
    expect(mm.vmas.find(MMAP_BASE - 4 * P)!.flags.write).toBe(false);
    expectClean(e);
  });

  it('a private anonymous length that is a multiple of 2 MiB is placed 2 MiB aligned (THP alignment)', () => {
    const { e, mm } = fresh();
    const r = mmap(e, mm, anonReq(2 * M2));
    expect(r.ok && r.value % M2).toBe(0);
    expect(r.ok && r.value + 2 * M2).toBeLessThanOrEqual(MMAP_BASE);
  });

  it('a free hint is taken; an occupied one is not; len 0 → EINVAL', () => {
    const { e, mm } = fresh();
    expect(mmap(e, mm, anonReq(P, { addr: 0x5000_0000 }))).toEqual({ ok: true, value: 0x5000_0000 });
    const r = mmap(e, mm, anonReq(P, { addr: 0x5000_0000 }));
    expect(r.ok && r.value).not.toBe(0x5000_0000);
    expectRejected(e, () => mmap(e, mm, anonReq(0)), 'EINVAL');
    expectClean(e);
  });

  it('adjacent compatible anonymous mappings merge into one VMA; different protections do not', () => {
    const { e, mm } = fresh();
    mmap(e, mm, anonReq(P, { addr: 0x5000_0000, fixed: true }));
    mmap(e, mm, anonReq(P, { addr: 0x5000_1000, fixed: true }));
    mmap(e, mm, anonReq(P, { addr: 0x5000_2000, fixed: true, prot: { read: true } }));
    expect(mm.vmas.all().map((v) => [v.start, v.end])).toEqual([[0x5000_0000, 0x5000_2000], [0x5000_2000, 0x5000_3000]]);
    expectClean(e);
  });

  it('MAP_FIXED over existing mappings unmaps them first (§2.3: folio freed, VMA split); unaligned → EINVAL; beyond TASK_SIZE → ENOMEM', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON + M2, 0x1000, { kind: 'present', write: true });
    expect(mmap(e, mm, anonReq(M2, { addr: ANON + M2, fixed: true, prot: { read: true } }))).toEqual({ ok: true, value: ANON + M2 });
    expect(e.folios.exists(f)).toBe(false);
    expect(mm.vmas.all().slice(0, 3).map((v) => [v.start, v.end, v.flags.write])).toEqual([[ANON, ANON + M2, true], [ANON + M2, ANON + 2 * M2, false], [ANON + 2 * M2, ANON + 4 * M2, true]]);
    expectRejected(e, () => mmap(e, mm, anonReq(P, { addr: ANON + 1, fixed: true })), 'EINVAL');
    expectRejected(e, () => mmap(e, mm, anonReq(2 * P, { addr: e.geometry.taskSize - P, fixed: true })), 'ENOMEM');
    expectClean(e);
  });

  it('MAP_FIXED_NOREPLACE over an existing mapping → EEXIST, nothing changed', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x1000, { kind: 'present' });
    expectRejected(e, () => mmap(e, mm, anonReq(P, { addr: ANON, fixed: 'noreplace' })), 'EEXIST');
  });

  it('MAP_FIXED over a hugetlb VMA at an unaligned address: the refused split → EINVAL, nothing changed', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x2000000, end: 0x2400000, flags: { hugetlb: '2M' } });
    expectRejected(e, () => mmap(e, mm, anonReq(P, { addr: 0x2000000 + P, fixed: true })), 'EINVAL');
  });

  it('shared anonymous (shmem): a file VMA of a fresh file id at pgoff 0, found through i_mmap', () => {
    const { e, mm } = fresh();
    const a = mmap(e, mm, anonReq(4 * P, { shared: true }));
    const b = mmap(e, mm, anonReq(4 * P, { shared: true }));
    if (!a.ok || !b.ok) throw new Error('mmap failed');
    const va = mm.vmas.find(a.value)!;
    const vb = mm.vmas.find(b.value)!;
    expect(va).toMatchObject({ anon: false, pgoff: 0 });
    expect(va.flags).toMatchObject({ shared: true, mayWrite: true });
    expect(va.file).not.toBe(vb.file);
    const f = e.createFolio({ number: 0x3000, file: va.file!, index: 2 });
    mm.map(a.value + 2 * P, { entry: { kind: 'present', number: 0x3000, write: true } });
    expect(rmapCandidates(e, f).map((c) => c.address)).toEqual([a.value + 2 * P]);
    expectClean(e);
  });

  it('a shared mapping of a read-only file: PROT_WRITE → EACCES; read-only: VM_SHARED and VM_MAYWRITE cleared', () => {
    const { e, mm } = fresh();
    const req = { addr: 0, len: 4 * P, shared: true, file: 9, pgoff: 4, fileWritable: false };
    expectRejected(e, () => mmap(e, mm, { ...req, prot: rw }), 'EACCES');
    const r = mmap(e, mm, { ...req, prot: { read: true } });
    const v = mm.vmas.find(r.ok ? r.value : -1)!;
    expect(v).toMatchObject({ file: 9, pgoff: 4 });
    expect(v.flags).toMatchObject({ shared: false, mayWrite: false });
    const w = mmap(e, mm, { ...req, fileWritable: true, prot: rw });
    expect(mm.vmas.find(w.ok ? w.value : -1)!.flags).toMatchObject({ shared: true, mayWrite: true });
    expectClean(e);
  });

  it('MAP_HUGETLB: length rounded up to the huge page, address aligned; fixed unaligned → EINVAL; hugetlbfs file with unaligned pgoff or length → EINVAL', () => {
    const { e, mm } = fresh();
    const r = mmap(e, mm, anonReq(P, { hugetlb: '2M' }));
    const v = mm.vmas.find(r.ok ? r.value : -1)!;
    expect([v.start % M2, v.end - v.start, v.flags.hugetlb, v.anon]).toEqual([0, M2, '2M', true]);
    expectRejected(e, () => mmap(e, mm, anonReq(M2, { hugetlb: '2M', addr: 0x4000_1000, fixed: true })), 'EINVAL');
    expectRejected(e, () => mmap(e, mm, { len: M2, prot: rw, shared: true, file: 5, pgoff: 1, hugetlb: '2M' }), 'EINVAL');
    expectRejected(e, () => mmap(e, mm, { len: P, prot: rw, shared: true, file: 5, hugetlb: '2M' }), 'EINVAL');
    expect(mmap(e, mm, { len: M2, prot: rw, shared: true, file: 5, pgoff: 512, hugetlb: '2M' }).ok).toBe(true);
    expectClean(e);
  });

  it('map_count above max_map_count → ENOMEM; unknown options are PvmwErrors', () => {
    const { e, mm } = space();
    expectRejected(e, () => mmap(e, mm, anonReq(P), { maxMapCount: 1 }), 'ENOMEM');
    expect(() => mmap(e, mm, { ...anonReq(P), populate: true } as unknown as MmapRequest)).toThrow(PvmwError);
    expect(() => mmap(e, mm, anonReq(P, { flags: { write: true } as never }))).toThrow(PvmwError);
  });
});
