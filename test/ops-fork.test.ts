// fork as a whole (kernel-operations.md §1.1 dup_mmap, §1.2 anon_vma_fork): VMAs copied, VM_DONTCOPY /
// VM_WIPEONFORK, the child's anon_vma chain, nested forks, the ENOMEM failure that changes nothing, tags (§12.2).
import { describe, expect, it } from 'vitest';
import { dupMmap } from '../src/mm/fork.js';
import { leavesIn } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { A, PAGE, PMD, anonFolio, engine, expectReachable, fork, page, pin, setup } from './ops-fork-helpers.js';
import { engineSnapshot, expectClean } from './ops-helpers.js';

describe('§1.1 dup_mmap and §1.2 anon_vma_fork', () => {
  it('§1.1 every VMA is copied with its bounds, pgoff, flags (VM_LOCKED cleared) and file, in order', () => {
    const e = engine();
    const p = e.createMm();
    p.addVma({ start: A, end: A + PMD, flags: { locked: true, mergeable: true } });
    p.addVma({ start: A + 2 * PMD, end: A + 3 * PMD, file: 9, pgoff: 0x40, flags: { write: false } });
    const c = fork(e, p);
    expect(c.vmas.all().map((v) => [v.start, v.end, v.pgoff, v.file, v.flags.locked, v.flags.mergeable, v.flags.write])).toEqual([
      [A, A + PMD, A / PAGE, null, false, true, true],
      [A + 2 * PMD, A + 3 * PMD, 0x40, 9, false, false, false],
    ]);
    expect(p.vmas.all()[0].flags.locked).toBe(true);
  });

  it('§1.1 VM_DONTCOPY leaves a hole; VM_WIPEONFORK gives a VMA with no anon_vma and no entries', () => {
    const e = engine();
    const p = e.createMm();
    const keep = p.addVma({ start: A, end: A + PMD });
    const dont = p.addVma({ start: A + PMD, end: A + 2 * PMD, flags: { dontcopy: true } });
    const wipe = p.addVma({ start: A + 2 * PMD, end: A + 3 * PMD, flags: { wipeonfork: true } });
    const folios = [keep, dont, wipe].map((v) => {
      const f = anonFolio(e, v, v.start);
      p.map(v.start, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
      return f;
    });
    const c = fork(e, p);
    expect(c.vmas.find(A + PMD)).toBeUndefined();
    const cw = c.vmas.find(A + 2 * PMD)!;
    expect(cw.flags.wipeonfork).toBe(true);
    expect(e.rmap.anon.of(cw)).toBeNull();
    expect(e.rmap.anon.chain(cw)).toEqual([]);
    expect(leavesIn(e, c, A + PMD, A + 3 * PMD)).toEqual([]);
    expect(folios.map((f) => e.folio(f).mapcount)).toEqual([2, 1, 1]);
    expect(page(e, folios[2]).anonExclusive).toBe(true);
  });

  it('§1.2 the child VMA gets AVCs to every anon_vma of the parent chain plus its own anon_vma under the parent\'s', () => {
    const { e, p, v, av } = setup();
    const f = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    const c = fork(e, p);
    const cv = c.vmas.find(A)!;
    const own = e.rmap.anon.of(cv)!;
    expect(own).not.toBe(av);
    expect(own.parent).toBe(av);
    expect(own.root).toBe(av.root);
    expect(e.rmap.anon.chain(cv).map((x) => x.anonVma)).toEqual([av, own]);
    expect(av.numChildren).toBe(1);
  });

  it('§1.2 a fork of a fork (depth 3) keeps every folio reachable from its anon_vma in all four mms', () => {
    const { e, p, v } = setup();
    const small = anonFolio(e, v, A);
    p.map(A, { entry: { kind: 'present', number: e.folio(small).number, write: true, user: true } });
    const big = anonFolio(e, v, A + PMD, 9);
    p.map(A + PMD, { level: 'pmd', entry: { kind: 'present', number: e.folio(big).number, write: true, user: true } });
    const mms = [p];
    for (let d = 0; d < 3; d++) mms.push(fork(e, mms[mms.length - 1]));
    const vmas = mms.map((m) => m.vmas.find(A)!);
    expectReachable(e, small, vmas, A);
    expectReachable(e, big, vmas, A + PMD);
    expect(e.folio(small).mapcount).toBe(4);
    expect(e.folio(big).entireMapcount).toBe(4);
    // Each generation's own anon_vma hangs under its parent's; all share the root.
    const owns = vmas.map((x) => e.rmap.anon.of(x)!);
    for (let d = 1; d < 4; d++) {
      expect(owns[d].parent).toBe(owns[d - 1]);
      expect(owns[d].root).toBe(owns[0]);
    }
    expectClean(e);
  });

  it('§1.1 step 4 ENOMEM: pinned pages need five eager copies and RAM has two pages left: the parent is unchanged, the child and the folios taken are freed', () => {
    const { e, p, v } = setup({ ramPages: 2048 });
    const f = anonFolio(e, v, A);
    const g = anonFolio(e, v, A + PAGE, 2);
    p.map(A, { entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    p.map(A + PAGE, { count: 4, entry: { kind: 'present', number: e.folio(g).number, write: true, user: true } });
    pin(e, p, f);
    pin(e, p, g); // five eager copies needed
    const alloc = opsState(e).alloc;
    const filler: number[] = [];
    for (let id = alloc.alloc({ order: 0 }); id !== null; id = alloc.alloc({ order: 0 })) filler.push(id);
    alloc.free(filler.pop()!);
    alloc.free(filler.pop()!); // two pages left: the first two allocations succeed and must be given back
    const before = engineSnapshot(e);
    const ids = e.allMms().map((m) => m.id);
    const r = dupMmap(e, p);
    expect(r).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(engineSnapshot(e)).toBe(before);
    expect(e.allMms().map((m) => m.id)).toEqual(ids);
    expect(page(e, g)).toMatchObject({ anonExclusive: true, mapcount: 1 });
    expectClean(e);
    expect(alloc.alloc({ order: 0 })).not.toBeNull(); // the two free pages are free again
    expect(alloc.alloc({ order: 0 })).not.toBeNull();
  });

  it('§12.2 fork copies no tags: every page the child maps is the parent\'s page with its tag', () => {
    const { e, p, v } = setup();
    const f = anonFolio(e, v, A, 3);
    for (let i = 0; i < 8; i++) e.folios.setTag(f, i, 1, 0x100 + i);
    p.map(A, { count: 8, entry: { kind: 'present', number: e.folio(f).number, write: true, user: true } });
    const folios = [...e.folios.all()].length;
    const c = fork(e, p);
    expect([...e.folios.all()].length).toBe(folios);
    for (let i = 0; i < 8; i++) {
      expect(c.translate(A + i * PAGE).page).toEqual(p.translate(A + i * PAGE).page);
      expect(c.translate(A + i * PAGE).page!.tag).toBe(0x100 + i);
    }
  });
});
