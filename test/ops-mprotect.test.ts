// mprotect (kernel-operations.md §3): the §3.1 argument/error table in kernel order (including the
// no-rollback ENOMEM of a hole after changed VMAs), §3.2 split/merge per VMA, every §3.3 PTE-kind row with the
// "try to make writable" rule, and §3.4 at the PMD level (partial coverage splits). Every test checks entries,
// mapcounts, AnonExclusive and rmap reachability, and the invariants after each operation; rejected calls leave
// the engine exactly as it was.
import { describe, expect, it } from 'vitest';
import { Engine, Mm, PMD_SIZE, linearPageIndex, type Vma, type VmaFlags } from '../src/index.js';
import { leavesIn, presentRaw, writeLeaves, zeroPages, type LeafView } from '../src/mm/leaf.js';
import { canChangeWritable, changeProtection, mprotect, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE } from '../src/mm/mprotect.js';
import { opsState } from '../src/mm/state.js';
import { rmapWalk } from '../src/rmap/rmap-walk.js';
import { expectPvmwError } from './helpers.js';

const P = 4096;
const A = 0x4000_0000;
const END = A + 8 * PMD_SIZE;
const RW = { read: true, write: true };
const R = { read: true };
const NONE = {};

function setup(flags: Partial<VmaFlags> = {}, o: { file?: number; start?: number; end?: number } = {}) {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: o.start ?? A, end: o.end ?? END, flags: { thp: true, ...flags }, file: o.file });
  return { e, mm, vma };
}

/** An anon folio of `order` at `addr` of `vma` (index = linear page index), `exclusive` pages from 0. */
function anon(e: Engine, vma: Vma, addr: number, number: number, order = 0, exclusive = 1 << order): number {
  const av = e.rmap.anon.prepare(vma);
  const f = e.createFolio({ number, order, anonVma: av.id, index: linearPageIndex(vma, addr) });
  if (exclusive > 0) e.folios.setAnonExclusive(f, 0, exclusive, true);
  return f;
}

/** The leaf starting at va. */
function at(e: Engine, mm: Mm, va: number): LeafView {
  const l = leavesIn(e, mm, va, va + P)[0];
  if (!l || l.va !== va) throw new Error(`no leaf at 0x${va.toString(16)}`);
  return l;
}

function vmas(mm: Mm) {
  return mm.vmas.all().map((v) => [v.start, v.end, v.pgoff, v.flags.read, v.flags.write, v.flags.exec]);
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
  return out;
}

describe('§3.1 arguments and errors, in kernel order', () => {
  function space() {
    const s = setup();
    anon(s.e, s.vma, A, 0x1000);
    s.mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    return s;
  }

  it('§3.1 rejected calls return the errno and change nothing', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    const cases: [number, number, number | object, string][] = [
      [A + 1, P, PROT_GROWSDOWN | PROT_GROWSUP, 'EINVAL'], // both grows bits: checked before alignment
      [A + 1, P, R, 'EINVAL'], // start not page aligned
      [A, -P, R, 'ENOMEM'], // start + PAGE_ALIGN(len) wraps (a huge size_t)
      [A, P, 0x10, 'EINVAL'], // prot bits the arch does not know
      [A, P, PROT_READ | 0x40, 'EINVAL'],
      [END, P, R, 'ENOMEM'], // no VMA in the range
      [A - P, 2 * P, R, 'ENOMEM'], // the first VMA starts after start
      [A, P, PROT_READ | PROT_GROWSDOWN, 'EINVAL'], // VMA without VM_GROWSDOWN
      [A, P, PROT_READ | PROT_GROWSUP, 'EINVAL'], // VMA without VM_GROWSUP
    ];
    for (const [addr, len, prot, errno] of cases) {
      expect(mprotect(e, mm, addr, len, prot as never), `${addr.toString(16)} ${len} ${JSON.stringify(prot)}`).toEqual({ ok: false, errno });
      expect(snapshot(e)).toBe(before);
    }
    clean(e);
  });

  it('§3.1 len == 0 succeeds and does nothing, even where nothing is mapped', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    expect(mprotect(e, mm, A, 0, R)).toEqual({ ok: true, value: 0 });
    expect(mprotect(e, mm, END + PMD_SIZE, 0, NONE)).toEqual({ ok: true, value: 0 });
    expect(snapshot(e)).toBe(before);
    clean(e);
  });

  it('§3.1 PROT_WRITE on a VMA without VM_MAYWRITE (read-only shared file) → EACCES, nothing changed', () => {
    const { e, mm } = setup({ shared: true, write: false, mayWrite: false }, { file: 7 });
    const f = e.createFolio({ number: 0x2000, file: 7, index: 0 });
    mm.map(A, { entry: { kind: 'present', number: 0x2000 } });
    const before = snapshot(e);
    expect(mprotect(e, mm, A, P, RW)).toEqual({ ok: false, errno: 'EACCES' });
    expect(snapshot(e)).toBe(before);
    expect(mprotect(e, mm, A, P, R).ok).toBe(true); // read stays allowed
    expect(e.folio(f).mapcount).toBe(1);
    clean(e);
  });

  it('§3.1 a hugetlb VMA refuses a split that is not huge-page aligned → EINVAL, nothing changed', () => {
    const { e, mm } = setup({ hugetlb: '2M' });
    const before = snapshot(e);
    expect(mprotect(e, mm, A + P, P, R)).toEqual({ ok: false, errno: 'EINVAL' });
    expect(snapshot(e)).toBe(before);
    clean(e);
  });

  it('§3.1 a split the VMA count does not allow (split_vma at max_map_count) → ENOMEM, nothing changed', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    expect(mprotect(e, mm, A + P, P, R, { maxMapCount: 2 })).toEqual({ ok: false, errno: 'ENOMEM' }); // needs two splits
    expect(snapshot(e)).toBe(before);
    expect(mprotect(e, mm, A, P, R, { maxMapCount: 2 }).ok).toBe(true); // one split: 1 VMA < 2
    expect(mm.vmas.size).toBe(2);
    clean(e);
  });

  it('§3.1 input the syscall could never see is a PvmwError, nothing changed', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    expectPvmwError(() => mprotect(e, mm, 'x' as never, P, R), 'BAD_ADDRESS', 'x');
    expectPvmwError(() => mprotect(e, mm, A, 1.5, R), 'BAD_RANGE', '1.5');
    expectPvmwError(() => mprotect(e, mm, A, P, { raed: true } as never), 'BAD_SETTING', 'raed');
    expectPvmwError(() => mprotect(e, mm, A, P, { read: 1 } as never), 'BAD_SETTING', 'read');
    expectPvmwError(() => mprotect(e, mm, A, P, -1), 'BAD_SETTING', '-1');
    expect(snapshot(e)).toBe(before);
    clean(e);
  });

  it('§3.1 a hole later in the range → ENOMEM with the VMAs before it already changed (no rollback)', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const mm = e.createMm();
    const v1 = mm.addVma({ start: A, end: A + 4 * P });
    const v3 = mm.addVma({ start: A + 8 * P, end: A + 12 * P });
    anon(e, v1, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    anon(e, v3, A + 8 * P, 0x1001);
    mm.map(A + 8 * P, { entry: { kind: 'present', number: 0x1001, write: true } });
    expect(mprotect(e, mm, A, 12 * P, R)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(mm.vmas.find(A)!.flags.write).toBe(false); // changed before the hole was found
    expect(at(e, mm, A).entry.bits.write).toBe(false);
    expect(mm.vmas.find(A + 8 * P)!.flags.write).toBe(true); // after the hole: untouched
    expect(at(e, mm, A + 8 * P).entry.bits.write).toBe(true);
    clean(e);
    // A range that ends in a hole: every VMA in it is changed, then ENOMEM.
    expect(mprotect(e, mm, A + 8 * P, 8 * P, NONE)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(mm.vmas.find(A + 8 * P)!.flags.read).toBe(false);
    expect(at(e, mm, A + 8 * P).kind).toBe('PN');
    clean(e);
  });

  it('§3.1 EACCES on a later VMA: the VMAs before it are already changed', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const mm = e.createMm();
    mm.addVma({ start: A, end: A + 4 * P, flags: { write: false } });
    mm.addVma({ start: A + 4 * P, end: A + 8 * P, file: 3, flags: { shared: true, write: false, mayWrite: false } });
    expect(mprotect(e, mm, A, 8 * P, { read: true, write: true, exec: true })).toEqual({ ok: false, errno: 'EACCES' });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, A / P, true, true, true], [A + 4 * P, A + 8 * P, 0, true, false, false]]);
    clean(e);
  });
});

describe('§3.2 per VMA: split, new flags, merge', () => {
  it('§3.2 the middle of a VMA: split in three (pgoffs follow), the anon_vma shared, rmap still finds the folio; back: one VMA again', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A + 4 * P, 0x1004);
    mm.map(A + 4 * P, { entry: { kind: 'present', number: 0x1004, write: true } });
    const av = e.rmap.anon.of(vma)!;
    expect(mprotect(e, mm, A + 4 * P, 2 * P, R)).toEqual({ ok: true, value: 0 });
    expect(vmas(mm)).toEqual([
      [A, A + 4 * P, A / P, true, true, false],
      [A + 4 * P, A + 6 * P, A / P + 4, true, false, false],
      [A + 6 * P, END, A / P + 6, true, true, false],
    ]);
    for (const v of mm.vmas.all()) expect(e.rmap.anon.of(v)).toBe(av);
    expect(rmapFinds(e, f)).toEqual([A + 4 * P]);
    clean(e);
    expect(mprotect(e, mm, A + 4 * P, 2 * P, RW).ok).toBe(true);
    expect(vmas(mm)).toEqual([[A, END, A / P, true, true, false]]);
    expect(at(e, mm, A + 4 * P).entry.bits.write).toBe(true); // exclusive: writable again at once
    expect(rmapFinds(e, f)).toEqual([A + 4 * P]);
    clean(e);
  });

  it('§3.2 step 1: flags unchanged → nothing at all (same VMA object, entries untouched)', () => {
    const { e, mm, vma } = setup();
    anon(e, vma, A, 0x1000, 0, 0);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, dirty: true } });
    const before = snapshot(e);
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(snapshot(e)).toBe(before);
    expect(mm.vmas.all()[0]).toBe(vma);
  });

  it('§3.2 step 6: a private VM_LOCKED VMA becoming writable is populated at once (write faults: ZP replaced, holes filled)', () => {
    const { e, mm, vma } = setup({ write: false, locked: true, thp: false });
    writeLeaves(e, mm, [{ va: A, level: 'pte', raw: presentRaw('pte', zeroPages(e).zeroPfn, { user: true, special: true, nx: true }) }]);
    anon(e, vma, A + 2 * P, 0x1002, 0, 0); // AnonExclusive clear: change_protection leaves it read-only
    e.folios.setTag(0x1002, 0, 1, 0x77);
    mm.map(A + 2 * P, { entry: { kind: 'present', number: 0x1002, dirty: true } });
    expect(mprotect(e, mm, A, 3 * P, RW).ok).toBe(true);
    const leaves = leavesIn(e, mm, A, A + 3 * P);
    expect(leaves.map((l) => [l.kind, l.entry.bits.write])).toEqual([['P', true], ['P', true], ['P', true]]);
    expect(leaves.map((l) => e.page('pfn', l.entry.number!)).map((p) => [p!.tag, p!.anonExclusive])).toEqual([[0, true], [0, true], [0x77, true]]);
    expect(leavesIn(e, mm, A + 3 * P, END)).toEqual([]); // only the range is populated
    clean(e);
    // Not locked, or shared: nothing is populated.
    const s = setup({ write: false });
    expect(mprotect(s.e, s.mm, A, 3 * P, RW).ok).toBe(true);
    expect(leavesIn(s.e, s.mm, A, END)).toEqual([]);
  });

  it('§3.2 a range over several VMAs: each changed, then merged where compatible', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const mm = e.createMm();
    mm.addVma({ start: A, end: A + 4 * P, flags: { write: false } });
    mm.addVma({ start: A + 4 * P, end: A + 8 * P, flags: { exec: true } });
    mm.addVma({ start: A + 8 * P, end: A + 12 * P });
    expect(mprotect(e, mm, A + 2 * P, 8 * P, { read: true, exec: true }).ok).toBe(true);
    expect(vmas(mm)).toEqual([
      [A, A + 2 * P, A / P, true, false, false],
      [A + 2 * P, A + 10 * P, A / P + 2, true, false, true],
      [A + 10 * P, A + 12 * P, A / P + 10, true, true, false],
    ]);
    clean(e);
  });
});

describe('§3.3 per PTE entry kind', () => {
  it('§3.3 P (AnonExclusive): read-only under PROT_READ, writable again at once under RW; young/dirty/soft-dirty kept', () => {
    const { e, mm, vma } = setup();
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true, young: true, dirty: true, softDirty: true, user: true } });
    expect(mprotect(e, mm, A, P, R).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: false, young: true, dirty: true, softDirty: true, nx: true, protnone: false });
    clean(e);
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: true, young: true, dirty: true, softDirty: true });
    expect(e.folio(f).mapcount).toBe(1);
    clean(e);
    expect(mprotect(e, mm, A, P, { read: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: false, nx: false });
    clean(e);
  });

  it('§3.3 P COW-shared (AnonExclusive clear) stays read-only after mprotect(RW)', () => {
    const { e, mm, vma } = setup({ write: false });
    anon(e, vma, A, 0x1000, 0, 0);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, dirty: true } });
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.bits.write).toBe(false);
    clean(e);
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
    clean(e);
  });

  it('§3.3 ZP: new protection, special kept, never writable', () => {
    const { e, mm } = setup({ write: false });
    writeLeaves(e, mm, [{ va: A, level: 'pte', raw: presentRaw('pte', zeroPages(e).zeroPfn, { user: true, special: true, nx: true }) }]);
    expect(mprotect(e, mm, A, P, { read: true, write: true, exec: true }).ok).toBe(true);
    const l = at(e, mm, A);
    expect(l.kind).toBe('ZP');
    expect(l.entry.present).toMatchObject({ write: false, special: true, nx: false });
    clean(e);
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
    clean(e);
    expect(mprotect(e, mm, A, 2 * P, RW).ok).toBe(true);
    expect([at(e, mm, A).kind, at(e, mm, A + P).kind]).toEqual(['P', 'P']);
    expect([at(e, mm, A).entry.bits.write, at(e, mm, A + P).entry.bits.write]).toEqual([true, false]);
    clean(e);
  });

  it('§3.3 a uffd-wp present entry is not made writable', () => {
    const { e, mm, vma } = setup({ write: false });
    anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, uffdWp: true } });
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(at(e, mm, A).entry.present).toMatchObject({ write: false, uffdWp: true });
    clean(e);
  });

  it('§3.3 NONE: untouched (no entry appears)', () => {
    const { e, mm } = setup();
    expect(mprotect(e, mm, A, 16 * P, R).ok).toBe(true);
    expect(leavesIn(e, mm, A, END)).toEqual([]);
    clean(e);
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
    clean(e);
  });

  it('§3.3 MIG-W → MIG-R for a file folio', () => {
    const { e, mm } = setup({ shared: true }, { file: 5 });
    e.createFolio({ number: 0x3000, file: 5, index: 0 });
    mm.map(A, { entry: { kind: 'migration-write', number: 0x3000, flags: { softDirty: true } } });
    expect(mprotect(e, mm, A, P, R).ok).toBe(true);
    expect(at(e, mm, A).kind).toBe('MIG-R');
    expect(at(e, mm, A).entry.bits.softDirty).toBe(true);
    clean(e);
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
    clean(e);
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
      clean(e);
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
    clean(e);
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
    clean(e);
    expect(mprotect(e, mm, A + PMD_SIZE, PMD_SIZE, RW).ok).toBe(true);
    expect(at(e, mm, A + PMD_SIZE)).toMatchObject({ level: 'pmd', kind: 'PMD', entry: { bits: { write: true } } });
    expect(e.folio(f)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    clean(e);
  });

  it('§3.4 PMD whose head is not AnonExclusive stays read-only under RW', () => {
    const { e, mm } = thp(false);
    expect(mprotect(e, mm, A + PMD_SIZE, PMD_SIZE, { read: true, write: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A + PMD_SIZE).entry.present).toMatchObject({ write: false, nx: false });
    clean(e);
  });

  it('§3.4 HZP: new protection, never writable', () => {
    const { e, mm } = setup({ write: false });
    writeLeaves(e, mm, [{ va: A, level: 'pmd', raw: presentRaw('pmd', zeroPages(e).hugePfn, { user: true, special: true, nx: true }) }]);
    expect(mprotect(e, mm, A, PMD_SIZE, { read: true, write: true, exec: true }).ok).toBe(true);
    expect(at(e, mm, A)).toMatchObject({ kind: 'HZP', level: 'pmd', entry: { present: { write: false, special: true, nx: false } } });
    clean(e);
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
    clean(e);
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
    clean(e);
    // Back to RW: the pages are AnonExclusive, so the read-only ones are writable again.
    expect(mprotect(e, mm, B + 16 * P, 16 * P, RW).ok).toBe(true);
    expect(leavesIn(e, mm, B, B + PMD_SIZE).every((l) => l.entry.bits.write)).toBe(true);
    clean(e);
  });

  it('§3.4 changeProtection over part of a PMD inside one VMA splits it too', () => {
    const { e, mm, vma, f } = thp(true);
    Object.assign(vma.flags, { write: false });
    expect(changeProtection(e, mm, vma, A + PMD_SIZE, A + PMD_SIZE + P)).toBe(1);
    expect(at(e, mm, A + PMD_SIZE)).toMatchObject({ level: 'pte', kind: 'PL', entry: { bits: { write: false } } });
    expect(at(e, mm, A + PMD_SIZE + P).entry.bits.write).toBe(true);
    expect(e.folio(f).entireMapcount).toBe(0);
    clean(e);
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
    clean(e);
  });
});

describe('§3.1 prot as kernel bits', () => {
  it('PROT_READ|PROT_WRITE|PROT_EXEC as a number equals the named form', () => {
    const { e, mm } = setup();
    expect(mprotect(e, mm, A, P, PROT_READ | PROT_WRITE | PROT_EXEC).ok).toBe(true);
    expect(mm.vmas.find(A)!.flags).toMatchObject({ read: true, write: true, exec: true });
    clean(e);
  });
});
