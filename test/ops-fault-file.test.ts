// File-backed faults (kernel-operations.md §5.7 do_fault): private read, do_cow_fault, shared read and write,
// write-notify; the page-cache folio, its index and tag, and rmap through i_mmap.
import { describe, expect, it } from 'vitest';
import { cpuAccess } from '../src/mm/access.js';
import { handleMmFault } from '../src/mm/fault.js';
import { opsState } from '../src/mm/state.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';
import { A, P, at, bits, rewrite, rmapReaches, setup } from './ops-fault-helpers.js';
import { expectClean } from './ops-helpers.js';

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
    expectClean(e);
  });

  it('a cached large folio is used in place: the page at the right offset of it is mapped', () => {
    const { e, mm } = setup({ file: FILE, pgoff: 0 });
    const id = e.createFolio({ number: 0x3000, order: 2, file: FILE, index: 4 });
    opsState(e).pageCache.insert(FILE, 4, 4, id);
    e.folios.setTag(id, 2, 1, 0x66);
    expect(cpuAccess(e, mm, A + 6 * P, 'read')).toEqual({ outcome: 'ok', tag: 0x66 });
    expect(at(e, mm, A + 6 * P).entry.number).toBe(0x3002);
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
  });

  it('shared write: the cached page itself, writable + dirty, folio dirty; the tag lands in the page cache', () => {
    const { e, mm } = setup({ file: FILE, flags: { shared: true } });
    expect(cpuAccess(e, mm, A + P, 'write', { tag: 0xab })).toEqual({ outcome: 'ok', tag: 0xab });
    const v = at(e, mm, A + P);
    expect(v.folio).toMatchObject({ anon: false, file: FILE, index: 1, mapcount: 1 });
    expect(v.folio!.flags.dirty).toBe(true);
    expect(v.entry.present).toMatchObject({ write: true, dirty: true });
    expect(e.page('pfn', v.entry.number!)!.tag).toBe(0xab);
    expectClean(e);
  });

  it('shared read maps per vm_page_prot (writable in a shared writable VMA, not dirty); read-only shared VMA read-only', () => {
    const { e, mm } = setup({ file: FILE, flags: { shared: true } });
    handleMmFault(e, mm, A);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: false });
    const t = setup({ file: FILE, flags: { shared: true, write: false } });
    handleMmFault(t.e, t.mm, A);
    expect(bits(t.e, t.mm, A).write).toBe(false);
    expect(cpuAccess(t.e, t.mm, A, 'write')).toEqual({ outcome: 'SIGSEGV' });
    expectClean(e);
    expectClean(t.e);
  });

  it('a shared read-only PTE in a shared writable VMA (write-notify) becomes writable + dirty on write, same page', () => {
    const { e, mm } = setup({ file: FILE, flags: { shared: true } });
    handleMmFault(e, mm, A);
    rewrite(e, mm, A, { write: false });
    const pfn = at(e, mm, A).entry.number;
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(at(e, mm, A).entry.number).toBe(pfn);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    expectClean(e);
  });
});
