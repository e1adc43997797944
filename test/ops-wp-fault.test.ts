// Write faults on read-only present PTEs (kernel-operations.md §5.6 do_wp_page; the §5.8 present-entry rows):
// reuse of exclusive pages, COW copies with the tag (§12.2), pinned, KSM and large folios.
import { describe, expect, it } from 'vitest';
import { cpuAccess } from '../src/mm/access.js';
import { handleMmFault } from '../src/mm/fault.js';
import { leavesIn, writeLeaves } from '../src/mm/leaf.js';
import { opsState } from '../src/mm/state.js';
import { A, P, at, bits, forkPage, rewrite, rmapReaches, setup } from './ops-fault-helpers.js';
import { engineSnapshot, expectClean } from './ops-helpers.js';

describe('§5.8 present entries: ZP, P/PL writable, read-only AnonExclusive, read-only shared', () => {
  it('ZP read: ok, nothing changes; ZP write: COW into a new zeroed order-0 page (tag copied: ZERO, then written)', () => {
    const { e, mm, vma } = setup();
    handleMmFault(e, mm, A);
    const before = engineSnapshot(e);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    expect(engineSnapshot(e)).toBe(before);
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    const v = at(e, mm, A);
    expect(v.kind).toBe('P');
    expect(v.entry.present).toMatchObject({ write: true, dirty: true, young: true, special: false });
    expect(e.page('pfn', v.entry.number!)).toMatchObject({ tag: 0, anonExclusive: true, mapcount: 1 });
    expect(v.folio!.anonVma).toBe(e.rmap.anon.of(vma)!.id);
    expect(cpuAccess(e, mm, A, 'write', { tag: 3 }).tag).toBe(3);
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
  });

  it('PL read-only, AnonExclusive page of an mTHP: write reuses that page only', () => {
    const { e, mm } = setup({ flags: { thp: true } });
    handleMmFault(e, mm, A, { write: true, order: 2 });
    for (let i = 0; i < 4; i++) rewrite(e, mm, A + i * P, { write: false });
    expect(handleMmFault(e, mm, A + 2 * P, { write: true })).toBe('ok');
    expect(leavesIn(e, mm, A, A + 4 * P).map((l) => [l.kind, l.entry.present!.write])).toEqual([['PL', false], ['PL', false], ['PL', true], ['PL', false]]);
    expectClean(e);
  });

  it('P read-only shared after fork: read ok in both; the first writer copies (tag copied), the other then reuses (refcount 1) and moves the anon rmap', () => {
    const { e, mm, vma } = setup();
    cpuAccess(e, mm, A, 'write', { tag: 0x77 });
    const old = at(e, mm, A).folio!;
    const { child, cv } = forkPage(e, mm, vma, A);
    expectClean(e);
    expect(cpuAccess(e, child, A, 'read')).toEqual({ outcome: 'ok', tag: 0x77 });
    expect(handleMmFault(e, child, A, { write: true })).toBe('ok');
    const copy = at(e, child, A);
    expect(copy.folio!.id).not.toBe(old.id);
    expect(copy.entry.present).toMatchObject({ write: true, dirty: true, young: true });
    expect(e.page('pfn', copy.entry.number!)).toMatchObject({ tag: 0x77, anonExclusive: true, mapcount: 1 });
    expect(copy.folio!.anonVma).toBe(e.rmap.anon.of(cv)!.id);
    expect(e.folio(old.id).mapcount).toBe(1);
    expect(rmapReaches(e, child, A)).toBe(true);
    expectClean(e);
    // the parent's write: mapcount 1, not pinned → reuse, folio_move_anon_rmap to the parent's anon_vma
    expect(cpuAccess(e, mm, A, 'write', { tag: 0x78 })).toEqual({ outcome: 'ok', tag: 0x78 });
    expect(at(e, mm, A).folio!.id).toBe(old.id);
    expect(e.folio(old.id).anonVma).toBe(e.rmap.anon.of(vma)!.id);
    expect(e.page('pfn', old.number)!.anonExclusive).toBe(true);
    expect(cpuAccess(e, child, A, 'read').tag).toBe(0x77);
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
    expectClean(t.e);
  });
});
