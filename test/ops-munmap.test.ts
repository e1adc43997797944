// mmap(2) placement and MAP_FIXED, munmap(2), zap and exit (kernel-operations.md §2.1 arguments, §2.2 splits, §2.3 procedure, §2.4 every PTE
// kind, §2.5 every PMD kind, §12.2 tags). Every operation, and every rejected one, leaves the invariants intact;
// a rejected one leaves the engine exactly as it was.
import { describe, expect, it } from 'vitest';
import { Engine, PvmwError, linearPageIndex, type EntrySpec, type Mm } from '../src/index.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { MMAP_BASE, mmap, type MmapRequest } from '../src/mm/mmap.js';
import { exitMmap, munmap } from '../src/mm/munmap.js';
import { opsState } from '../src/mm/state.js';
import { zapPageRange } from '../src/mm/zap.js';
import { rmapCandidates } from '../src/rmap/rmap-walk.js';

const P = 4096;
const M2 = 0x200000;
const ANON = 0x400000; // anon VMA [4 MiB, 12 MiB), THP allowed
const FILE = 0x1000000; // shared file VMA of file 7, [16 MiB, 20 MiB), pgoff 0

function space() {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  zeroPages(e);
  const mm = e.createMm();
  mm.addVma({ start: ANON, end: ANON + 4 * M2, flags: { thp: true } });
  mm.addVma({ start: FILE, end: FILE + 2 * M2, file: 7, flags: { shared: true, thp: true } });
  return { e, mm };
}

/** A folio rmap finds at `addr` of `mm` (anon: the VMA's anon_vma; file: its file and index), then `entry` there. */
function place(e: Engine, mm: Mm, addr: number, number: number, entry: Partial<EntrySpec> & { kind: EntrySpec['kind'] }, order = 0, level: 'pte' | 'pmd' = 'pte', namespace?: 'pfn') {
  const vma = mm.vmas.find(addr)!;
  const index = linearPageIndex(vma, addr);
  const id = vma.anon
    ? e.createFolio({ namespace, number, order, anonVma: e.rmap.anon.prepare(vma).id, index })
    : e.createFolio({ number, order, file: vma.file!, index });
  const count = level === 'pmd' ? 1 : entry.kind === 'present' || entry.kind.startsWith('device') || entry.kind.startsWith('migration') ? 2 ** order : 1;
  mm.map(addr, { level, count, entry: { number, ...entry } as EntrySpec });
  return id;
}

/** Everything an operation could change: every mm's VMAs, leaves and tables, every folio, swap use. */
function snapshot(e: Engine): string {
  return JSON.stringify({
    mms: e.allMms().map((mm) => ({
      vmas: mm.vmas.all().map((v) => [v.id, v.start, v.end, v.pgoff, v.file, v.flags]),
      leaves: leavesIn(e, mm, 0, e.geometry.taskSize).map((l) => [l.va, l.level, l.raw.lo, l.raw.hi]),
      stats: mm.stats(),
    })),
    folios: [...e.folios.all()].map((id) => {
      const f = e.folio(id);
      return [f, Array.from({ length: Math.min(f.nrPages, 16) }, (_, i) => e.page(f.namespace, f.number + i))];
    }),
    swap: opsState(e).swap.used,
  });
}

const ok = (e: Engine) => expect(e.checkInvariants().problems).toEqual([]);

/** The call returns errno and changes nothing. */
function rejected(e: Engine, f: () => { ok: boolean; errno?: string }, errno: string) {
  const before = snapshot(e);
  expect(f()).toEqual({ ok: false, errno });
  expect(snapshot(e)).toBe(before);
  ok(e);
}

const kindAt = (e: Engine, mm: Mm, addr: number) => leavesIn(e, mm, addr, addr + P).find((l) => l.va === addr)?.kind ?? 'NONE';

describe('§2.1 munmap arguments', () => {
  it('§2.1 start not 4 KiB aligned → EINVAL, nothing changed', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x1000, { kind: 'present', write: true });
    rejected(e, () => munmap(e, mm, ANON + 1, P), 'EINVAL');
  });

  it('§2.1 start > TASK_SIZE or len > TASK_SIZE − start → EINVAL', () => {
    const { e, mm } = space();
    const task = e.geometry.taskSize;
    rejected(e, () => munmap(e, mm, task + P, P), 'EINVAL');
    rejected(e, () => munmap(e, mm, ANON, task - ANON + 1), 'EINVAL');
    rejected(e, () => munmap(e, mm, ANON, -P), 'EINVAL');
  });

  it('§2.1 len == 0 → EINVAL', () => {
    const { e, mm } = space();
    rejected(e, () => munmap(e, mm, ANON, 0), 'EINVAL');
  });

  it('§2.1 no VMA in the range → 0, nothing happens', () => {
    const { e, mm } = space();
    const before = snapshot(e);
    expect(munmap(e, mm, 0x40000000, 16 * P)).toEqual({ ok: true, value: 0 });
    expect(snapshot(e)).toBe(before);
    ok(e);
  });

  it('§2.1 a range with holes spanning several VMAs: success, only the mapped parts go; len rounds up to pages', () => {
    const { e, mm } = space();
    const a = place(e, mm, ANON + 4 * M2 - P, 0x1000, { kind: 'present', write: true });
    const f = place(e, mm, FILE, 0x1001, { kind: 'present' });
    expect(munmap(e, mm, ANON + 4 * M2 - P, FILE - ANON - 4 * M2 + P + 1)).toEqual({ ok: true, value: 0 });
    expect(mm.vmas.all().map((v) => [v.start, v.end, v.pgoff])).toEqual([[ANON, ANON + 4 * M2 - P, ANON / P], [FILE + P, FILE + 2 * M2, 1]]);
    expect(e.folios.exists(a)).toBe(false);
    expect(e.folio(f).mapcount).toBe(0);
    ok(e);
  });

  it('§2.1 a range strictly inside one VMA at map_count ≥ max_map_count → ENOMEM; below it, success', () => {
    const { e, mm } = space();
    rejected(e, () => munmap(e, mm, ANON + M2, P, { maxMapCount: 2 }), 'ENOMEM');
    expect(munmap(e, mm, ANON + M2, P, { maxMapCount: 3 }).ok).toBe(true);
    expect(mm.vmas.size).toBe(3);
    // Unmapping a VMA's head needs one split only: no map_count check.
    expect(munmap(e, mm, ANON, P, { maxMapCount: 3 }).ok).toBe(true);
    ok(e);
  });

  it('§2.1 a hugetlb VMA refuses a split at an unaligned start or end → EINVAL, nothing changed (no split of the other end either)', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x2000000, end: 0x2800000, flags: { hugetlb: '2M' } });
    rejected(e, () => munmap(e, mm, 0x2000000 + P, M2), 'EINVAL');
    rejected(e, () => munmap(e, mm, FILE + M2, 0x2000000 - FILE - M2 + P), 'EINVAL');
    expect(munmap(e, mm, 0x2200000, M2).ok).toBe(true);
    expect(mm.vmas.all().filter((v) => v.flags.hugetlb).map((v) => [v.start, v.end, v.pgoff])).toEqual([[0x2000000, 0x2200000, 0x2000], [0x2400000, 0x2800000, 0x2400]]);
    ok(e);
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
    ok(e);
  });

  it('§2.2 unmapping the middle of a file VMA: high pgoff = pgoff + delta, both halves in i_mmap', () => {
    const { e, mm } = space();
    const f = place(e, mm, FILE + 0x10 * P, 0x1000, { kind: 'present' });
    expect(munmap(e, mm, FILE + 4 * P, 4 * P).ok).toBe(true);
    const [, a, b] = mm.vmas.all();
    expect([a.pgoff, b.pgoff, b.start]).toEqual([0, 8, FILE + 8 * P]);
    expect(e.rmap.iMmap.has(a) && e.rmap.iMmap.has(b)).toBe(true);
    expect(rmapCandidates(e, f).map((c) => [c.vma.start, c.address])).toEqual([[FILE + 8 * P, FILE + 0x10 * P]]);
    ok(e);
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
    ok(e);
  });

  it('§2.5/§6.1 step 1: unmapping half of a file THP PMD clears the whole PMD; the folio stays in the page cache, dirty', () => {
    const { e, mm } = space();
    const thp = place(e, mm, FILE, 0x2000, { kind: 'present', write: true, dirty: true }, 9, 'pmd');
    expect(munmap(e, mm, FILE, M2 / 2).ok).toBe(true);
    expect(kindAt(e, mm, FILE + M2 / 2)).toBe('NONE');
    expect(e.folio(thp)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.folio(thp).flags.dirty).toBe(true);
    ok(e);
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
    ok(e);
  });
});

describe('§2.4 zap per PTE entry kind', () => {
  it('§2.4 NONE: skipped (an empty VMA unmaps)', () => {
    const { e, mm } = space();
    expect(munmap(e, mm, ANON, 4 * M2).ok).toBe(true);
    expect(mm.vmas.size).toBe(1);
    ok(e);
  });

  it('§2.4 P anon: cleared, mapcount 0, folio freed', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', write: true, dirty: true });
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§2.4 P anon mapped by another mm too: mapcount 2 → 1, the folio stays and rmap still finds the other', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present' });
    const child = e.createMm();
    const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
    e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
    child.map(ANON, { entry: { kind: 'present', number: 0x1000 } });
    expect(e.folio(f).mapcount).toBe(2);
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(e.folio(f).mapcount).toBe(1);
    expect(rmapCandidates(e, f).map((c) => c.mm.id)).toEqual([child.id]);
    ok(e);
  });

  it('§2.4 PL anon: a partly unmapped mTHP keeps its other pages mapped; the last unmap frees it', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', write: true }, 2);
    expect(munmap(e, mm, ANON, 2 * P).ok).toBe(true);
    expect([e.folio(f).mapcount, e.page('pfn', 0x1000)!.mapcount, e.page('pfn', 0x1003)!.mapcount]).toEqual([2, 0, 1]);
    expect(munmap(e, mm, ANON + 2 * P, 2 * P).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§2.4 P/PL file: cleared, mapcount 0, the page-cache folio stays; a dirty PTE marks the folio dirty (§12.2 tag kept)', () => {
    const { e, mm } = space();
    const clean = place(e, mm, FILE, 0x1000, { kind: 'present' });
    const dirty = place(e, mm, FILE + 4 * P, 0x1004, { kind: 'present', write: true, dirty: true }, 2);
    e.folios.setTag(dirty, 0, 4, 0xabc);
    expect(munmap(e, mm, FILE, 8 * P).ok).toBe(true);
    expect(e.folio(clean)).toMatchObject({ mapcount: 0 });
    expect(e.folio(clean).flags.dirty).toBe(false);
    expect(e.folio(dirty)).toMatchObject({ mapcount: 0 });
    expect(e.folio(dirty).flags.dirty).toBe(true);
    expect(e.page('pfn', 0x1006)!.tag).toBe(0xabc);
    ok(e);
  });

  it('§2.4 note: a uffd-wp PTE zapped in a file VMA leaves a MK-UW marker unless markers are dropped', () => {
    const { e, mm } = space();
    place(e, mm, FILE, 0x1000, { kind: 'present', uffdWp: true });
    place(e, mm, FILE + P, 0x1001, { kind: 'present', uffdWp: true });
    const vma = mm.vmas.find(FILE)!;
    zapPageRange(e, mm, vma, FILE, FILE + P, { dropMarkers: false });
    expect(kindAt(e, mm, FILE)).toBe('MK-UW');
    zapPageRange(e, mm, vma, FILE + P, FILE + 2 * P, { dropMarkers: true });
    expect(kindAt(e, mm, FILE + P)).toBe('NONE');
    ok(e);
  });

  it('§2.4 ZP: cleared, the zero page untouched', () => {
    const { e, mm } = space();
    const z = zeroPages(e);
    for (const a of [ANON, ANON + P, ANON + 2 * P]) mm.map(a, { entry: { kind: 'present', number: z.zeroPfn, special: true } });
    expect(kindAt(e, mm, ANON + P)).toBe('ZP');
    expect(munmap(e, mm, ANON, 2 * P).ok).toBe(true);
    expect(kindAt(e, mm, ANON + P)).toBe('NONE');
    expect(kindAt(e, mm, ANON + 2 * P)).toBe('ZP');
    expect(e.folios.exists(z.zero)).toBe(true);
    ok(e);
  });

  it('§2.4 PN: like P (the anon folio is freed)', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'present', protnone: true });
    expect(kindAt(e, mm, ANON)).toBe('PN');
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  for (const kind of ['device-private-read', 'device-private-write'] as const) {
    it(`§2.4 ${kind === 'device-private-read' ? 'DP-R' : 'DP-W'}: cleared, reference dropped: the device page is freed; kept while mapped elsewhere`, () => {
      const { e, mm } = space();
      const dev = e.addDeviceMemory();
      const f = place(e, mm, ANON, dev.base, { kind });
      const g = place(e, mm, ANON + P, dev.base + 1, { kind });
      const child = e.createMm();
      const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
      e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
      child.map(ANON + P, { entry: { kind, number: dev.base + 1 } });
      expect(munmap(e, mm, ANON, 2 * P).ok).toBe(true);
      expect(e.folios.exists(f)).toBe(false);
      expect(e.folio(g)).toMatchObject({ mapcount: 1, devicePrivate: true });
      ok(e);
    });
  }

  it('§2.4 DX: cleared, mapcount dropped, folio freed', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x1000, { kind: 'device-exclusive' });
    expect(e.folio(f).mapcount).toBe(1);
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§2.4 SWAP: cleared, swap count −1; the slot is freed when its last entry goes', () => {
    const { e, mm } = space();
    const swap = opsState(e).swap;
    const slot = swap.alloc(0x55);
    swap.dup(slot);
    mm.map(ANON, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    mm.map(ANON + M2, { entry: { kind: 'swap', swapType: 0, offset: slot } });
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(swap.count(slot)).toBe(1);
    expect(munmap(e, mm, ANON + M2, P).ok).toBe(true);
    expect(swap.has(slot)).toBe(false);
    ok(e);
  });

  for (const kind of ['migration-read', 'migration-read-exclusive', 'migration-write'] as const) {
    it(`§2.4 ${kind}: cleared, no rmap change and no reference dropped (the folio is not freed here)`, () => {
      const { e, mm } = space();
      const f = place(e, mm, ANON, 0x1000, { kind });
      expect(e.folio(f).mapcount).toBe(0);
      expect(munmap(e, mm, ANON, P).ok).toBe(true);
      expect(kindAt(e, mm, ANON)).toBe('NONE');
      expect(e.folios.exists(f)).toBe(true);
      ok(e);
    });
  }

  it('§2.4 HWP and MK-PSN: cleared', () => {
    const { e, mm } = space();
    const f = e.createFolio({ number: 0x1000 });
    mm.map(ANON, { entry: { kind: 'hwpoison', number: 0x1000 } });
    mm.map(ANON + P, { entry: { kind: 'marker', poisoned: true } });
    expect([kindAt(e, mm, ANON), kindAt(e, mm, ANON + P)]).toEqual(['HWP', 'MK-PSN']);
    zapPageRange(e, mm, mm.vmas.find(ANON)!, ANON, ANON + 2 * P, { dropMarkers: false });
    expect(leavesIn(e, mm, ANON, ANON + 2 * P)).toEqual([]);
    expect(e.folios.exists(f)).toBe(true);
    ok(e);
  });

  it('§2.4 MK-UW: always cleared in an anon VMA; kept in a file VMA unless markers are dropped (munmap drops it)', () => {
    const { e, mm } = space();
    mm.map(ANON, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(FILE, { entry: { kind: 'marker', uffdWp: true } });
    zapPageRange(e, mm, mm.vmas.find(ANON)!, ANON, ANON + P, { dropMarkers: false });
    const r = zapPageRange(e, mm, mm.vmas.find(FILE)!, FILE, FILE + P, { dropMarkers: false });
    expect([kindAt(e, mm, ANON), kindAt(e, mm, FILE), r.kept]).toEqual(['NONE', 'MK-UW', 1]);
    expect(munmap(e, mm, FILE, P).ok).toBe(true);
    expect(kindAt(e, mm, FILE)).toBe('NONE');
    ok(e);
  });

  it('§2.4 MK-GRD: kept unless markers are dropped; munmap drops it', () => {
    const { e, mm } = space();
    mm.map(ANON, { entry: { kind: 'marker', guard: true } });
    zapPageRange(e, mm, mm.vmas.find(ANON)!, ANON, ANON + P, { dropMarkers: false });
    expect(kindAt(e, mm, ANON)).toBe('MK-GRD');
    expect(munmap(e, mm, ANON, P).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    ok(e);
  });
});

describe('§2.5 zap per PMD entry kind', () => {
  it('§2.5 PMD anon THP: cleared, entire mapcount −1, folio freed', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x2000, { kind: 'present', write: true }, 9, 'pmd');
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§2.5 PMD anon THP mapped in another mm too: entire mapcount 2 → 1, kept', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x2000, { kind: 'present' }, 9, 'pmd');
    const child = e.createMm();
    const cv = child.addVma({ start: ANON, end: ANON + 4 * M2 });
    e.rmap.anon.fork(cv, mm.vmas.find(ANON)!);
    child.map(ANON, { level: 'pmd', entry: { kind: 'present', number: 0x2000 } });
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(e.folio(f)).toMatchObject({ entireMapcount: 1, mapcount: 1 });
    ok(e);
  });

  it('§2.5 PMD file THP: cleared, mapcount 0, the page-cache folio stays', () => {
    const { e, mm } = space();
    const f = place(e, mm, FILE, 0x2000, { kind: 'present' }, 9, 'pmd');
    expect(munmap(e, mm, FILE, M2).ok).toBe(true);
    expect(e.folio(f)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    ok(e);
  });

  it('§2.5 HZP: cleared, the huge zero page untouched', () => {
    const { e, mm } = space();
    const z = zeroPages(e);
    mm.map(ANON, { level: 'pmd', entry: { kind: 'present', number: z.hugePfn, special: true } });
    expect(kindAt(e, mm, ANON)).toBe('HZP');
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(z.huge)).toBe(true);
    ok(e);
  });

  it('§2.5 PMD MIG-*: cleared, no rmap, the folio not put', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON, 0x2000, { kind: 'migration-write' }, 9, 'pmd');
    expect(kindAt(e, mm, ANON)).toBe('MIG-W');
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(kindAt(e, mm, ANON)).toBe('NONE');
    expect(e.folios.exists(f)).toBe(true);
    ok(e);
  });

  it('§2.5 PMD DP-*: cleared, entire mapcount −1, the device THP freed', () => {
    const { e, mm } = space();
    const dev = e.addDeviceMemory();
    const f = place(e, mm, ANON, dev.base, { kind: 'device-private-write' }, 9, 'pmd');
    expect(e.folio(f).entireMapcount).toBe(1);
    expect(munmap(e, mm, ANON, M2).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
  });

  it('§2.5 HT (hugetlb leaf): cleared; a private hugetlb folio is freed', () => {
    const { e, mm } = space();
    const v = mm.addVma({ start: 0x2000000, end: 0x2400000, flags: { hugetlb: '2M' } });
    const f = e.createFolio({ number: 0x4000, hugetlb: '2M', anonVma: e.rmap.anon.prepare(v).id, index: linearPageIndex(v, 0x2000000) });
    mm.map(0x2000000, { level: 'pmd', entry: { kind: 'present', number: 0x4000, write: true } });
    expect(kindAt(e, mm, 0x2000000)).toBe('HT');
    expect(munmap(e, mm, 0x2000000, 2 * M2).ok).toBe(true);
    expect(e.folios.exists(f)).toBe(false);
    ok(e);
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
    ok(e);
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
    ok(e);
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
    rejected(e, () => mmap(e, mm, anonReq(0)), 'EINVAL');
    ok(e);
  });

  it('adjacent compatible anonymous mappings merge into one VMA; different protections do not', () => {
    const { e, mm } = fresh();
    mmap(e, mm, anonReq(P, { addr: 0x5000_0000, fixed: true }));
    mmap(e, mm, anonReq(P, { addr: 0x5000_1000, fixed: true }));
    mmap(e, mm, anonReq(P, { addr: 0x5000_2000, fixed: true, prot: { read: true } }));
    expect(mm.vmas.all().map((v) => [v.start, v.end])).toEqual([[0x5000_0000, 0x5000_2000], [0x5000_2000, 0x5000_3000]]);
    ok(e);
  });

  it('MAP_FIXED over existing mappings unmaps them first (§2.3: folio freed, VMA split); unaligned → EINVAL; beyond TASK_SIZE → ENOMEM', () => {
    const { e, mm } = space();
    const f = place(e, mm, ANON + M2, 0x1000, { kind: 'present', write: true });
    expect(mmap(e, mm, anonReq(M2, { addr: ANON + M2, fixed: true, prot: { read: true } }))).toEqual({ ok: true, value: ANON + M2 });
    expect(e.folios.exists(f)).toBe(false);
    expect(mm.vmas.all().slice(0, 3).map((v) => [v.start, v.end, v.flags.write])).toEqual([[ANON, ANON + M2, true], [ANON + M2, ANON + 2 * M2, false], [ANON + 2 * M2, ANON + 4 * M2, true]]);
    rejected(e, () => mmap(e, mm, anonReq(P, { addr: ANON + 1, fixed: true })), 'EINVAL');
    rejected(e, () => mmap(e, mm, anonReq(2 * P, { addr: e.geometry.taskSize - P, fixed: true })), 'ENOMEM');
    ok(e);
  });

  it('MAP_FIXED_NOREPLACE over an existing mapping → EEXIST, nothing changed', () => {
    const { e, mm } = space();
    place(e, mm, ANON, 0x1000, { kind: 'present' });
    rejected(e, () => mmap(e, mm, anonReq(P, { addr: ANON, fixed: 'noreplace' })), 'EEXIST');
  });

  it('MAP_FIXED over a hugetlb VMA at an unaligned address: the refused split → EINVAL, nothing changed', () => {
    const { e, mm } = space();
    mm.addVma({ start: 0x2000000, end: 0x2400000, flags: { hugetlb: '2M' } });
    rejected(e, () => mmap(e, mm, anonReq(P, { addr: 0x2000000 + P, fixed: true })), 'EINVAL');
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
    ok(e);
  });

  it('a shared mapping of a read-only file: PROT_WRITE → EACCES; read-only: VM_SHARED and VM_MAYWRITE cleared', () => {
    const { e, mm } = fresh();
    const req = { addr: 0, len: 4 * P, shared: true, file: 9, pgoff: 4, fileWritable: false };
    rejected(e, () => mmap(e, mm, { ...req, prot: rw }), 'EACCES');
    const r = mmap(e, mm, { ...req, prot: { read: true } });
    const v = mm.vmas.find(r.ok ? r.value : -1)!;
    expect(v).toMatchObject({ file: 9, pgoff: 4 });
    expect(v.flags).toMatchObject({ shared: false, mayWrite: false });
    const w = mmap(e, mm, { ...req, fileWritable: true, prot: rw });
    expect(mm.vmas.find(w.ok ? w.value : -1)!.flags).toMatchObject({ shared: true, mayWrite: true });
    ok(e);
  });

  it('MAP_HUGETLB: length rounded up to the huge page, address aligned; fixed unaligned → EINVAL; hugetlbfs file with unaligned pgoff or length → EINVAL', () => {
    const { e, mm } = fresh();
    const r = mmap(e, mm, anonReq(P, { hugetlb: '2M' }));
    const v = mm.vmas.find(r.ok ? r.value : -1)!;
    expect([v.start % M2, v.end - v.start, v.flags.hugetlb, v.anon]).toEqual([0, M2, '2M', true]);
    rejected(e, () => mmap(e, mm, anonReq(M2, { hugetlb: '2M', addr: 0x4000_1000, fixed: true })), 'EINVAL');
    rejected(e, () => mmap(e, mm, { len: M2, prot: rw, shared: true, file: 5, pgoff: 1, hugetlb: '2M' }), 'EINVAL');
    rejected(e, () => mmap(e, mm, { len: P, prot: rw, shared: true, file: 5, hugetlb: '2M' }), 'EINVAL');
    expect(mmap(e, mm, { len: M2, prot: rw, shared: true, file: 5, pgoff: 512, hugetlb: '2M' }).ok).toBe(true);
    ok(e);
  });

  it('map_count above max_map_count → ENOMEM; unknown options are PvmwErrors', () => {
    const { e, mm } = space();
    rejected(e, () => mmap(e, mm, anonReq(P), { maxMapCount: 1 }), 'ENOMEM');
    expect(() => mmap(e, mm, { ...anonReq(P), populate: true } as unknown as MmapRequest)).toThrow(PvmwError);
    expect(() => mmap(e, mm, anonReq(P, { flags: { write: true } as never }))).toThrow(PvmwError);
  });
});
