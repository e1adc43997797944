// Faults on anonymous memory (kernel-operations.md §5.1 dispatch and bad input, §5.2 THP eligibility, §5.3
// do_anonymous_page, §5.4 do_huge_pmd_anonymous_page, and the §5.8 NONE, PN and PMD rows, read and write):
// entries, mapcounts, AnonExclusive, rmap reachability and tags; rejected accesses change nothing.
import { describe, expect, it } from 'vitest';
import { PMD_SIZE, linearPageIndex } from '../src/index.js';
import { cpuAccess } from '../src/mm/access.js';
import { anonFaultOrder, handleMmFault, pmdThpAllowed } from '../src/mm/fault.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { expectPvmwError } from './helpers.js';
import { A, END, P, at, bits, forkPage, rewrite, rmapReaches, setup } from './ops-fault-helpers.js';
import { engineSnapshot, expectClean } from './ops-helpers.js';

describe('§5.1 dispatch and bad input', () => {
  it('a non-number, fractional or negative address is a PvmwError (BAD_ADDRESS); unknown options BAD_SETTING, bad order BAD_ORDER', () => {
    const { e, mm } = setup();
    const before = engineSnapshot(e);
    for (const bad of ['0x40000000', 1.5, -4096, NaN, null]) {
      expectPvmwError(() => handleMmFault(e, mm, bad as unknown as number), 'BAD_ADDRESS', String(bad));
      expectPvmwError(() => cpuAccess(e, mm, bad as unknown as number, 'read'), 'BAD_ADDRESS', String(bad));
    }
    expectPvmwError(() => handleMmFault(e, mm, A, { wirte: true } as never), 'BAD_SETTING', 'wirte');
    expectPvmwError(() => handleMmFault(e, mm, A, { order: 10 }), 'BAD_ORDER', '10');
    expectPvmwError(() => handleMmFault(e, mm, A, { write: 1 } as never), 'BAD_SETTING', 'write');
    expectPvmwError(() => cpuAccess(e, mm, A, 'modify' as never), 'BAD_SETTING', 'modify');
    expectPvmwError(() => cpuAccess(e, mm, A, 'write', { tag: -1 }), 'BAD_SETTING', '-1');
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§5.1 step 0: an address outside every VMA is SIGSEGV (SEGV_MAPERR), nothing changes', () => {
    const { e, mm } = setup();
    const before = engineSnapshot(e);
    expect(handleMmFault(e, mm, A - P, { write: true })).toBe('SIGSEGV');
    expect(handleMmFault(e, mm, END)).toBe('SIGSEGV');
    expect(handleMmFault(e, mm, 2 ** 60)).toBe('SIGSEGV'); // beyond user space: no VMA there either
    expect(cpuAccess(e, mm, END + 5, 'read')).toEqual({ outcome: 'SIGSEGV' });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§5.1 step 0: write to a VMA without VM_WRITE, exec without VM_EXEC, read of PROT_NONE are SIGSEGV (SEGV_ACCERR)', () => {
    const { e, mm } = setup({ flags: { write: false } });
    const none = mm.addVma({ start: END, end: END + PMD_SIZE, flags: { read: false, write: false, exec: false } });
    const before = engineSnapshot(e);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('SIGSEGV');
    expect(cpuAccess(e, mm, A + P, 'write')).toEqual({ outcome: 'SIGSEGV' });
    expect(cpuAccess(e, mm, A, 'exec')).toEqual({ outcome: 'SIGSEGV' });
    expect(cpuAccess(e, mm, none.start, 'read')).toEqual({ outcome: 'SIGSEGV' });
    expect(engineSnapshot(e)).toBe(before);
    // the read-only VMA can still be read: the zero page, read-only
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(at(e, mm, A).kind).toBe('ZP');
    expectClean(e);
  });

  it('§5.1 exec: an instruction fetch in a VM_EXEC VMA faults like a read (ZP without NX) and returns the tag', () => {
    const { e, mm } = setup({ flags: { exec: true } });
    expect(cpuAccess(e, mm, A, 'exec')).toEqual({ outcome: 'ok', tag: 0 });
    expect(at(e, mm, A).kind).toBe('ZP');
    expect(bits(e, mm, A).nx).toBe(false);
    expectPvmwError(() => handleMmFault(e, mm, A, { write: true, exec: true }), 'BAD_SETTING', 'not both');
    expectClean(e);
  });

  it('§5.3 step 1: NONE in a shared anonymous VMA without ops is SIGBUS', () => {
    const { e, mm } = setup({ flags: { shared: true } });
    const before = engineSnapshot(e);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('SIGBUS');
    expect(engineSnapshot(e)).toBe(before);
  });

  it('§5.3 step 2/4: no RAM left is OOM and changes nothing', () => {
    const { e, mm } = setup({ ram: 4 }); // pfn 0 holds the zero page; 3 pages left, no huge zero page
    for (let i = 0; i < 3; i++) expect(handleMmFault(e, mm, A + i * P, { write: true })).toBe('ok');
    const before = engineSnapshot(e);
    expect(handleMmFault(e, mm, A + 3 * P, { write: true })).toBe('OOM');
    expect(cpuAccess(e, mm, A + 3 * P, 'write')).toEqual({ outcome: 'OOM' });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });
});

describe('§5.8 NONE (anon): read → ZP or HZP, write → new exclusive folio', () => {
  it('read: ZP — present, special, read-only, vm_page_prot bits, pfn = zeroPfn, no anon_vma, no mapcount; reads ZERO', () => {
    const { e, mm, vma } = setup();
    expect(cpuAccess(e, mm, A + 5 * P + 12, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    const v = at(e, mm, A + 5 * P);
    expect(v.kind).toBe('ZP');
    expect(v.entry.number).toBe(zeroPages(e).zeroPfn);
    expect(v.entry.present).toMatchObject({ special: true, write: false, user: true, nx: true, protnone: false });
    expect(e.rmap.anon.of(vma)).toBeNull();
    expect(e.folio(zeroPages(e).zero).mapcount).toBe(0);
    expectClean(e);
  });

  it('write: an order-0 folio, writable + dirty + young, mapcount 1, AnonExclusive, index = linear page index, rmap finds it; tag written', () => {
    const { e, mm, vma } = setup();
    const r = cpuAccess(e, mm, A + 7 * P, 'write', { tag: 0xa1 });
    expect(r).toEqual({ outcome: 'ok', tag: 0xa1 });
    const v = at(e, mm, A + 7 * P);
    expect(v.kind).toBe('P');
    expect(v.entry.present).toMatchObject({ write: true, dirty: true, young: true, user: true, nx: true, special: false });
    const f = v.folio!;
    expect(f).toMatchObject({ order: 0, mapcount: 1, anon: true, anonVma: e.rmap.anon.of(vma)!.id, index: linearPageIndex(vma, A + 7 * P) });
    expect(e.page('pfn', f.number)).toMatchObject({ anonExclusive: true, tag: 0xa1, mapcount: 1 });
    expect(rmapCandidates(e, f.id).map((c) => c.vma.id)).toEqual([vma.id]);
    expect(rmapReaches(e, mm, A + 7 * P)).toBe(true);
    expect(cpuAccess(e, mm, A + 7 * P, 'read')).toEqual({ outcome: 'ok', tag: 0xa1 });
    const next = opsState(e).nextTag;
    expect(cpuAccess(e, mm, A + 7 * P, 'write')).toEqual({ outcome: 'ok', tag: next });
    expect(opsState(e).nextTag).toBe(next + 1);
    expectClean(e);
  });

  it('read with use_zero_page off maps a new folio, writable + dirty because the VMA has VM_WRITE (§5.3 step 6)', () => {
    const { e, mm } = setup();
    setOpsPolicy(e, { useZeroPage: false });
    expect(handleMmFault(e, mm, A)).toBe('ok');
    expect(at(e, mm, A).kind).toBe('P');
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    expectClean(e);
  });

  it('§5.4 read in a THP VMA with use_zero_page: HZP at the PMD (special, read-only); reads ZERO anywhere in it', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    expect(cpuAccess(e, mm, A + PMD_SIZE + 77 * P, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    const v = at(e, mm, A + PMD_SIZE + 77 * P);
    expect(v).toMatchObject({ kind: 'HZP', level: 'pmd', va: A + PMD_SIZE });
    expect(v.entry.number).toBe(zeroPages(e).hugePfn);
    expect(v.entry.present).toMatchObject({ special: true, write: false });
    expect(e.rmap.anon.of(vma)).not.toBeNull(); // §5.4 step 2 prepares the anon_vma first
    expectClean(e);
  });

  it('§5.4 write in a THP VMA: a PMD-mapped THP, entire mapcount 1, head AnonExclusive, index of haddr; all pages ZERO but the written one', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    expect(cpuAccess(e, mm, A + 3 * P, 'write', { tag: 9 })).toEqual({ outcome: 'ok', tag: 9 });
    const v = at(e, mm, A + 3 * P);
    expect(v).toMatchObject({ kind: 'PMD', level: 'pmd', va: A });
    expect(v.entry.present).toMatchObject({ write: true, dirty: true, young: true });
    expect(v.folio).toMatchObject({ order: 9, entireMapcount: 1, mapcount: 1, index: linearPageIndex(vma, A) });
    const f = v.folio!;
    expect(e.page('pfn', f.number)!.anonExclusive).toBe(true);
    expect([0, 2, 3, 4, 511].map((i) => e.page('pfn', f.number + i)!.tag)).toEqual([0, 0, 9, 0, 0]);
    expect(rmapReaches(e, mm, A)).toBe(true);
    expectClean(e);
  });
});

describe('§5.2 THP eligibility and the folio order of §5.3 step 5', () => {
  it('PMD order needs VM_HUGEPAGE-not-NOHUGEPAGE (thp), an anon VMA, the aligned 2 MiB inside it, and no smaller order asked', () => {
    const { e, mm, vma } = setup({ flags: { thp: true }, start: A + 16 * P, end: A + 3 * PMD_SIZE });
    expect(pmdThpAllowed(vma, A + 16 * P)).toBe(false); // the block at A starts before the VMA
    expect(pmdThpAllowed(vma, A + PMD_SIZE)).toBe(true);
    expect(pmdThpAllowed(vma, A + PMD_SIZE, 4)).toBe(false);
    expect(pmdThpAllowed({ ...vma, flags: { ...vma.flags, thp: false } }, A + PMD_SIZE)).toBe(false);
    expect(handleMmFault(e, mm, A + 16 * P, { write: true })).toBe('ok');
    expect(at(e, mm, A + 16 * P).kind).toBe('P'); // fell back to order 0
    expect(handleMmFault(e, mm, A + PMD_SIZE, { write: true })).toBe('ok');
    expect(at(e, mm, A + PMD_SIZE).kind).toBe('PMD');
    expectClean(e);
  });

  it('no THP without the thp flag even when order 9 is asked; no THP when the PMD slot holds a PTE table', () => {
    const { e, mm } = setup();
    expect(handleMmFault(e, mm, A, { write: true, order: 9 })).toBe('ok');
    expect(at(e, mm, A)).toMatchObject({ kind: 'P', level: 'pte' });
    const t = setup({ flags: { thp: true } });
    expect(handleMmFault(t.e, t.mm, A, { write: true, order: 0 })).toBe('ok'); // order 0 asked: PTE path
    expect(handleMmFault(t.e, t.mm, A + P, { write: true })).toBe('ok'); // a PTE table is there now
    expect(at(t.e, t.mm, A + P)).toMatchObject({ kind: 'P', level: 'pte' });
    expectClean(e);
    expectClean(t.e);
  });

  it('mTHP: order 4 asked, suitable and the aligned 16 PTEs NONE → 16 PL entries of one folio, every page AnonExclusive', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    expect(anonFaultOrder(e, mm, vma, A + 21 * P, 4)).toBe(4);
    expect(cpuAccess(e, mm, A + 21 * P, 'write', { order: 4, tag: 5 })).toEqual({ outcome: 'ok', tag: 5 });
    const ls = leavesIn(e, mm, A, A + PMD_SIZE);
    expect(ls.map((l) => l.va)).toEqual(Array.from({ length: 16 }, (_, i) => A + (16 + i) * P));
    expect(new Set(ls.map((l) => l.kind))).toEqual(new Set(['PL']));
    const f = ls[0].folio!;
    expect(f).toMatchObject({ order: 4, mapcount: 16, index: linearPageIndex(vma, A + 16 * P) });
    expect(ls.every((l) => l.folio!.id === f.id && l.entry.present!.write)).toBe(true);
    for (let i = 0; i < 16; i++) expect(e.page('pfn', f.number + i)).toMatchObject({ anonExclusive: true, mapcount: 1, tag: i === 5 ? 5 : 0 });
    expectClean(e);
  });

  it('mTHP falls back to order 0 when one PTE of the aligned range is populated, or the VMA is not thp', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    expect(handleMmFault(e, mm, A + 40 * P, { order: 0 })).toBe('ok'); // ZP inside [32, 48) (order 0: no HZP)
    expect(at(e, mm, A + 40 * P).kind).toBe('ZP');
    expect(anonFaultOrder(e, mm, vma, A + 33 * P, 4)).toBe(0);
    expect(handleMmFault(e, mm, A + 33 * P, { write: true, order: 4 })).toBe('ok');
    expect(at(e, mm, A + 33 * P).folio!.order).toBe(0);
    const t = setup();
    expect(anonFaultOrder(t.e, t.mm, t.vma, A, 4)).toBe(0);
    expect(anonFaultOrder(t.e, t.mm, { ...t.vma, flags: { ...t.vma.flags, thp: true }, end: A + 8 * P }, A, 4)).toBe(0); // not suitable
    expectClean(e);
  });
});

describe('§5.8 PN: NUMA hint in an accessible VMA, PROT_NONE VMA', () => {
  it('PN (NUMA hint) read and write: the PTE is rebuilt from vm_page_prot, writable again when AnonExclusive', () => {
    for (const access of ['read', 'write'] as const) {
      const { e, mm } = setup();
      cpuAccess(e, mm, A, 'write', { tag: 0x31 });
      rewrite(e, mm, A, { protnone: true, write: false });
      expect(at(e, mm, A).kind).toBe('PN');
      const mapcount = at(e, mm, A).folio!.mapcount;
      expect(cpuAccess(e, mm, A, access, { tag: 0x32 })).toEqual({ outcome: 'ok', tag: access === 'read' ? 0x31 : 0x32 });
      expect(at(e, mm, A).kind).toBe('P');
      expect(bits(e, mm, A)).toMatchObject({ protnone: false, write: true, user: true, nx: true });
      expect(at(e, mm, A).folio!.mapcount).toBe(mapcount);
      expectClean(e);
    }
  });

  it('PN PMD (NUMA hint on a THP): rebuilt at the PMD level', () => {
    const { e, mm } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A, { write: true });
    rewrite(e, mm, A, { protnone: true, write: false });
    expect(at(e, mm, A)).toMatchObject({ kind: 'PN', level: 'pmd' });
    expect(handleMmFault(e, mm, A + 9 * P)).toBe('ok');
    expect(at(e, mm, A)).toMatchObject({ kind: 'PMD', level: 'pmd' });
    expect(bits(e, mm, A).write).toBe(true);
    expectClean(e);
  });

  it('PN in a PROT_NONE VMA: SIGSEGV on read and write, nothing changes', () => {
    const { e, mm, vma } = setup({ flags: { read: false, write: false, exec: false } });
    const id = e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'present', number: 0x2000, protnone: true, user: true } });
    expect(at(e, mm, A).kind).toBe('PN');
    const before = engineSnapshot(e);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'SIGSEGV' });
    expect(cpuAccess(e, mm, A, 'write')).toEqual({ outcome: 'SIGSEGV' });
    expect(handleMmFault(e, mm, A)).toBe('SIGSEGV');
    expect(engineSnapshot(e)).toBe(before);
    expect(e.folio(id).mapcount).toBe(1);
    expectClean(e);
  });
});

describe('§5.8 PMD rows: PMD, HZP, PMD MIG, PMD DP', () => {
  it('PMD read ok; write on a read-only PMD with an AnonExclusive head reuses the whole PMD', () => {
    const { e, mm } = setup({ flags: { thp: true } });
    cpuAccess(e, mm, A, 'write', { tag: 3 });
    rewrite(e, mm, A, { write: false });
    const id = at(e, mm, A).folio!.id;
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 3 });
    expect(handleMmFault(e, mm, A + 100 * P, { write: true })).toBe('ok');
    expect(at(e, mm, A)).toMatchObject({ kind: 'PMD', level: 'pmd' });
    expect(at(e, mm, A).folio!.id).toBe(id);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    expectClean(e);
  });

  it('PMD read-only, not exclusive, mapcount 1 (refcount 1): move anon rmap, AnonExclusive, reuse', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A, { write: true });
    rewrite(e, mm, A, { write: false });
    const f = at(e, mm, A).folio!;
    e.folios.setAnonExclusive(f.id, 0, 512, false);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(at(e, mm, A).folio!.id).toBe(f.id);
    expect(e.page('pfn', f.number)!.anonExclusive).toBe(true);
    expect(e.folio(f.id).anonVma).toBe(e.rmap.anon.of(vma)!.id);
    expectClean(e);
  });

  it('PMD shared after fork: the write splits the PMD and copies one 4 KiB page (511 PL + 1 P); the other mm keeps its PMD', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A, { write: true });
    const thp = at(e, mm, A).folio!;
    e.folios.setTag(thp.id, 7, 1, 0x70);
    const { child } = forkPage(e, mm, vma, A);
    expect(cpuAccess(e, mm, A + 7 * P, 'write', { tag: 0x71 })).toEqual({ outcome: 'ok', tag: 0x71 });
    const ls = leavesIn(e, mm, A, A + PMD_SIZE);
    expect(ls).toHaveLength(512);
    expect(ls.filter((l) => l.kind === 'PL')).toHaveLength(511);
    expect(ls[7]).toMatchObject({ kind: 'P' });
    expect(ls[7].folio!.order).toBe(0);
    expect(at(e, child, A)).toMatchObject({ kind: 'PMD', level: 'pmd' });
    expect(e.folio(thp.id)).toMatchObject({ entireMapcount: 1, mapcount: 512 });
    expect(cpuAccess(e, child, A + 7 * P, 'read').tag).toBe(0x70);
    expectClean(e);
  });

  it('HZP read ok (ZERO); write → a new THP, every page ZERO but the written one', () => {
    const { e, mm } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A);
    expect(cpuAccess(e, mm, A + 5 * P, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(cpuAccess(e, mm, A + 5 * P, 'write', { tag: 0x55 })).toEqual({ outcome: 'ok', tag: 0x55 });
    const v = at(e, mm, A);
    expect(v).toMatchObject({ kind: 'PMD', level: 'pmd' });
    expect(v.folio).toMatchObject({ order: 9, entireMapcount: 1 });
    expect([4, 5, 6].map((i) => e.page('pfn', v.entry.number! + i)!.tag)).toEqual([0, 0x55, 0]);
    expectClean(e);
  });

  it('HZP write without a free THP: split into 512 ZP PTEs, the faulting 4 KiB becomes a zeroed copy', () => {
    const { e, mm } = setup({ flags: { thp: true }, ram: 1024 }); // the zero pages fill the only 2 MiB blocks
    handleMmFault(e, mm, A);
    expect(at(e, mm, A).kind).toBe('HZP');
    expect(cpuAccess(e, mm, A + 3 * P, 'write', { tag: 1 })).toEqual({ outcome: 'ok', tag: 1 });
    const ls = leavesIn(e, mm, A, A + PMD_SIZE);
    expect(ls).toHaveLength(512);
    expect(ls.filter((l) => l.kind === 'ZP')).toHaveLength(511);
    expect(ls[3].kind).toBe('P');
    expectClean(e);
  });

  it('PMD MIG: wait, retry; nothing changes', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    e.createFolio({ number: 0x2000, order: 9, index: linearPageIndex(vma, A) });
    mm.map(A, { level: 'pmd', entry: { kind: 'migration-write', number: 0x2000 } });
    const before = engineSnapshot(e);
    expect(handleMmFault(e, mm, A + P)).toBe('retry');
    expect(cpuAccess(e, mm, A, 'write')).toEqual({ outcome: 'retry' });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('PMD DP: migrate_to_ram of the whole folio — a PMD of a new THP with every page`s tag', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    const chunk = e.addDeviceMemory();
    const dev = e.createFolio({ number: chunk.base + 512, order: 9, index: linearPageIndex(vma, A) });
    e.folios.setTag(dev, 0, 512, 0x10);
    e.folios.setTag(dev, 300, 1, 0x11);
    mm.map(A, { level: 'pmd', entry: { kind: 'device-private-write', number: chunk.base + 512 } });
    expect(cpuAccess(e, mm, A + 300 * P, 'read')).toEqual({ outcome: 'ok', tag: 0x11 });
    const v = at(e, mm, A);
    expect(v).toMatchObject({ kind: 'PMD', level: 'pmd' });
    expect(v.entry.present!.write).toBe(true);
    expect(v.folio).toMatchObject({ order: 9, entireMapcount: 1, index: linearPageIndex(vma, A) });
    expect(e.page('pfn', v.entry.number! + 299)!.tag).toBe(0x10);
    expect(e.folios.exists(dev)).toBe(false);
    expectClean(e);
  });
});
