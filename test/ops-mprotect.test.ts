// mprotect (kernel-operations.md §3): the §3.1 argument/error table in kernel order (including the no-rollback
// ENOMEM of a hole after changed VMAs) and §3.2 split/merge per VMA; rejected calls leave the engine exactly as
// it was, and the invariants hold after each operation. The per-entry rows are in ops-change-protection.test.ts.
import { describe, expect, it } from 'vitest';
import { Engine, PMD_SIZE, type Mm } from '../src/index.js';
import { leavesIn, presentRaw, writeLeaves, zeroPages } from '../src/mm/leaf.js';
import { mprotect, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE } from '../src/mm/mprotect.js';
import { expectPvmwError } from './helpers.js';
import { engineSnapshot, expectClean, leafAtOrThrow as at, rmapFinds } from './ops-helpers.js';
import { A, END, NONE, P, R, RW, anon, setup } from './ops-mprotect-helpers.js';

function vmas(mm: Mm) {
  return mm.vmas.all().map((v) => [v.start, v.end, v.pgoff, v.flags.read, v.flags.write, v.flags.exec]);
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
    const before = engineSnapshot(e);
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
      expect(engineSnapshot(e)).toBe(before);
    }
    expectClean(e);
  });

  it('§3.1 len == 0 succeeds and does nothing, even where nothing is mapped', () => {
    const { e, mm } = space();
    const before = engineSnapshot(e);
    expect(mprotect(e, mm, A, 0, R)).toEqual({ ok: true, value: 0 });
    expect(mprotect(e, mm, END + PMD_SIZE, 0, NONE)).toEqual({ ok: true, value: 0 });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§3.1 PROT_WRITE on a VMA without VM_MAYWRITE (read-only shared file) → EACCES, nothing changed', () => {
    const { e, mm } = setup({ shared: true, write: false, mayWrite: false }, { file: 7 });
    const f = e.createFolio({ number: 0x2000, file: 7, index: 0 });
    mm.map(A, { entry: { kind: 'present', number: 0x2000 } });
    const before = engineSnapshot(e);
    expect(mprotect(e, mm, A, P, RW)).toEqual({ ok: false, errno: 'EACCES' });
    expect(engineSnapshot(e)).toBe(before);
    expect(mprotect(e, mm, A, P, R).ok).toBe(true); // read stays allowed
    expect(e.folio(f).mapcount).toBe(1);
    expectClean(e);
  });

  it('§3.1 a hugetlb VMA refuses a split that is not huge-page aligned → EINVAL, nothing changed', () => {
    const { e, mm } = setup({ hugetlb: '2M' });
    const before = engineSnapshot(e);
    expect(mprotect(e, mm, A + P, P, R)).toEqual({ ok: false, errno: 'EINVAL' });
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('§3.1 a split the VMA count does not allow (split_vma at max_map_count) → ENOMEM, nothing changed', () => {
    const { e, mm } = space();
    const before = engineSnapshot(e);
    expect(mprotect(e, mm, A + P, P, R, { maxMapCount: 2 })).toEqual({ ok: false, errno: 'ENOMEM' }); // needs two splits
    expect(engineSnapshot(e)).toBe(before);
    expect(mprotect(e, mm, A, P, R, { maxMapCount: 2 }).ok).toBe(true); // one split: 1 VMA < 2
    expect(mm.vmas.size).toBe(2);
    expectClean(e);
  });

  it('§3.1 input the syscall could never see is a PvmwError, nothing changed', () => {
    const { e, mm } = space();
    const before = engineSnapshot(e);
    expectPvmwError(() => mprotect(e, mm, 'x' as never, P, R), 'BAD_ADDRESS', 'x');
    expectPvmwError(() => mprotect(e, mm, A, 1.5, R), 'BAD_RANGE', '1.5');
    expectPvmwError(() => mprotect(e, mm, A, P, { raed: true } as never), 'BAD_SETTING', 'raed');
    expectPvmwError(() => mprotect(e, mm, A, P, { read: 1 } as never), 'BAD_SETTING', 'read');
    expectPvmwError(() => mprotect(e, mm, A, P, -1), 'BAD_SETTING', '-1');
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
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
    expectClean(e);
    // A range that ends in a hole: every VMA in it is changed, then ENOMEM.
    expect(mprotect(e, mm, A + 8 * P, 8 * P, NONE)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(mm.vmas.find(A + 8 * P)!.flags.read).toBe(false);
    expect(at(e, mm, A + 8 * P).kind).toBe('PN');
    expectClean(e);
  });

  it('§3.1 EACCES on a later VMA: the VMAs before it are already changed', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const mm = e.createMm();
    mm.addVma({ start: A, end: A + 4 * P, flags: { write: false } });
    mm.addVma({ start: A + 4 * P, end: A + 8 * P, file: 3, flags: { shared: true, write: false, mayWrite: false } });
    expect(mprotect(e, mm, A, 8 * P, { read: true, write: true, exec: true })).toEqual({ ok: false, errno: 'EACCES' });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, A / P, true, true, true], [A + 4 * P, A + 8 * P, 0, true, false, false]]);
    expectClean(e);
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
    expectClean(e);
    expect(mprotect(e, mm, A + 4 * P, 2 * P, RW).ok).toBe(true);
    expect(vmas(mm)).toEqual([[A, END, A / P, true, true, false]]);
    expect(at(e, mm, A + 4 * P).entry.bits.write).toBe(true); // exclusive: writable again at once
    expect(rmapFinds(e, f)).toEqual([A + 4 * P]);
    expectClean(e);
  });

  it('§3.2 step 1: flags unchanged → nothing at all (same VMA object, entries untouched)', () => {
    const { e, mm, vma } = setup();
    anon(e, vma, A, 0x1000, 0, 0);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, dirty: true } });
    const before = engineSnapshot(e);
    expect(mprotect(e, mm, A, P, RW).ok).toBe(true);
    expect(engineSnapshot(e)).toBe(before);
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
    expectClean(e);
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
    expectClean(e);
  });
});

describe('§3.1 prot as kernel bits', () => {
  it('PROT_READ|PROT_WRITE|PROT_EXEC as a number equals the named form', () => {
    const { e, mm } = setup();
    expect(mprotect(e, mm, A, P, PROT_READ | PROT_WRITE | PROT_EXEC).ok).toBe(true);
    expect(mm.vmas.find(A)!.flags).toMatchObject({ read: true, write: true, exec: true });
    expectClean(e);
  });
});
