// Faults on non-present PTEs (kernel-operations.md §5.5 do_swap_page per softleaf kind): migration waits, DX
// restore, swap-in (exclusive or shared), HWP / markers, and device-private migrate_to_ram (§10.7, §12.3).
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex } from '../src/index.js';
import { cpuAccess } from '../src/mm/access.js';
import { handleMmFault } from '../src/mm/fault.js';
import { opsState } from '../src/mm/state.js';
import { A, END, P, at, bits, rmapReaches, setup } from './ops-fault-helpers.js';
import { engineSnapshot, expectClean } from './ops-helpers.js';

describe('§5.5 non-present PTEs: MIG, DX, SWAP, HWP, markers', () => {
  for (const kind of ['migration-read', 'migration-read-exclusive', 'migration-write'] as const) {
    it(`${kind}: wait and retry on read and write (cpuAccess gives up with retry), nothing changes`, () => {
      const { e, mm, vma } = setup();
      e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
      mm.map(A, { entry: { kind, number: 0x2000 } });
      const before = engineSnapshot(e);
      expect(handleMmFault(e, mm, A)).toBe('retry');
      expect(handleMmFault(e, mm, A, { write: true })).toBe('retry');
      expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'retry' });
      expect(cpuAccess(e, mm, A, 'write')).toEqual({ outcome: 'retry' });
      expect(engineSnapshot(e)).toBe(before);
      expectClean(e);
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
    expectClean(e);
  });

  it('DX of a page that is not AnonExclusive restores read-only; the write then goes through do_wp_page (reuse, mapcount 1)', () => {
    const { e, mm, vma } = setup();
    const id = e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'device-exclusive', number: 0x2000 } });
    expect(cpuAccess(e, mm, A, 'write', { tag: 1 })).toEqual({ outcome: 'ok', tag: 1 });
    expect(at(e, mm, A).folio!.id).toBe(id);
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    expectClean(e);
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
    expectClean(e);
  });

  it('SWAP with the exclusive bit, write: writable + dirty at once', () => {
    const { e, mm } = setup();
    const off = opsState(e).swap.alloc(0x5b);
    mm.map(A, { entry: { kind: 'swap', swapType: 0, offset: off, flags: { exclusive: true } } });
    expect(handleMmFault(e, mm, A, { write: true })).toBe('ok');
    expect(bits(e, mm, A)).toMatchObject({ write: true, dirty: true });
    expect(e.page('pfn', at(e, mm, A).entry.number!)!.tag).toBe(0x5b);
    expectClean(e);
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
    expectClean(e);
    expect(cpuAccess(e, mm, A, 'write', { tag: 0x5d })).toEqual({ outcome: 'ok', tag: 0x5d });
    expect(at(e, mm, A).folio!.id).toBe(v.folio!.id);
    expectClean(e);
  });

  it('HWP and MK-PSN are SIGBUS, MK-GRD is SIGSEGV, on read and write; nothing changes', () => {
    const { e, mm, vma } = setup();
    e.createFolio({ number: 0x2000, index: linearPageIndex(vma, A) });
    mm.map(A, { entry: { kind: 'hwpoison', number: 0x2000 } });
    mm.map(A + P, { entry: { kind: 'marker', poisoned: true } });
    mm.map(A + 2 * P, { entry: { kind: 'marker', guard: true } });
    expect([A, A + P, A + 2 * P].map((a) => at(e, mm, a).kind)).toEqual(['HWP', 'MK-PSN', 'MK-GRD']);
    const before = engineSnapshot(e);
    for (const access of ['read', 'write'] as const) {
      expect(cpuAccess(e, mm, A, access)).toEqual({ outcome: 'SIGBUS' });
      expect(cpuAccess(e, mm, A + P, access)).toEqual({ outcome: 'SIGBUS' });
      expect(cpuAccess(e, mm, A + 2 * P, access)).toEqual({ outcome: 'SIGSEGV' });
    }
    expect(engineSnapshot(e)).toBe(before);
    expectClean(e);
  });

  it('MK-UW: the marker is cleared and the slot handled as NONE (read → ZP, write → new folio)', () => {
    const { e, mm } = setup();
    mm.map(A, { entry: { kind: 'marker', uffdWp: true } });
    mm.map(A + P, { entry: { kind: 'marker', uffdWp: true } });
    expect(handleMmFault(e, mm, A)).toBe('ok');
    expect(at(e, mm, A).kind).toBe('ZP');
    expect(handleMmFault(e, mm, A + P, { write: true })).toBe('ok');
    expect(at(e, mm, A + P).kind).toBe('P');
    expectClean(e);
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
    expectClean(e);
  });

  it('DP-R (AnonExclusive) write: migrate_to_ram, then the write fault reuses the page (no copy; §3.3 consequence)', () => {
    const { e, mm } = device('device-private-read', true);
    expect(cpuAccess(e, mm, A, 'write', { tag: 0xd1 })).toEqual({ outcome: 'ok', tag: 0xd1 });
    expect(at(e, mm, A).folio!.mapcount).toBe(1);
    expect(e.folioCensus().anon).toBe(1); // only the page migrate_to_ram made (no zero page was needed)
    expectClean(e);
  });

  it('DP-W read and write: writable at once', () => {
    const { e, mm } = device('device-private-write', false);
    expect(cpuAccess(e, mm, A, 'read')).toEqual({ outcome: 'ok', tag: 0xd0 });
    expect(bits(e, mm, A).write).toBe(true);
    expect(e.page('pfn', at(e, mm, A).entry.number!)!.anonExclusive).toBe(true);
    expect(cpuAccess(e, mm, A, 'write', { tag: 2 }).tag).toBe(2);
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
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
    expectClean(e);
  });
});
