// change_protection under mprotect (kernel-operations.md §3.3 every PTE-kind row with the "try to make
// writable" rule, §3.4 the PMD level and partial coverage splits): entries, mapcounts, AnonExclusive, rmap.
import { describe, expect, it } from 'vitest';
import { PMD_SIZE, linearPageIndex } from '../src/index.js';
import { leavesIn, presentRaw, writeLeaves, zeroPages } from '../src/mm/leaf.js';
import { canChangeWritable, changeProtection, mprotect } from '../src/mm/mprotect.js';
import { opsState } from '../src/mm/state.js';
import { expectClean, leafAtOrThrow as at, rmapFinds } from './ops-helpers.js';
import { A, END, NONE, P, R, RW, anon, setup } from './ops-mprotect-helpers.js';

describe('§3.3 per PTE entry kind', () => {
  it('§3.3 P (AnonExclusive): read-only under PROT_READ, writable again at once under RW; young/dirty/soft-dirty kept', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true, young: true, dirty: true, softDirty: true, user: true } });
    expect(mprotect(e, mm, A, P, R).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: false, young: true, dirty: true, softDirty: true, nx: true, protnone: false });
    expectClean(e);
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: true, young: true, dirty: true, softDirty: true });
    expect(e.folio(f).mapcount).toBe(1);
    expectClean(e);
    expect(mprotect(e, mm, A, P, { read: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: false, nx: false });
    expectClean(e);
  });

  it('§3.3 P COW-shared (AnonExclusive clear) stays read-only after mprotect(RW)', () => {
    const { e, mm, vma } = setup({ write: false });
    anon(e, vma, A, 0x1000, 0, 0);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, dirty: true } });
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.bits.write).toBe(false);
    expectClean(e);
  });

  it('§3.3 PL: the writable upgrade is decided page by page inside a large folio', () => {
    const { e, mm, vma } = setup({ write: false });
    const f = anon(e, vma, A, 0x1010, 2, 0);
    e.folios.setAnonExclusive(f, 1, 1, true);
    e.folios.setAnonExclusive(f, 3, 1, true);
    mm.map(A, { count: 4, entry: { kind: 'present', number: 0x1010 } });
    expect(mprotect(e, mm, A, 4 * P, RW).ok).toBe(true);
    expect([0, 1, 2, 3].map((i) => at(e, mm, A + i * P).entry.bits.write)).toEqual([false, true, false, true]);
    expect([0, 1, 2, 3].map((i) => at(e, mm, A + i * P).kind)).toEqual(['PL', 'PL', 'PL', 'PL']);
    expect(e.folio(f).mapcount).toBe(4);
    expectClean(e);
  });

  it('§3.3 ZP: new protection, special kept, never writable', () => {
    const { e, mm } = setup({ write: false });
    writeLeaves(e, mm, [{ va: A, level: 'pte', raw: presentRaw('pte', zeroPages(e).zeroPfn, { user: true, special: true, nx: true }) }]);
    expect(mprotect(e, mm, A, P, { read: true, write: true, exec: true }).ok).toBe(true);
    const l = at(e, mm, A);
    expect(l.kind).toBe('ZP');
    expect(l.entry.present).toMatchObject({ write: false, special: true, nx: false });
    expectClean(e);
  });

  it('§3.3 PROT_NONE makes present entries PN, still mapped (mapcount, rmap unchanged); back to RW: exclusive pages writable, COW-shared read-only', () => {
    const { e, mm, vma } = setup();
    const ex = anon(e, vma, A, 0x1000);
    const sh = anon(e, vma, A + P, 0x1001, 0, 0);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true, dirty: true } });
    mm.map(A + P, { entry: { kind: 'present', number: 0x1001, dirty: true } });
    expect(mprotect(e, mm, A, 2 * P, NONE).ok).toBe(true);
    expect([at(e, mm, A).kind, at(e, mm, A + P).kind]).toEqual(['PN', 'PN']);
    expect(at(e, mm, A).entry.number).toBe(0x1000);
    expect(at(e, mm, A).entry.present).toMatchObject({ protnone: true, write: false, dirty: true });
    expect([e.folio(ex).mapcount, e.folio(sh).mapcount]).toEqual([1, 1]);
    expect(e.page('pfn', 0x1000)!.anonExclusive).toBe(true);
    expect(rmapFinds(e, ex)).toEqual([A]);
    expectClean(e);
    expect(mprotect(e, mm, A, 2 * P, RW).ok).toBe(true);
    expect([at(e, mm, A).kind, at(e, mm, A + P).kind]).toEqual(['P', 'P']);
    expect([at(e, mm, A).entry.bits.write, at(e, mm, A + P).entry.bits.write]).toEqual([true, false]);
    expectClean(e);
  });

  it('§3.3 a uffd-wp present entry is not made writable', () => {
    const { e, mm, vma } = setup({ write: false });
    anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, uffdWp: true } });
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: false, uffdWp: true });
    expectClean(e);
  });

  it('§3.3 NONE: untouched (no entry appears)', () => {
    const { e, mm } = setup();
    expect(mprotect(e, mm, A, 16 * P, R).ok).toBe(true);
    expect(leavesIn(e, mm, A, END)).toEqual([]);
    expectClean(e);
  });

  it('§3.3 MIG-W → MIG-RX for an anon folio, even under RW; young/dirty/soft-dirty kept; MIG-R and MIG-RX unchanged', () => {
    const { e, mm, vma } = setup();
    for (let i = 0; i < 3; i++) anon(e, vma, A + i * P, 0x1000 + i, 0, 0);
    mm.map(A, { entry: { kind: 'migration-write', number: 0x1000, young: true, dirty: true, flags: { softDirty: true } } });
    mm.map(A + P, { entry: { kind: 'migration-read', number: 0x1001 } });
    mm.map(A + 2 * P, { entry: { kind: 'migration-read-exclusive', number: 0x1002 } });
    const r1 = at(e, mm, A + P).raw;
    const r2 = at(e, mm, A + 2 * P).raw;
    expect(mprotect(e, mm, A, 3 * P, { read: true, write: true, exec: true }).ok).toBe(true);
    const l = at(e, mm, A);
    expect(l.kind).toBe('MIG-RX');
    expect(l.entry).toMatchObject({ number: 0x1000, bits: { young: true, dirty: true, softDirty: true } });
    expect([at(e, mm, A + P).raw, at(e, mm, A + 2 * P).raw]).toEqual([r1, r2]);
    expect(e.folio(0x1000).mapcount).toBe(0);
    expectClean(e);
  });

  it('§3.3 MIG-W → MIG-R for a file folio', () => {
    const { e, mm } = setup({ shared: true }, { file: 5 });
    e.createFolio({ number: 0x3000, file: 5, index: 0 });
    mm.map(A, { entry: { kind: 'migration-write', number: 0x3000, flags: { softDirty: true } } });
    expect(mprotect(e, mm, A, P, R).ok).toBe(true);
    expect(at(e, mm, A).kind).toBe('MIG-R');
    expect(at(e, mm, A).entry.bits.softDirty).toBe(true);
    expectClean(e);
  });

  it('§3.3 DP-W → DP-R unconditionally (uffd-wp kept, soft-dirty dropped); DP-R unchanged; the mapping stays', () => {
    const { e, mm, vma } = setup({ write: false });
    const chunk = e.addDeviceMemory();
    const av = e.rmap.anon.prepare(vma);
    const d1 = e.createFolio({ number: chunk.base, anonVma: av.id, index: linearPageIndex(vma, A) });
    e.createFolio({ number: chunk.base + 1, anonVma: av.id, index: linearPageIndex(vma, A + P) });
    mm.map(A, { entry: { kind: 'device-private-write', number: chunk.base, flags: { uffdWp: true, softDirty: true } } });
    mm.map(A + P, { entry: { kind: 'device-private-read', number: chunk.base + 1 } });
    const r1 = at(e, mm, A + P).raw;
    expect(mprotect(e, mm, A, 2 * P, RW).ok).toBe(true);
    const l = at(e, mm, A);
    expect(l.kind).toBe('DP-R');
    expect(l.entry).toMatchObject({ number: chunk.base, bits: { uffdWp: true, softDirty: false } });
    expect(at(e, mm, A + P).raw).toEqual(r1);
    expect(e.folio(d1).mapcount).toBe(1);
    expect(rmapFinds(e, d1)).toEqual([A]);
    expectClean(e);
  });

  it('§3.3 DX, SWAP, HWP, MK-UW, MK-PSN, MK-GRD: unchanged by any protection', () => {
    const { e, mm, vma } = setup();
    const dx = anon(e, vma, A, 0x1000);
    anon(e, vma, A + 2 * P, 0x1005, 0, 0);
    mm.map(A, { entry: { kind: 'device-exclusive', number: 0x1000 } });
    mm.map(A + P, { entry: { kind: 'swap', swapType: 0, offset: 9, flags: { exclusive: true } } });
    mm.map(A + 2 * P, { entry: { kind: 'hwpoison', number: 0x1005 } });
    mm.map(A + 3 * P, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(A + 4 * P, { entry: { kind: 'marker', poisoned: true } });
    mm.map(A + 5 * P, { entry: { kind: 'marker', guard: true } });
    const before = leavesIn(e, mm, A, END).map((l) => [l.kind, l.raw]);
    expect(before.map((x) => x[0])).toEqual(['DX', 'SWAP', 'HWP', 'MK-UW', 'MK-PSN', 'MK-GRD']);
    for (const prot of [NONE, R, RW, { read: true, exec: true }]) {
      expect(mprotect(e, mm, A, 8 * P, prot).ok).toBe(true);
      expect(leavesIn(e, mm, A, END).map((l) => [l.kind, l.raw])).toEqual(before);
      expectClean(e);
    }
    expect(e.folio(dx).mapcount).toBe(1);
  });

  it('§3.3 shared VMA: vm_page_prot grants write, so present entries become writable; the shared-VMA rule is "already dirty"', () => {
    const { e, mm, vma } = setup({ shared: true, write: false }, { file: 4 });
    const f = e.createFolio({ number: 0x3000, order: 1, file: 4, index: 0 });
    mm.map(A, { entry: { kind: 'present', number: 0x3000, dirty: true } });
    mm.map(A + P, { entry: { kind: 'present', number: 0x3001 } });
    expect(mprotect(e, mm, A, 2 * P, RW).ok).toBe(true);
    expect([at(e, mm, A).entry.bits.write, at(e, mm, A + P).entry.bits.write]).toEqual([true, true]);
    expect(e.folio(f).mapcount).toBe(2);
    expectClean(e);
    // can_change_pte_writable for a shared VMA whose vm_page_prot withholds write (write-notify): dirty only.
    const v = mm.vmas.find(A)!;
    expect(canChangeWritable(e, v, at(e, mm, A), { dirty: true })).toBe(true);
    expect(canChangeWritable(e, v, at(e, mm, A), { dirty: false })).toBe(false);
    expect(canChangeWritable(e, v, at(e, mm, A), { dirty: true, protnone: true })).toBe(false);
    expect(canChangeWritable(e, vma, at(e, mm, A), { dirty: true })).toBe(false); // the old VMA had no VM_WRITE
  });
});

describe('§3.4 PMD level', () => {
  function thp(exclusive: boolean) {
    const s = setup();
    const f = anon(s.e, s.vma, A + PMD_SIZE, 0x2000, 9, exclusive ? 512 : 0);
    s.mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: exclusive, dirty: true, young: true } });
    return { ...s, f };
  }

  it('§3.4 PMD with an AnonExclusive head: read-only under PROT_READ, writable PMD again under RW', () => {
    const { e, mm, f } = thp(true);
    expect(mprotect(e, mm, A + PMD_SIZE, PMD_SIZE, R).ok).toBe(true);
    expect(at(e, mm, A + PMD_SIZE)).toMatchObject({ level: 'pmd', kind: 'PMD', entry: { bits: { write: false, dirty: true } } });
    expectClean(e);
    expect(mprotect(e, mm, A + PMD_SIZE, PMD_SIZE, RW).ok).toBe(true);
    expect(at(e, mm, A + PMD_SIZE)).toMatchObject({ level: 'pmd', kind: 'PMD', entry: { bits: { write: true } } });
    expect(e.folio(f)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    expectClean(e);
  });

  it('§3.4 PMD whose head is not AnonExclusive stays read-only under RW', () => {
    const { e, mm } = thp(false);
    expect(mprotect(e, mm, A + PMD_SIZE, PMD_SIZE, { read: true, write: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A + PMD_SIZE).entry.present).toMatchObject({ write: false, nx: false });
    expectClean(e);
  });

  it('§3.4 HZP: new protection, never writable', () => {
    const { e, mm } = setup({ write: false });
    writeLeaves(e, mm, [{ va: A, level: 'pmd', raw: presentRaw('pmd', zeroPages(e).hugePfn, { user: true, special: true, nx: true }) }]);
    expect(mprotect(e, mm, A, PMD_SIZE, { read: true, write: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A)).toMatchObject({ kind: 'HZP', level: 'pmd', entry: { present: { write: false, special: true, nx: false } } });
    expectClean(e);
  });

  it('§3.4 PMD MIG-W → MIG-RX (anon); PMD DP-W → DP-R; PMD MIG-R unchanged', () => {
    const { e, mm, vma } = setup();
    anon(e, vma, A, 0x2000, 9, 0);
    anon(e, vma, A + 2 * PMD_SIZE, 0x2400, 9, 0);
    const chunk = e.addDeviceMemory();
    const av = e.rmap.anon.prepare(vma);
    const dev = e.createFolio({ number: chunk.base, order: 9, anonVma: av.id, index: linearPageIndex(vma, A + PMD_SIZE) });
    mm.map(A, { level: 'pmd', entry: { kind: 'migration-write', number: 0x2000, dirty: true, flags: { softDirty: true } } });
    mm.map(A + PMD_SIZE, { level: 'pmd', entry: { kind: 'device-private-write', number: chunk.base } });
    mm.map(A + 2 * PMD_SIZE, { level: 'pmd', entry: { kind: 'migration-read', number: 0x2400 } });
    const r3 = at(e, mm, A + 2 * PMD_SIZE).raw;
    expect(mprotect(e, mm, A, 3 * PMD_SIZE, { read: true, write: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A)).toMatchObject({ level: 'pmd', kind: 'MIG-RX', entry: { number: 0x2000, bits: { dirty: true, softDirty: true } } });
    expect(at(e, mm, A + PMD_SIZE)).toMatchObject({ level: 'pmd', kind: 'DP-R', entry: { number: chunk.base } });
    expect(at(e, mm, A + 2 * PMD_SIZE).raw).toEqual(r3);
    expect(e.folio(dev)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    expectClean(e);
  });

  it('§3.4 a range covering part of a PMD: the PMD is split into 512 PTEs of the same THP, only the covered ones change', () => {
    const { e, mm, f } = thp(true);
    const B = A + PMD_SIZE;
    expect(mprotect(e, mm, B + 16 * P, 16 * P, R).ok).toBe(true);
    const leaves = leavesIn(e, mm, B, B + PMD_SIZE);
    expect(leaves.length).toBe(512);
    expect(leaves.every((l) => l.level === 'pte' && l.kind === 'PL' && l.folio!.id === f)).toBe(true);
    expect(leaves.map((l) => l.entry.bits.write)).toEqual(leaves.map((_, i) => !(i >= 16 && i < 32)));
    expect(e.folio(f)).toMatchObject({ order: 9, mapcount: 512, entireMapcount: 0 });
    expect(e.page('pfn', 0x2000 + 20)).toMatchObject({ mapcount: 1, anonExclusive: true });
    expect(rmapFinds(e, f).length).toBe(512);
    expectClean(e);
    // Back to RW: the pages are AnonExclusive, so the read-only ones are writable again.
    expect(mprotect(e, mm, B + 16 * P, 16 * P, RW).ok).toBe(true);
    expect(leavesIn(e, mm, B, B + PMD_SIZE).every((l) => l.entry.bits.write)).toBe(true);
    expectClean(e);
  });

  it('§3.4 changeProtection over part of a PMD inside one VMA splits it too', () => {
    const { e, mm, vma, f } = thp(true);
    Object.assign(vma.flags, { write: false });
    expect(changeProtection(e, mm, vma, A + PMD_SIZE, A + PMD_SIZE + P)).toBe(1);
    expect(at(e, mm, A + PMD_SIZE)).toMatchObject({ level: 'pte', kind: 'PL', entry: { bits: { write: false } } });
    expect(at(e, mm, A + PMD_SIZE + P).entry.bits.write).toBe(true);
    expect(e.folio(f).entireMapcount).toBe(0);
    expectClean(e);
  });

  it('§3.4 hugetlb: protection replaced, never made writable by mprotect (hugetlb_change_protection)', () => {
    const { e, mm, vma } = setup({ hugetlb: '2M' });
    const av = e.rmap.anon.prepare(vma);
    const f = opsState(e).alloc.alloc({ hugetlb: '2M', anonVma: av.id, index: linearPageIndex(vma, A) })!;
    e.folios.setAnonExclusive(f, 0, 512, true);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    expect(mprotect(e, mm, A, PMD_SIZE, R).ok).toBe(true);
    expect(at(e, mm, A)).toMatchObject({ kind: 'HT', entry: { bits: { write: false } } });
    expect(mprotect(e, mm, A, PMD_SIZE, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.bits.write).toBe(false);
    expect(e.folio(f).entireMapcount).toBe(1);
    expectClean(e);
  });
});
