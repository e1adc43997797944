// Faults in hugetlb VMAs (src/mm/hugetlb-fault.ts): the §5.3/§5.6/§5.7 shapes at the huge page's level with
// the folios kernel-operations.md §1.6 names; fork of a hugetlb mapping then a write copies the huge page.
import { describe, expect, it } from 'vitest';
import { Engine, cpuAccess, dupMmap, mmap, rmapCandidates } from '../src/index.js';
import { opsState } from '../src/mm/state.js';
import { expectClean, kindAt, leafAtOrThrow } from './ops-helpers.js';

const H = 0x200000;

function setup(req: { shared: boolean; file?: number; size?: '2M' | '1G' }) {
  const e = new Engine({ ramPages: 1 << 20 });
  const mm = e.createMm();
  const size = req.size ?? '2M';
  const len = size === '1G' ? 2 ** 30 : 2 * H;
  const r = mmap(e, mm, { len, prot: { read: true, write: true }, shared: req.shared, file: req.file, hugetlb: size });
  if (!r.ok) throw new Error(r.errno);
  return { e, mm, addr: r.value, len };
}

describe('hugetlb faults', () => {
  it('private anonymous: a read maps a new zeroed exclusive anon hugetlb folio read-only; a write then reuses it', () => {
    const { e, mm, addr } = setup({ shared: false });
    expect(cpuAccess(e, mm, addr + 0x1234, 'read')).toEqual({ outcome: 'ok', tag: 0 });
    const v = leafAtOrThrow(e, mm, addr);
    expect(v).toMatchObject({ level: 'pmd', kind: 'HT' });
    expect(v.entry.bits.write).toBe(false);
    expect(v.folio).toMatchObject({ hugetlb: '2M', anon: true, mapcount: 1, entireMapcount: 1 });
    expect(e.page('pfn', v.folio!.number)!.anonExclusive).toBe(true);
    const id = v.folio!.id;
    expect(cpuAccess(e, mm, addr + 5 * 4096, 'write', { tag: 7 }).outcome).toBe('ok');
    const w = leafAtOrThrow(e, mm, addr);
    expect(w.folio!.id).toBe(id); // reused, no copy
    expect(w.entry.bits).toMatchObject({ write: true, dirty: true });
    expect(e.page('pfn', w.folio!.number + 5)!.tag).toBe(7);
    expect(rmapCandidates(e, id).map((c) => c.mm.id)).toEqual([mm.id]);
    expectClean(e);
  });

  it('after fork both map the huge page read-only; the first writer gets a copy with every page\'s tag, the other then reuses', () => {
    const { e, mm, addr } = setup({ shared: false });
    cpuAccess(e, mm, addr, 'write', { tag: 0x11 });
    cpuAccess(e, mm, addr + 511 * 4096, 'write', { tag: 0x22 });
    const r = dupMmap(e, mm);
    if (!r.ok) throw new Error(r.errno);
    const child = r.child;
    const orig = leafAtOrThrow(e, mm, addr).folio!.id;
    expect(e.folio(orig).mapcount).toBe(2);
    expect(cpuAccess(e, child, addr + 4096, 'write', { tag: 0x33 }).outcome).toBe('ok');
    const copy = leafAtOrThrow(e, child, addr).folio!;
    expect(copy.id).not.toBe(orig);
    expect([0, 1, 511].map((i) => e.page('pfn', copy.number + i)!.tag)).toEqual([0x11, 0x33, 0x22]);
    expect(e.folio(orig).mapcount).toBe(1);
    expect(cpuAccess(e, mm, addr, 'write', { tag: 0x44 }).outcome).toBe('ok');
    expect(leafAtOrThrow(e, mm, addr).folio!.id).toBe(orig); // mapcount 1: reused
    expect(cpuAccess(e, child, addr, 'read').tag).toBe(0x11);
    expectClean(e);
  });

  it('shared (hugetlbfs file): the page-cache folio, read in with the file\'s tags, writable in a writable shared mapping; both processes see one page', () => {
    const { e, mm, addr } = setup({ shared: true, file: 9 });
    opsState(e).pageCache.setFileTag(9, 3, 0xf3);
    expect(cpuAccess(e, mm, addr + 3 * 4096, 'read').tag).toBe(0xf3);
    const v = leafAtOrThrow(e, mm, addr);
    expect(v.folio).toMatchObject({ hugetlb: '2M', anon: false, file: 9, index: 0 });
    const r = dupMmap(e, mm);
    if (!r.ok) throw new Error(r.errno);
    expect(cpuAccess(e, r.child, addr + 3 * 4096, 'write', { tag: 0xab }).outcome).toBe('ok');
    expect(leafAtOrThrow(e, r.child, addr).folio!.id).toBe(v.folio!.id);
    expect(cpuAccess(e, mm, addr + 3 * 4096, 'read').tag).toBe(0xab);
    expectClean(e);
  });

  it('1 GiB pages fault at the PUD level', () => {
    const { e, mm, addr } = setup({ shared: false, size: '1G' });
    expect(cpuAccess(e, mm, addr + 0x12345678, 'write', { tag: 5 }).outcome).toBe('ok');
    const v = leafAtOrThrow(e, mm, addr);
    expect(v).toMatchObject({ level: 'pud', kind: 'HT' });
    expect(v.folio).toMatchObject({ hugetlb: '1G', order: 18 });
    expectClean(e);
  });

  it('no free huge page: OOM and nothing changed', () => {
    const e = new Engine({ ramPages: 1024 });
    const mm = e.createMm();
    const r = mmap(e, mm, { len: 4 * H, prot: { read: true, write: true }, shared: false, hugetlb: '2M' });
    if (!r.ok) throw new Error(r.errno);
    expect(cpuAccess(e, mm, r.value, 'write').outcome).toBe('ok');
    expect(cpuAccess(e, mm, r.value + H, 'write').outcome).toBe('ok');
    expect(cpuAccess(e, mm, r.value + 2 * H, 'write').outcome).toBe('OOM');
    expect(kindAt(e, mm, r.value + 2 * H)).toBe('NONE');
    expectClean(e);
  });
});
