// Page faults and CPU access (kernel-operations.md §5, §12.2): handleMmFault's dispatch, THP eligibility,
// do_anonymous_page, do_huge_pmd_anonymous_page, do_swap_page per non-present kind, do_wp_page and the PMD
// write fault, file faults, and cpuAccess with content tags — the §5.8 summary table row by row, read and write.
// Every test checks the entries, mapcounts, AnonExclusive, rmap reachability and tags it expects, and the
// engine's invariants after each operation; rejected accesses leave the engine exactly as it was.
import { describe, expect, it } from 'vitest';
import { Engine, Mm, PMD_SIZE, linearPageIndex, type PresentBits, type Vma, type VmaFlags } from '../src/index.js';
import { cpuAccess } from '../src/mm/access.js';
import { anonFaultOrder, handleMmFault, pmdThpAllowed } from '../src/mm/fault.js';
import { leavesIn, presentRaw, writeLeaves, zeroPages } from '../src/mm/leaf.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { faultLeafAt } from '../src/mm/wp-fault.js';
import { rmapCandidates, rmapWalk } from '../src/rmap/rmap-walk.js';
import { expectPvmwError } from './helpers.js';

const P = 4096;
const A = 0x4000_0000; // VMA start, 1 GiB aligned
const END = A + 4 * PMD_SIZE;

function setup(o: { ram?: number; flags?: Partial<VmaFlags>; start?: number; end?: number; file?: number; pgoff?: number } = {}) {
  const e = new Engine({ ramPages: o.ram ?? 1 << 14, deviceChunkPages: 4096 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: o.start ?? A, end: o.end ?? END, flags: o.flags, file: o.file, pgoff: o.pgoff });
  return { e, mm, vma };
}

const at = (e: Engine, mm: Mm, addr: number) => faultLeafAt(e, mm, addr);
const bits = (e: Engine, mm: Mm, addr: number) => at(e, mm, addr).entry.present!;

/** Invariants hold (problems listed on failure). */
function clean(e: Engine): void {
  expect(e.checkInvariants().problems).toEqual([]);
}

/** Everything a rejected access must leave alone: leaves of every mm, VMAs, folios, tags. */
function snapshot(e: Engine) {
  return JSON.stringify({
    leaves: e.allMms().map((mm) => leavesIn(e, mm, 0, 2 ** 47).map((l) => [l.va, l.level, l.raw])),
    vmas: e.allMms().map((mm) => mm.vmas.all().map((v) => [v.id, v.start, v.end, v.pgoff, v.flags])),
    folios: [...e.folios.all()].map((id) => {
      const f = e.folio(id);
      return [f, Array.from({ length: f.nrPages }, (_, i) => e.page(f.namespace, f.number + i))];
    }),
  });
}

/** Rewrite the leaf at addr with some bits changed (what mprotect / fork / NUMA hinting would leave). */
function rewrite(e: Engine, mm: Mm, addr: number, change: Partial<PresentBits>): void {
  const v = at(e, mm, addr);
  writeLeaves(e, mm, [{ va: v.va, level: v.level, raw: presentRaw(v.level, v.entry.number!, { ...v.entry.present!, ...change }) }]);
}

/** fork by hand: a child mm whose VMA is linked by anon_vma_fork and maps the page at addr read-only in both. */
function forkPage(e: Engine, mm: Mm, vma: Vma, addr: number): { child: Mm; cv: Vma } {
  const child = e.createMm();
  const cv = child.addVma({ start: vma.start, end: vma.end, flags: { ...vma.flags } });
  e.rmap.anon.fork(cv, vma);
  const v = at(e, mm, addr);
  const raw = presentRaw(v.level, v.entry.number!, { ...v.entry.present!, write: false });
  writeLeaves(e, mm, [{ va: v.va, level: v.level, raw }]);
  writeLeaves(e, child, [{ va: v.va, level: v.level, raw }]);
  e.folios.setAnonExclusive(v.folio!.id, 0, v.folio!.nrPages, false);
  return { child, cv };
}

/** Does rmap reach the page mapped at addr of mm (an rmap walk of its folio reports that address)? */
function rmapReaches(e: Engine, mm: Mm, addr: number): boolean {
  const v = at(e, mm, addr);
  let found = false;
  rmapWalk(e, [v.folio!.id], { rmapOne: (c, ms) => ((found ||= c.mm === mm && ms.some((m) => m.address === v.va)), true) });
  return found;
}

describe('§5.1 dispatch and bad input', () => {
  it('a non-number, fractional or negative address is a PvmwError (BAD_ADDRESS); unknown options BAD_SETTING, bad order BAD_ORDER', () => {
    const { e, mm } = setup();
    const before = snapshot(e);
    for (const bad of ['0x40000000', 1.5, -4096, NaN, null]) {
      expectPvmwError(() => handleMmFault(e, mm, bad as unknown as number), 'BAD_ADDRESS', String(bad));
      expectPvmwError(() => cpuAccess(e, mm, bad as unknown as number, 'read'), 'BAD_ADDRESS', String(bad));
    }
    expectPvmwError(() => handleMmFault(e, mm, A, { wirte: true } as never), 'BAD_SETTING', 'wirte');
    expectPvmwError(() => handleMmFault(e, mm, A, { order: 10 }), 'BAD_ORDER', '10');
    expectPvmwError(() => handleMmFault(e, mm, A, { write: 1 } as never), 'BAD_SETTING', 'write');
    expectPvmwError(() => cpuAccess(e, mm, A, 'modify' as never), 'BAD_SETTING', 'modify');
    expectPvmwError(() => cpuAccess(e, mm, A, 'write', { tag: -1 }), 'BAD_SETTING', '-1');
    expect(snapshot(e)).toBe(before);
    clean(e);
  });

  it('§5.1 step 0: an address outside every VMA is SIGSEGV (SEGV_MAPERR), nothing changes', () => {
    const { e, mm } = setup();
    const before = snapshot(e);
    expect(handleMmFault(e, mm, A - P, { write: true })).toBe('SIGSEGV');
    expect(handleMmFault(e, mm, END)).toBe('SIGSEGV');
    expect(handleMmFault(e, mm, 2 ** 60)).toBe('SIGSEGV'); // beyond user space: no VMA there either
    expect(cpuAccess(e, mm, END + 5, 'read')).toEqual({ outcome: 'SIGSEGV' });
    expect(snapshot(e)).toBe(before);
    clean(e);
  });

  it('§5.1 step 0: write to a VMA without VM_WRITE, exec without VM_EXEC, read of PROT_NONE are SIGSEGV (SEGV_ACCERR)', () => {
    const { e, mm } = setup({ flags: { write: false } });
    const none = mm.addVma({ start: END, end: END + PMD_SIZE, flags: { read: false, write: false, exec: false } });
    const before = snapshot(e);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('SIGSEGV');
    expect(cpuAccess(e, mm, A + P, 'write')).toEqual({ outcome: 'SIGSEGV' });
    expect(cpuAccess(e, mm, A, 'exec')).toEqual({ outcome: 'SIGSEGV' });
    expect(cpuAccess(e, mm, none.start, 'read')).toEqual({ outcome: 'SIGSEGV' });
    expect(snapshot(e)).toBe(before);
    // the read-only VMA can still be read: the zero page, read-only
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(at(e, mm, A).kind).toBe('ZP');
    clean(e);
  });

  it('§5.1 exec: an instruction fetch in a VM_EXEC VMA faults like a read (ZP without NX) and returns the tag', () => {
    const { e, mm } = setup({ flags: { exec: true } });
    expect(cpuAccess(e, mm, A, 'exec')).toEqual({ outcome: 'ok', tag: 0 });
    expect(at(e, mm, A).kind).toBe('ZP');
    expect(bits(e, mm, A).nx).toBe(false);
    expectPvmwError(() => handleMmFault(e, mm, A, { write: true, exec: true }), 'BAD_SETTING', 'not both');
    clean(e);
  });

  it('§5.3 step 1: NONE in a shared anonymous VMA without ops is SIGBUS', () => {
    const { e, mm } = setup({ flags: { shared: true } });
    const before = snapshot(e);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('SIGBUS');
    expect(snapshot(e)).toBe(before);
  });

  it('§5.3 step 2/4: no RAM left is OOM and changes nothing', () => {
    const { e, mm } = setup({ ram: 4 }); // pfn 0 holds the zero page; 3 pages left, no huge zero page
    for (let i = 0; i < 3; i++) expect(handleMmFault(e, mm, A + i * P, { write: true })).toBe('ok');
    const before = snapshot(e);
    expect(handleMmFault(e, mm, A + 3 * P, { write: true })).toBe('OOM');
    expect(cpuAccess(e, mm, A + 3 * P, 'write')).toEqual({ outcome: 'OOM' });
    expect(snapshot(e)).toBe(before);
    clean(e);
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
    clean(e);
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
    clean(e);
  });

  it('read with use_zero_page off maps a new folio, writable + dirty because the VMA has VM_WRITE (§5.3 step 6)', () => {
    const { e, mm } = setup();
    setOpsPolicy(e, { useZeroPage: false });
    expect(handleMmFault(e, mm, A)).toBe('ok');
    expect(at(e, mm, A).kind).toBe('P');
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    clean(e);
  });

  it('§5.4 read in a THP VMA with use_zero_page: HZP at the PMD (special, read-only); reads ZERO anywhere in it', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    expect(cpuAccess(e, mm, A + PMD_SIZE + 77 * P, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    const v = at(e, mm, A + PMD_SIZE + 77 * P);
    expect(v).toMatchObject({ kind: 'HZP', level: 'pmd', va: A + PMD_SIZE });
    expect(v.entry.number).toBe(zeroPages(e).hugePfn);
    expect(v.entry.present).toMatchObject({ special: true, write: false });
    expect(e.rmap.anon.of(vma)).not.toBeNull(); // §5.4 step 2 prepares the anon_vma first
    clean(e);
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
    clean(e);
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
    clean(e);
  });

  it('no THP without the thp flag even when order 9 is asked; no THP when the PMD slot holds a PTE table', () => {
    const { e, mm } = setup();
    expect(handleMmFault(e, mm, A, { write: true, order: 9 })).toBe('ok');
    expect(at(e, mm, A)).toMatchObject({ kind: 'P', level: 'pte' });
    const t = setup({ flags: { thp: true } });
    expect(handleMmFault(t.e, t.mm, A, { write: true, order: 0 })).toBe('ok'); // order 0 asked: PTE path
    expect(handleMmFault(t.e, t.mm, A + P, { write: true })).toBe('ok'); // a PTE table is there now
    expect(at(t.e, t.mm, A + P)).toMatchObject({ kind: 'P', level: 'pte' });
    clean(e);
    clean(t.e);
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
    clean(e);
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
    clean(e);
  });
});

describe('§5.8 present entries: ZP, P/PL writable, read-only AnonExclusive, read-only shared', () => {
  it('ZP read: ok, nothing changes; ZP write: COW into a new zeroed order-0 page (tag copied: ZERO, then written)', () => {
    const { e, mm, vma } = setup();
    handleMmFault(e, mm, A);
    const before = snapshot(e);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(snapshot(e)).toBe(before);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    const v = at(e, mm, A);
    expect(v.kind).toBe('P');
    expect(v.entry.present).toMatchObject({ write: true, dirty: true, young: true, special: false });
    expect(e.page('pfn', v.entry.number!)).toMatchObject({ tag: 0, anonExclusive: true, mapcount: 1 });
    expect(v.folio!.anonVma).toBe(e.rmap.anon.of(vma)!.id);
    expect(cpuAccess(e, mm, A, 'write', { tag: 3 }).tag).toBe(3);
    clean(e);
  });

  it('P writable: read ok; write ok and only marks it dirty (same page, new tag)', () => {
    const { e, mm } = setup();
    cpuAccess(e, mm, A, 'write', { tag: 1 });
    rewrite(e, mm, A, { dirty: false, young: false });
    const pfn = at(e, mm, A).entry.number;
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 1 });
    expect(bits(e, mm, A)).toMatchObject({ young: true, dirty: false });
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok'); // a spurious write fault: dirty
    expect(bits(e, mm, A)).toMatchObject({ young: true, dirty: true, write: true });
    expect(cpuAccess(e, mm, A, 'write', { tag: 2 })).toEqual({ outcome: 'ok', tag: 2 });
    expect(at(e, mm, A).entry.number).toBe(pfn);
    clean(e);
  });

  it('P read-only, AnonExclusive: read ok; write reuses the page → writable + dirty + young (no copy)', () => {
    const { e, mm } = setup();
    cpuAccess(e, mm, A, 'write', { tag: 4 });
    rewrite(e, mm, A, { write: false, dirty: false });
    const pfn = at(e, mm, A).entry.number;
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 4 });
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(at(e, mm, A).entry.number).toBe(pfn);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true, young: true });
    clean(e);
  });

  it('PL read-only, AnonExclusive page of an mTHP: write reuses that page only', () => {
    const { e, mm } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A, { write: true, order: 2 });
    for (let i = 0; i < 4; i++) rewrite(e, mm, A + i * P, { write: false });
    expect(handleMmFault(e, mm, A + 2 * P, { write: true })).toBe('ok');
    expect(leavesIn(e, mm, A, A + 4 * P).map((l) => [l.kind, l.entry.present!.write])).toEqual([['PL', false], ['PL', false], ['PL', true], ['PL', false]]);
    clean(e);
  });

  it('P read-only shared after fork: read ok in both; the first writer copies (tag copied), the other then reuses (refcount 1) and moves the anon rmap', () => {
    const { e, mm, vma } = setup();
    cpuAccess(e, mm, A, 'write', { tag: 0x77 });
    const old = at(e, mm, A).folio!;
    const { child, cv } = forkPage(e, mm, vma, A);
    clean(e);
    expect(cpuAccess(e, child, A, 'read')).toEqual({ outcome: 'ok', tag: 0x77 });
    expect(handleMmFault(e, child, A, { write: true })).toBe('ok');
    const copy = at(e, child, A);
    expect(copy.folio!.id).not.toBe(old.id);
    expect(copy.entry.present).toMatchObject({ write: true, dirty: true, young: true });
    expect(e.page('pfn', copy.entry.number!)).toMatchObject({ tag: 0x77, anonExclusive: true, mapcount: 1 });
    expect(copy.folio!.anonVma).toBe(e.rmap.anon.of(cv)!.id);
    expect(e.folio(old.id).mapcount).toBe(1);
    expect(rmapReaches(e, child, A)).toBe(true);
    clean(e);
    // the parent's write: mapcount 1, not pinned → reuse, folio_move_anon_rmap to the parent's anon_vma
    expect(cpuAccess(e, mm, A, 'write', { tag: 0x78 })).toEqual({ outcome: 'ok', tag: 0x78 });
    expect(at(e, mm, A).folio!.id).toBe(old.id);
    expect(e.folio(old.id).anonVma).toBe(e.rmap.anon.of(vma)!.id);
    expect(e.page('pfn', old.number)!.anonExclusive).toBe(true);
    expect(cpuAccess(e, child, A, 'read').tag).toBe(0x77);
    clean(e);
  });

  it('a pinned read-only page with mapcount 1 is copied, not reused; the old folio stays (mapped by nothing, pinned)', () => {
    const { e, mm, vma } = setup();
    cpuAccess(e, mm, A, 'write', { tag: 6 });
    const old = at(e, mm, A).folio!;
    const { child } = forkPage(e, mm, vma, A);
    writeLeaves(e, child, [{ va: A, level: 'pte', raw: { lo: 0, hi: 0 } }]); // child unmapped it
    opsState(e).pins.set(old.id, 1);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(at(e, mm, A).folio!.id).not.toBe(old.id);
    expect(e.folios.exists(old.id)).toBe(true);
    expect(e.folio(old.id).mapcount).toBe(0);
    clean(e);
  });

  it('a KSM folio is always copied and freed when its last mapping goes', () => {
    const { e, mm } = setup();
    cpuAccess(e, mm, A, 'write', { tag: 8 });
    rewrite(e, mm, A, { write: false });
    const old = at(e, mm, A).folio!;
    e.folios.setFlags(old.id, { ksm: true });
    expect(cpuAccess(e, mm, A, 'write', { tag: 9 })).toEqual({ outcome: 'ok', tag: 9 });
    expect(at(e, mm, A).folio!.id).not.toBe(old.id);
    expect(e.folios.exists(old.id)).toBe(false);
    clean(e);
  });

  it('a large folio mapped by a single read-only PTE (not exclusive) is copied; one mapped twice in this mm only is reused', () => {
    const { e, mm } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A, { write: true, order: 1 });
    const f = at(e, mm, A).folio!;
    writeLeaves(e, mm, [{ va: A + P, level: 'pte', raw: { lo: 0, hi: 0 } }]);
    rewrite(e, mm, A, { write: false });
    e.folios.setAnonExclusive(f.id, 0, 2, false);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(at(e, mm, A).folio!.order).toBe(0);
    const t = setup({ flags: { thp: true } });
    handleMmFault(t.e, t.mm, A, { write: true, order: 1 });
    const g = at(t.e, t.mm, A).folio!;
    for (const a of [A, A + P]) rewrite(t.e, t.mm, a, { write: false });
    t.e.folios.setAnonExclusive(g.id, 0, 2, false);
    expect(handleMmFault(t.e, t.mm, A + P, { write: true })).toBe('ok');
    expect(at(t.e, t.mm, A + P).folio!.id).toBe(g.id);
    expect(t.e.page('pfn', g.number + 1)!.anonExclusive).toBe(true);
    clean(e);
    clean(t.e);
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
      clean(e);
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
    clean(e);
  });

  it('PN in a PROT_NONE VMA: SIGSEGV on read and write, nothing changes', () => {
    const { e, mm, vma } = setup({ flags: { read: false, write: false, exec: false } });
    const id = e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'present', number: 0x2000, protnone: true, user: true } });
    expect(at(e, mm, A).kind).toBe('PN');
    const before = snapshot(e);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'SIGSEGV' });
    expect(cpuAccess(e, mm, A, 'write')).toEqual({ outcome: 'SIGSEGV' });
    expect(handleMmFault(e, mm, A)).toBe('SIGSEGV');
    expect(snapshot(e)).toBe(before);
    expect(e.folio(id).mapcount).toBe(1);
    clean(e);
  });
});

describe('§5.5 non-present PTEs: MIG, DX, SWAP, HWP, markers', () => {
  for (const kind of ['migration-read', 'migration-read-exclusive', 'migration-write'] as const) {
    it(`${kind}: wait and retry on read and write (cpuAccess gives up with retry), nothing changes`, () => {
      const { e, mm, vma } = setup();
      e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
      mm.map(A, { entry: { kind, number: 0x2000 } });
      const before = snapshot(e);
      expect(handleMmFault(e, mm, A)).toBe('retry');
      expect(handleMmFault(e, mm, A, { write: true })).toBe('retry');
      expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'retry' });
      expect(cpuAccess(e, mm, A, 'write')).toEqual({ outcome: 'retry' });
      expect(snapshot(e)).toBe(before);
      clean(e);
    });
  }

  it('DX: read restores the present PTE in place (old, writable: VM_WRITE + AnonExclusive), no mapcount change; a write then just dirties it', () => {
    const { e, mm, vma } = setup();
    const id = e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A), flags: { dirty: true } });
    e.folios.setTag(id, 0, 1, 0x44);
    mm.map(A, { entry: { kind: 'device-exclusive', number: 0x2000, flags: { softDirty: true } } });
    e.folios.setAnonExclusive(id, 0, 1, true);
    expect(e.folio(id).mapcount).toBe(1);
    expect(handleMmFault(e, mm, A)).toBe('ok');
    expect(at(e, mm, A).kind).toBe('P');
    expect(bits(e, mm, A)).toMatchObject({ young: false, write: true, dirty: true, softDirty: true, user: true });
    expect(e.folio(id).mapcount).toBe(1);
    expect(cpuAccess(e, mm, A, 'write', { tag: 0x45 })).toEqual({ outcome: 'ok', tag: 0x45 });
    expect(at(e, mm, A).entry.number).toBe(0x2000);
    clean(e);
  });

  it('DX of a page that is not AnonExclusive restores read-only; the write then goes through do_wp_page (reuse, mapcount 1)', () => {
    const { e, mm, vma } = setup();
    const id = e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'device-exclusive', number: 0x2000 } });
    expect(cpuAccess(e, mm, A, 'write', { tag: 1 })).toEqual({ outcome: 'ok', tag: 1 });
    expect(at(e, mm, A).folio!.id).toBe(id);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    clean(e);
  });

  it('SWAP with the exclusive bit: read swaps in a new order-0 folio with the slot tag, AnonExclusive, read-only; the slot is freed', () => {
    const { e, mm, vma } = setup();
    const swap = opsState(e).swap;
    const off = swap.alloc(0x5a);
    mm.map(A, { entry: { kind: 'swap', swapType: 0, offset: off, flags: { exclusive: true } } });
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0x5a });
    const v = at(e, mm, A);
    expect(v.kind).toBe('P');
    expect(v.entry.present!.write).toBe(false);
    expect(v.folio).toMatchObject({ order: 0, mapcount: 1, anonVma: e.rmap.anon.of(vma)!.id, index: linearPageIndex(vma, A) });
    expect(e.page('pfn', v.entry.number!)!.anonExclusive).toBe(true);
    expect(swap.has(off)).toBe(false);
    expect(rmapReaches(e, mm, A)).toBe(true);
    clean(e);
  });

  it('SWAP with the exclusive bit, write: writable + dirty at once', () => {
    const { e, mm } = setup();
    const off = opsState(e).swap.alloc(0x5b);
    mm.map(A, { entry: { kind: 'swap', swapType: 0, offset: off, flags: { exclusive: true } } });
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    expect(e.page('pfn', at(e, mm, A).entry.number!)!.tag).toBe(0x5b);
    clean(e);
  });

  it('SWAP shared (no exclusive bit, count 2): swap-in read-only and not exclusive, count drops to 1; the write then reuses (only mapping)', () => {
    const { e, mm, vma } = setup();
    const swap = opsState(e).swap;
    const off = swap.alloc(0x5c);
    swap.dup(off);
    mm.map(A, { entry: { kind: 'swap', swapType: 0, offset: off } });
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    const v = at(e, mm, A);
    expect(v.entry.present!.write).toBe(false);
    expect(e.page('pfn', v.entry.number!)!.anonExclusive).toBe(false);
    expect(v.folio!.anonVma).toBe(e.rmap.anon.of(vma)!.root.id);
    expect(swap.count(off)).toBe(1);
    clean(e);
    expect(cpuAccess(e, mm, A, 'write', { tag: 0x5d })).toEqual({ outcome: 'ok', tag: 0x5d });
    expect(at(e, mm, A).folio!.id).toBe(v.folio!.id);
    clean(e);
  });

  it('HWP and MK-PSN are SIGBUS, MK-GRD is SIGSEGV, on read and write; nothing changes', () => {
    const { e, mm, vma } = setup();
    e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'hwpoison', number: 0x2000 } });
    mm.map(A + P, { entry: { kind: 'marker', poisoned: true } });
    mm.map(A + 2 * P, { entry: { kind: 'marker', guard: true } });
    expect([A, A + P, A + 2 * P].map((a) => at(e, mm, a).kind)).toEqual(['HWP', 'MK-PSN', 'MK-GRD']);
    const before = snapshot(e);
    for (const access of ['read', 'write'] as const) {
      expect(cpuAccess(e, mm, A, access)).toEqual({ outcome: 'SIGBUS' });
      expect(cpuAccess(e, mm, A + P, access)).toEqual({ outcome: 'SIGBUS' });
      expect(cpuAccess(e, mm, A + 2 * P, access)).toEqual({ outcome: 'SIGSEGV' });
    }
    expect(snapshot(e)).toBe(before);
    clean(e);
  });

  it('MK-UW: the marker is cleared and the slot handled as NONE (read → ZP, write → new folio)', () => {
    const { e, mm } = setup();
    mm.map(A, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(A + P, { entry: { kind: 'marker', uffdWp: true } });
    expect(handleMmFault(e, mm, A)).toBe('ok');
    expect(at(e, mm, A).kind).toBe('ZP');
    expect(handleMmFault(e, mm, A + P, { write: true })).toBe('ok');
    expect(at(e, mm, A + P).kind).toBe('P');
    clean(e);
  });

  it('a hwpoisoned page mapped by a present PTE: the CPU read raises SIGBUS (§12.2)', () => {
    const { e, mm } = setup();
    cpuAccess(e, mm, A, 'write');
    e.wasmInstance().exports.pageSetFlags(at(e, mm, A).folio!.id, 1, 1 << 8, 0);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'SIGBUS' });
  });
});

describe('§5.5 DP-R / DP-W: migrate_to_ram, then the access retries', () => {
  function device(kind: 'device-private-read' | 'device-private-write', exclusive: boolean) {
    const { e, mm, vma } = setup();
    const chunk = e.addDeviceMemory();
    const av = e.rmap.anon.prepare(vma);
    const dev = e.createFolio({ number: chunk.base + 3, anonVma: av.id, index: linearPageIndex(vma, A) });
    e.folios.setTag(dev, 0, 1, 0xd0);
    mm.map(A, { entry: { kind, number: chunk.base + 3 } });
    e.folios.setAnonExclusive(dev, 0, 1, exclusive);
    return { e, mm, vma, dev };
  }

  it('DP-R (AnonExclusive) read: the device folio comes back as a read-only exclusive page with its tag; the device folio is freed', () => {
    const { e, mm, dev } = device('device-private-read', true);
    expect(handleMmFault(e, mm, A)).toBe('retry');
    const v = at(e, mm, A);
    expect(v.kind).toBe('P');
    expect(v.entry.present).toMatchObject({ write: false, user: true, nx: true });
    expect(e.page('pfn', v.entry.number!)).toMatchObject({ tag: 0xd0, anonExclusive: true, mapcount: 1 });
    expect(e.folios.exists(dev)).toBe(false);
    expect(rmapReaches(e, mm, A)).toBe(true);
    clean(e);
  });

  it('DP-R (AnonExclusive) write: migrate_to_ram, then the write fault reuses the page (no copy; §3.3 consequence)', () => {
    const { e, mm } = device('device-private-read', true);
    expect(cpuAccess(e, mm, A, 'write', { tag: 0xd1 })).toEqual({ outcome: 'ok', tag: 0xd1 });
    expect(at(e, mm, A).folio!.mapcount).toBe(1);
    expect(e.folioCensus().anon).toBe(1); // only the page migrate_to_ram made (no zero page was needed)
    clean(e);
  });

  it('DP-W read and write: writable at once', () => {
    const { e, mm } = device('device-private-write', false);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0xd0 });
    expect(bits(e, mm, A).write).toBe(true);
    expect(e.page('pfn', at(e, mm, A).entry.number!)!.anonExclusive).toBe(true);
    expect(cpuAccess(e, mm, A, 'write', { tag: 2 }).tag).toBe(2);
    clean(e);
  });

  it('DP-R shared by two mms after fork: one fault brings the page back in both, read-only, not exclusive (§12.3)', () => {
    const { e, mm, vma, dev } = device('device-private-read', false);
    const child = e.createMm();
    const cv = child.addVma({ start: vma.start, end: vma.end });
    e.rmap.anon.fork(cv, vma);
    child.map(A, { entry: { kind: 'device-private-read', number: e.folio(dev).number } });
    expect(cpuAccess(e, child, A, 'read')).toEqual({ outcome: 'ok', tag: 0xd0 });
    const v = at(e, mm, A);
    expect(v.kind).toBe('P');
    expect(at(e, child, A).entry.number).toBe(v.entry.number);
    expect(v.folio!.mapcount).toBe(2);
    expect(e.page('pfn', v.entry.number!)!.anonExclusive).toBe(false);
    // the child's write copies; the parent still reads the device's tag
    expect(cpuAccess(e, child, A, 'write', { tag: 0xee })).toEqual({ outcome: 'ok', tag: 0xee });
    expect(cpuAccess(e, mm, A, 'read').tag).toBe(0xd0);
    clean(e);
  });

  it('the caller`s migrateToRam hook runs instead (its error outcome fails the fault; otherwise retry)', () => {
    const { e, mm, dev } = device('device-private-write', true);
    const seen: number[] = [];
    expect(handleMmFault(e, mm, A, { migrateToRam: ({ folio }) => void seen.push(folio.id) })).toBe('retry');
    expect(handleMmFault(e, mm, A, { migrateToRam: () => 'SIGBUS' })).toBe('SIGBUS');
    expect(seen).toEqual([dev]);
    expect(at(e, mm, A).kind).toBe('DP-W');
    e.folios.setFlags(dev, { locked: true });
    expect(handleMmFault(e, mm, A)).toBe('retry'); // trylock fails: wait, retry
    expect(at(e, mm, A).kind).toBe('DP-W');
    clean(e);
  });

  it('offset model with series semantics: the same migrate_to_ram finds the DP entry by offset', () => {
    const e = new Engine({ ramPages: 1 << 14, deviceChunkPages: 4096, deviceModel: 'offset', semantics: 'series' });
    const mm = e.createMm();
    const vma = mm.addVma({ start: A, end: END });
    const chunk = e.addDeviceMemory();
    const dev = e.createFolio({ namespace: 'device-private', number: chunk.base + 1, index: linearPageIndex(vma, A) });
    e.folios.setTag(dev, 0, 1, 0xd7);
    mm.map(A, { entry: { kind: 'device-private-write', number: chunk.base + 1 } });
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0xd7 });
    expect(at(e, mm, A).kind).toBe('P');
    expect(e.folios.exists(dev)).toBe(false);
    clean(e);
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
    clean(e);
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
    clean(e);
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
    clean(e);
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
    clean(e);
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
    clean(e);
  });

  it('PMD MIG: wait, retry; nothing changes', () => {
    const { e, mm, vma } = setup({ flags: { thp: true } });
    e.createFolio({ number: 0x2000, order: 9, index: linearPageIndex(vma, A) });
    mm.map(A, { level: 'pmd', entry: { kind: 'migration-write', number: 0x2000 } });
    const before = snapshot(e);
    expect(handleMmFault(e, mm, A + P)).toBe('retry');
    expect(cpuAccess(e, mm, A, 'write')).toEqual({ outcome: 'retry' });
    expect(snapshot(e)).toBe(before);
    clean(e);
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
    clean(e);
  });
});

describe('§5.7 file faults', () => {
  const FILE = 7;

  it('private read: the page-cache folio (read in with the file tag, index = linear page index) mapped read-only; rmap (i_mmap) finds it', () => {
    const { e, mm, vma } = setup({ file: FILE, pgoff: 100 });
    opsState(e).pageCache.setFileTag(FILE, 105, 0xf5);
    expect(cpuAccess(e, mm, A + 5 * P, 'read')).toEqual({ outcome: 'ok', tag: 0xf5 });
    const v = at(e, mm, A + 5 * P);
    expect(v.kind).toBe('P');
    expect(v.entry.present).toMatchObject({ write: false, user: true, nx: true });
    expect(v.folio).toMatchObject({ anon: false, file: FILE, index: 105, mapcount: 1 });
    expect(opsState(e).pageCache.lookup(FILE, 105)).toBe(v.folio!.id);
    expect(rmapCandidates(e, v.folio!.id).map((c) => c.vma.id)).toEqual([vma.id]);
    expect(rmapReaches(e, mm, A + 5 * P)).toBe(true);
    clean(e);
  });

  it('a cached large folio is used in place: the page at the right offset of it is mapped', () => {
    const { e, mm } = setup({ file: FILE, pgoff: 0 });
    const id = e.createFolio({ number: 0x3000, order: 2, file: FILE, index: 4 });
    opsState(e).pageCache.insert(FILE, 4, 4, id);
    e.folios.setTag(id, 2, 1, 0x66);
    expect(cpuAccess(e, mm, A + 6 * P, 'read')).toEqual({ outcome: 'ok', tag: 0x66 });
    expect(at(e, mm, A + 6 * P).entry.number).toBe(0x3002);
    clean(e);
  });

  it('private write (do_cow_fault): a new anon order-0 copy of the cached page, writable + dirty, exclusive, index = linear index; the cached page is not mapped', () => {
    const { e, mm, vma } = setup({ file: FILE, pgoff: 100 });
    opsState(e).pageCache.setFileTag(FILE, 102, 0xf2);
    expect(handleMmFault(e, mm, A + 2 * P, { write: true })).toBe('ok');
    const v = at(e, mm, A + 2 * P);
    expect(v.folio).toMatchObject({ anon: true, order: 0, index: 102, anonVma: e.rmap.anon.of(vma)!.id, mapcount: 1 });
    expect(v.entry.present).toMatchObject({ write: true, dirty: true, young: true });
    expect(e.page('pfn', v.entry.number!)).toMatchObject({ tag: 0xf2, anonExclusive: true });
    const cached = opsState(e).pageCache.lookup(FILE, 102)!;
    expect(e.folio(cached)).toMatchObject({ mapcount: 0, file: FILE });
    expect(rmapReaches(e, mm, A + 2 * P)).toBe(true);
    clean(e);
  });

  it('private read then write: do_wp_page copies the file page (COW), the page-cache folio stays cached and unmapped', () => {
    const { e, mm } = setup({ file: FILE });
    opsState(e).pageCache.setFileTag(FILE, 0, 0xf0);
    cpuAccess(e, mm, A, 'read');
    const cached = at(e, mm, A).folio!.id;
    expect(cpuAccess(e, mm, A, 'write', { tag: 0xf9 })).toEqual({ outcome: 'ok', tag: 0xf9 });
    expect(at(e, mm, A).folio!.anon).toBe(true);
    expect(e.folio(cached)).toMatchObject({ mapcount: 0 });
    expect(e.page('pfn', e.folio(cached).number)!.tag).toBe(0xf0);
    clean(e);
  });

  it('shared write: the cached page itself, writable + dirty, folio dirty; the tag lands in the page cache', () => {
    const { e, mm } = setup({ file: FILE, flags: { shared: true } });
    expect(cpuAccess(e, mm, A + P, 'write', { tag: 0xab })).toEqual({ outcome: 'ok', tag: 0xab });
    const v = at(e, mm, A + P);
    expect(v.folio).toMatchObject({ anon: false, file: FILE, index: 1, mapcount: 1 });
    expect(v.folio!.flags.dirty).toBe(true);
    expect(v.entry.present).toMatchObject({ write: true, dirty: true });
    expect(e.page('pfn', v.entry.number!)!.tag).toBe(0xab);
    clean(e);
  });

  it('shared read maps per vm_page_prot (writable in a shared writable VMA, not dirty); read-only shared VMA read-only', () => {
    const { e, mm } = setup({ file: FILE, flags: { shared: true } });
    handleMmFault(e, mm, A);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: false });
    const t = setup({ file: FILE, flags: { shared: true, write: false } });
    handleMmFault(t.e, t.mm, A);
    expect(bits(t.e, t.mm, A).write).toBe(false);
    expect(cpuAccess(t.e, t.mm, A, 'write')).toEqual({ outcome: 'SIGSEGV' });
    clean(e);
    clean(t.e);
  });

  it('a shared read-only PTE in a shared writable VMA (write-notify) becomes writable + dirty on write, same page', () => {
    const { e, mm } = setup({ file: FILE, flags: { shared: true } });
    handleMmFault(e, mm, A);
    rewrite(e, mm, A, { write: false });
    const pfn = at(e, mm, A).entry.number;
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(at(e, mm, A).entry.number).toBe(pfn);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    clean(e);
  });
});
