// Splitting a PMD mapping (kernel-operations.md §6.1, __split_huge_pmd): every row of the step list, with and
// without freeze; the folio itself stays one large folio.
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex, leavesIn, splitHugePmd, zeroPages, type Mm, type Vma } from '../src/index.js';
import { opsState } from '../src/mm/state.js';

const A = 0x40000000;

function setup(opts: { file?: number; shared?: boolean; read?: boolean } = {}) {
  const e = new Engine({ ramPages: 1 << 16 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: A, end: A + 0x400000, file: opts.file, pgoff: opts.file !== undefined ? 0 : undefined, flags: { thp: true, shared: opts.shared ?? false, read: opts.read ?? true, write: opts.read ?? true } });
  return { e, mm, vma };
}

function thp(e: Engine, vma: Vma, file?: number): number {
  const index = linearPageIndex(vma, A);
  return file === undefined ? e.createFolio({ number: 0x2000, order: 9, anonVma: 1, index }) : e.createFolio({ number: 0x2000, order: 9, file, index });
}

function ptes(e: Engine, mm: Mm) {
  return leavesIn(e, mm, A, A + 0x200000);
}

describe('§6.1 splitting a PMD mapping', () => {
  it('step 1: in a file VMA the PMD is cleared; dirty passes to the folio, which stays in the page cache; no PTEs', () => {
    const { e, mm, vma } = setup({ file: 3 });
    const f = thp(e, vma, 3);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000, dirty: true } });
    expect(splitHugePmd(e, mm, vma, A + 0x5000)?.kind).toBe('PMD');
    expect(ptes(e, mm)).toEqual([]);
    expect(e.folio(f)).toMatchObject({ mapcount: 0, entireMapcount: 0, order: 9 });
    expect(e.folio(f).flags.dirty).toBe(true);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('step 1: a PMD migration entry in a file VMA is cleared too', () => {
    const { e, mm, vma } = setup({ file: 3 });
    thp(e, vma, 3);
    mm.map(A, { level: 'pmd', entry: { kind: 'migration-read', number: 0x2000 } });
    splitHugePmd(e, mm, vma, A);
    expect(ptes(e, mm)).toEqual([]);
  });

  it('step 2: a huge zero PMD in an anon VMA becomes 512 ZP PTEs (special, read-only, no mapcount)', () => {
    const { e, mm, vma } = setup();
    const z = zeroPages(e);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: z.hugePfn, special: true, user: true } });
    expect(splitHugePmd(e, mm, vma, A)?.kind).toBe('HZP');
    const l = ptes(e, mm);
    expect(l).toHaveLength(512);
    expect(l.every((x) => x.kind === 'ZP' && x.entry.number === z.zeroPfn && !x.entry.bits.write)).toBe(true);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('steps 3 and 6: a PMD MIG-W becomes 512 PTE MIG-W entries of pfn + i with young and dirty; no mapcount', () => {
    const { e, mm, vma } = setup();
    const f = thp(e, vma);
    mm.map(A, { level: 'pmd', entry: { kind: 'migration-write', number: 0x2000, young: true, dirty: true } });
    splitHugePmd(e, mm, vma, A);
    const l = ptes(e, mm);
    expect(l).toHaveLength(512);
    expect(l.every((x, i) => x.kind === 'MIG-W' && x.entry.number === 0x2000 + i && x.entry.bits.young && x.entry.bits.dirty)).toBe(true);
    expect(e.folio(f).mapcount).toBe(0);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('steps 4 and 6: a PMD DP-W becomes 512 DP-W PTEs; mapcount moves from entire to every page; AnonExclusive carried', () => {
    const e = new Engine({ ramPages: 1 << 16 });
    const dev = e.addDeviceMemory();
    const mm = e.createMm();
    const vma = mm.addVma({ start: A, end: A + 0x400000, flags: { thp: true } });
    const f = e.createFolio({ namespace: dev.namespace, number: dev.base, order: 9, anonVma: 1, index: linearPageIndex(vma, A) });
    mm.map(A, { level: 'pmd', entry: { kind: 'device-private-write', number: dev.base } });
    e.folios.setAnonExclusive(f, 0, 1, true);
    splitHugePmd(e, mm, vma, A);
    const l = ptes(e, mm);
    expect(l.every((x, i) => x.kind === 'DP-W' && x.entry.number === dev.base + i)).toBe(true);
    expect(e.folio(f)).toMatchObject({ mapcount: 512, entireMapcount: 0 });
    expect(e.page(dev.namespace, dev.base + 511)).toMatchObject({ mapcount: 1, anonExclusive: true });
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('steps 5 and 6: a present anon THP PMD becomes 512 PL PTEs, writable, young and dirty as the PMD; per-page mapcounts; AnonExclusive on every page', () => {
    const { e, mm, vma } = setup();
    const f = thp(e, vma);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true, young: true, dirty: true, user: true } });
    e.folios.setAnonExclusive(f, 0, 1, true);
    splitHugePmd(e, mm, vma, A + 0x1000);
    const l = ptes(e, mm);
    expect(l.every((x, i) => x.kind === 'PL' && x.entry.number === 0x2000 + i && x.entry.bits.write && x.entry.bits.young && x.entry.bits.dirty)).toBe(true);
    expect(e.folio(f)).toMatchObject({ order: 9, mapcount: 512, entireMapcount: 0 });
    expect(e.page('pfn', 0x2000 + 300)).toMatchObject({ mapcount: 1, anonExclusive: true });
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('step 6: the NUMA-hint PROTNONE state is not carried to the PTEs of an accessible VMA; in a PROT_NONE VMA it stays', () => {
    for (const accessible of [true, false]) {
      const { e, mm, vma } = setup({ read: accessible });
      thp(e, vma);
      mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000, protnone: true } });
      splitHugePmd(e, mm, vma, A);
      const l = ptes(e, mm);
      expect(l).toHaveLength(512);
      expect(l.every((x) => x.kind === (accessible ? 'PL' : 'PN'))).toBe(true);
      expect(e.checkInvariants().problems).toEqual([]);
    }
  });

  it('freeze (try_to_migrate): an exclusive writable THP becomes 512 MIG-W PTEs; the mapping is gone and AnonExclusive cleared', () => {
    const { e, mm, vma } = setup();
    const f = thp(e, vma);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true, dirty: true } });
    e.folios.setAnonExclusive(f, 0, 1, true);
    e.folios.setFlags(f, { dirty: false });
    splitHugePmd(e, mm, vma, A, true);
    const l = ptes(e, mm);
    expect(l.every((x, i) => x.kind === 'MIG-W' && x.entry.number === 0x2000 + i && x.entry.bits.dirty)).toBe(true);
    expect(e.folio(f)).toMatchObject({ mapcount: 0, entireMapcount: 0 });
    expect(e.folio(f).flags.dirty).toBe(true); // step 5: the PMD's dirty bit passes to the folio
    expect(e.page('pfn', 0x2000)!.anonExclusive).toBe(false);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('freeze: a read-only exclusive THP gives MIG-RX, a shared one MIG-R', () => {
    for (const exclusive of [true, false]) {
      const { e, mm, vma } = setup();
      const f = thp(e, vma);
      mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000 } });
      e.folios.setAnonExclusive(f, 0, 1, exclusive);
      splitHugePmd(e, mm, vma, A, true);
      expect(new Set(ptes(e, mm).map((x) => x.kind))).toEqual(new Set([exclusive ? 'MIG-RX' : 'MIG-R']));
    }
  });

  it('freeze: a pinned exclusive head cannot be shared, so the split proceeds without freezing (512 PL, still mapped)', () => {
    const { e, mm, vma } = setup();
    const f = thp(e, vma);
    mm.map(A, { level: 'pmd', entry: { kind: 'present', number: 0x2000, write: true } });
    e.folios.setAnonExclusive(f, 0, 1, true);
    opsState(e).pins.set(f, 1);
    splitHugePmd(e, mm, vma, A, true);
    expect(new Set(ptes(e, mm).map((x) => x.kind))).toEqual(new Set(['PL']));
    expect(e.folio(f).mapcount).toBe(512);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('nothing happens where there is no PMD leaf (none, or a PTE table)', () => {
    const { e, mm, vma } = setup();
    expect(splitHugePmd(e, mm, vma, A)).toBeUndefined();
    e.createFolio({ number: 0x10, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'present', number: 0x10 } });
    const before = ptes(e, mm).map((x) => x.raw);
    expect(splitHugePmd(e, mm, vma, A)).toBeUndefined();
    expect(ptes(e, mm).map((x) => x.raw)).toEqual(before);
  });
});
