import { describe, expect, it } from 'vitest';
import { Engine, PvmwError, PMD_SIZE, type DeviceModel, type EngineOptions, type PvmwErrorCode } from '../src/index.js';
import { expectPvmwError } from './helpers.js';

const P = 4096;
const CHUNK = 4096; // pages per device chunk (a multiple of 512)
const RAM = 1 << 16;

function engine(deviceModel: DeviceModel, opts: EngineOptions = {}): Engine {
  return new Engine({ ramPages: RAM, deviceChunkPages: CHUNK, deviceModel, ...opts });
}


const hex = (n: number) => '0x' + n.toString(16);

describe('D1 device-private memory, pfn model: chunks are pfns at the top of the physical space', () => {
  it('chunk k sits at 2^34 − (k+1)·chunkPages (4-level), above 2^32, namespace pfn', () => {
    const e = engine('pfn');
    const chunks = [0, 1, 2].map(() => e.addDeviceMemory());
    chunks.forEach((c, k) => {
      expect(c).toMatchObject({ namespace: 'pfn', kind: 'device-private', base: 2 ** 34 - (k + 1) * CHUNK, pages: CHUNK });
      expect(c.base).toBeGreaterThan(2 ** 32);
      expect(c.start % 2 ** 18).toBe(c.base % 2 ** 18); // natural alignment carries over to the memmap
    });
    expect(e.memory.devices()).toHaveLength(3);
  });

  it('5-level paging puts the chunks under 2^40, and entries can name those pfns', () => {
    const e = engine('pfn', { paging: 5 });
    const c0 = e.addDeviceMemory();
    const c1 = e.addDeviceMemory();
    expect([c0.base, c1.base]).toEqual([2 ** 40 - CHUNK, 2 ** 40 - 2 * CHUNK]);
    const id = e.createFolio({ number: c1.base + 512, order: 9, index: 2 ** 50 / P }); // anon: index = VA / 4096
    const mm = e.createMm();
    mm.addVma({ start: 2 ** 50, end: 2 ** 50 + 2 * PMD_SIZE });
    mm.map(2 ** 50, { level: 'pmd', entry: { kind: 'device-private-write', number: c1.base + 512 } });
    const t = mm.translate(2 ** 50 + 3 * P);
    expect(t.leaf.entry).toMatchObject({ kind: 'device-private-write', namespace: 'pfn', number: c1.base + 512 });
    expect(t.page).toMatchObject({ folio: id, page: 3, mapcount: 1 });
    expect(e.folio(id)).toMatchObject({ namespace: 'pfn', number: c1.base + 512, devicePrivate: true, entireMapcount: 1 });
  });

  it('present entries may not name device memory; device-private entries may not name RAM (PFN_RANGE)', () => {
    const e = engine('pfn');
    const c = e.addDeviceMemory();
    e.createFolio({ number: c.base });
    e.createFolio({ number: c.base + 512, order: 9 });
    e.createFolio({ number: 8 });
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 3 * PMD_SIZE });
    expectPvmwError(() => mm.map(PMD_SIZE, { entry: { kind: 'present', number: c.base } }), 'PFN_RANGE', hex(c.base), 'device-private');
    expectPvmwError(() => mm.map(2 * PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: c.base + 512 } }), 'PFN_RANGE', hex(c.base + 512));
    expectPvmwError(() => mm.map(PMD_SIZE, { entry: { kind: 'device-private-write', number: 8 } }), 'PFN_RANGE', '0x8', 'not device-private');
    expectPvmwError(() => mm.map(PMD_SIZE, { entry: { kind: 'device-exclusive', number: c.base } }), 'PFN_RANGE', hex(c.base));
    // The namespace 'device-private' does not exist in this model.
    expectPvmwError(() => e.page('device-private', 0), 'PFN_RANGE');
    expect(mm.stats().leaves).toEqual({ pte: 0, pmd: 0, pud: 0 });
  });

  it('a migration entry may name a device page (migrating it to RAM) and does not count', () => {
    const e = engine('pfn');
    const c = e.addDeviceMemory();
    const id = e.createFolio({ number: c.base + 7, index: 0x10 }); // anon, at 0x10000
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.map(0x10000, { entry: { kind: 'migration-write', number: c.base + 7 } });
    expect(mm.translate(0x10000).leaf.entry).toMatchObject({ kind: 'migration-write', namespace: 'pfn', number: c.base + 7 });
    expect(e.folio(id).mapcount).toBe(0);
  });
});

describe('D1 device-private memory, offset model: offsets from 0 that collide with RAM pfns', () => {
  it('chunk k holds offsets k·chunkPages …, in the device-private namespace', () => {
    const e = engine('offset');
    const chunks = [0, 1, 2].map(() => e.addDeviceMemory());
    chunks.forEach((c, k) => expect(c).toMatchObject({ namespace: 'device-private', kind: 'device-private', base: k * CHUNK, pages: CHUNK }));
    expect(new Set(chunks.map((c) => c.start)).size).toBe(3);
    expect(chunks.every((c) => c.start >= RAM)).toBe(true); // own stretch of the memmap, after RAM
  });

  it('a RAM folio at pfn N and a device folio at offset N coexist with distinct ids', () => {
    const e = engine('offset');
    e.addDeviceMemory();
    const N = 512;
    const ram = e.createFolio({ number: N, order: 9, file: 4 });
    const dev = e.createFolio({ namespace: 'device-private', number: N, order: 9 });
    expect(ram).not.toBe(dev);
    expect(e.folio(ram)).toMatchObject({ namespace: 'pfn', number: N, devicePrivate: false, anon: false });
    expect(e.folio(dev)).toMatchObject({ namespace: 'device-private', number: N, devicePrivate: true, anon: true });
    expect(e.page('pfn', N + 3)).toMatchObject({ folio: ram, page: 3 });
    expect(e.page('device-private', N + 3)).toMatchObject({ folio: dev, page: 3 });
    e.folios.setTag(dev, 3, 1, 99);
    expect([e.page('pfn', N + 3)!.tag, e.page('device-private', N + 3)!.tag]).toEqual([0, 99]);
    // Free one; the other is untouched.
    e.freeFolio(ram);
    expect(e.page('pfn', N + 3)).toBeUndefined();
    expect(e.page('device-private', N + 3)).toMatchObject({ folio: dev, tag: 99 });
    expect(e.folioCensus()).toMatchObject({ devicePrivate: 1, anon: 1, file: 0 });
  });

  it('present N and device-private-write N in one mm map different folios; translate tells them apart', () => {
    const e = engine('offset');
    e.addDeviceMemory();
    const ram = e.createFolio({ number: 40, index: 0x10 }); // anon, at 0x10000
    const dev = e.createFolio({ namespace: 'device-private', number: 40, index: 0x11 }); // anon, at 0x11000
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.map(0x10000, { entry: { kind: 'present', number: 40 } });
    mm.map(0x11000, { entry: { kind: 'device-private-write', number: 40 } });
    const a = mm.translate(0x10000);
    const b = mm.translate(0x11000);
    expect(a.leaf.entry).toMatchObject({ kind: 'present', namespace: 'pfn', number: 40 });
    expect(b.leaf.entry).toMatchObject({ kind: 'device-private-write', namespace: 'device-private', number: 40 });
    expect(a.page!.folio).toBe(ram);
    expect(b.page!.folio).toBe(dev);
    expect([e.folio(ram).mapcount, e.folio(dev).mapcount]).toEqual([1, 1]);
  });

  it('device-exclusive entries name RAM pfns even in the offset model', () => {
    const e = engine('offset');
    e.addDeviceMemory();
    const ram = e.createFolio({ number: 9, index: 0x10 }); // anon, at 0x10000
    const dev = e.createFolio({ namespace: 'device-private', number: 9, index: 0x10 });
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.map(0x10000, { entry: { kind: 'device-exclusive', number: 9 } });
    expect(mm.translate(0x10000).leaf.entry.namespace).toBe('pfn');
    expect([e.folio(ram).mapcount, e.folio(dev).mapcount]).toEqual([1, 0]);
  });

  it('entries naming an offset beyond device memory are PFN_RANGE; an offset with no folio is NO_FOLIO', () => {
    const e = engine('offset');
    e.addDeviceMemory();
    e.createFolio({ number: 100 }); // RAM pfn 100 has a folio, device offset 100 has none
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    expectPvmwError(() => mm.map(0x10000, { entry: { kind: 'device-private-write', number: CHUNK } }), 'PFN_RANGE', hex(CHUNK), 'device-private offset');
    expectPvmwError(() => mm.map(0x10000, { entry: { kind: 'device-private-read', number: 100 } }), 'NO_FOLIO', '0x64');
    expectPvmwError(() => e.createFolio({ namespace: 'device-private', number: CHUNK - 256, order: 9 }), 'PFN_RANGE', hex(CHUNK - 256));
    expect(mm.stats().leaves.pte).toBe(0);
  });

  it('series semantics: migration-device-private entries carry offsets and do not count', () => {
    const e = engine('offset', { semantics: 'series' });
    e.addDeviceMemory();
    const dev = e.createFolio({ namespace: 'device-private', number: 5, index: 0x10 }); // anon, at 0x10000
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.map(0x10000, { entry: { kind: 'migration-device-private-write', number: 5 } });
    expect(mm.translate(0x10000).leaf.entry).toMatchObject({ namespace: 'device-private', number: 5 });
    expect(e.folio(dev).mapcount).toBe(0);
  });

  it('series semantics (§4.3 patch 9): a device page takes a migration-device-private entry, not an ordinary one', () => {
    // In the pfn model a device page has a pfn, so an ordinary migration entry could name it; the series never
    // makes one. Under newest it is how a device page's migration entry looks.
    for (const semantics of ['series', 'newest'] as const) {
      const e = engine('pfn', { semantics });
      const dev = e.addDeviceMemory();
      e.createFolio({ number: dev.base, index: 0x10 });
      const mm = e.createMm();
      mm.addVma({ start: 0x10000, end: 0x20000 });
      const ordinary = () => mm.map(0x10000, { entry: { kind: 'migration-read', number: dev.base } });
      if (semantics === 'series') {
        expectPvmwError(ordinary, 'BAD_ENTRY', hex(dev.base), 'migration-device-private');
        expect(mm.stats().leaves.pte).toBe(0);
        mm.map(0x10000, { entry: { kind: 'migration-device-private-read', number: dev.base } });
      } else {
        ordinary();
      }
      expect(mm.stats().leaves.pte).toBe(1);
    }
  });
});

describe.each(['pfn', 'offset'] as const)('D1 device-private folios and entries, %s model', (model) => {
  const ns = model === 'pfn' ? 'pfn' : 'device-private';

  function setup() {
    const e = engine(model);
    const c0 = e.addDeviceMemory();
    const c1 = e.addDeviceMemory();
    const small = e.createFolio({ namespace: ns, number: c1.base + 3, index: PMD_SIZE / P }); // anon, for VA PMD_SIZE
    const thp = e.createFolio({ namespace: ns, number: c1.base + 1024, order: 9, anonVma: 12, index: 2 ** 40 });
    return { e, c0, c1, small, thp };
  }

  it('device-private folios of order 0 and 9 live in the chunks', () => {
    const { e, c1, small, thp } = setup();
    expect(c1.namespace).toBe(ns);
    expect(e.folio(small)).toMatchObject({ namespace: ns, number: c1.base + 3, order: 0, devicePrivate: true, hugetlb: null });
    expect(e.folio(thp)).toMatchObject({ namespace: ns, number: c1.base + 1024, order: 9, devicePrivate: true, anonVma: 12, index: 2 ** 40 });
    expect(e.page(ns, c1.base + 1024 + 511)).toMatchObject({ folio: thp, page: 511 });
    expect(e.folioCensus()).toMatchObject({ devicePrivate: 2 });
    expectPvmwError(() => e.createFolio({ namespace: ns, number: c1.base + 1024 + 512, hugetlb: '2M' }), 'BAD_ORDER', 'hugetlb');
    expectPvmwError(() => e.createFolio({ namespace: ns, number: c1.base + 1024 + 64 }), 'FOLIO_BUSY', hex(c1.base + 1024 + 64));
  });

  it('device-private-write entries at PTE and PMD level map them (mapcount), and translate finds the page', () => {
    const { e, c1, small, thp } = setup();
    const mm = e.createMm();
    // thp has index 2^40, so it is mapped through anon VMAs with that pgoff (as mremap leaves them, §0.3):
    // one puts its page 100 at PMD_SIZE + P, the other puts the whole folio at 2 * PMD_SIZE.
    mm.addVma({ start: PMD_SIZE, end: PMD_SIZE + P });
    mm.addVma({ start: PMD_SIZE + P, end: 2 * PMD_SIZE, pgoff: 2 ** 40 + 100 });
    mm.addVma({ start: 2 * PMD_SIZE, end: 4 * PMD_SIZE, pgoff: 2 ** 40 });
    mm.map(PMD_SIZE, { entry: { kind: 'device-private-write', number: c1.base + 3 } });
    mm.map(PMD_SIZE + P, { count: 4, entry: { kind: 'device-private-read', number: c1.base + 1024 + 100 } });
    mm.map(2 * PMD_SIZE, { level: 'pmd', entry: { kind: 'device-private-write', number: c1.base + 1024 } });
    expect(e.folio(small)).toMatchObject({ mapcount: 1, entireMapcount: 0 });
    expect(e.folio(thp)).toMatchObject({ mapcount: 5, entireMapcount: 1 });
    expect(e.page(ns, c1.base + 1024 + 102)!.mapcount).toBe(2);
    expect(e.page(ns, c1.base + 1024 + 99)!.mapcount).toBe(1);
    const t = mm.translate(2 * PMD_SIZE + 102 * P + 5);
    expect(t.leaf.level).toBe('pmd');
    expect(t.leaf.entry).toMatchObject({ kind: 'device-private-write', namespace: ns, number: c1.base + 1024 });
    expect(t.page).toMatchObject({ folio: thp, page: 102, mapcount: 2 });
    expect(mm.translate(PMD_SIZE + 2 * P).leaf.entry).toMatchObject({ kind: 'device-private-read', namespace: ns, number: c1.base + 1024 + 101 });
    expect(mm.translate(PMD_SIZE).page).toMatchObject({ folio: small, page: 0, mapcount: 1 });
    expectPvmwError(() => e.freeFolio(thp), 'FOLIO_BUSY');
    mm.clear(PMD_SIZE, 4 * PMD_SIZE);
    expect([e.folio(small).mapcount, e.folio(thp).mapcount, e.folio(thp).entireMapcount]).toEqual([0, 0, 0]);
    e.freeFolio(thp);
    e.freeFolio(small);
    expect(e.folioCensus().devicePrivate).toBe(0);
  });

  it('a device PMD entry must name the head of an order-9 device folio', () => {
    const { e, c1 } = setup();
    // The folios made here follow setup's thp (index 2^40) in the same anon range; the VMAs have the pgoffs that
    // put each one where rmap looks for it (§0.3), so the order and head checks are what reject the entries.
    const base = 2 ** 40;
    e.createFolio({ namespace: ns, number: c1.base + 1536, order: 9, index: base + 512 });
    e.createFolio({ namespace: ns, number: c1.base + 2048, order: 8, index: base + 1024 });
    e.createFolio({ namespace: ns, number: c1.base + 2048 + 256, order: 8, index: base + 1280 });
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 2 * PMD_SIZE, pgoff: base + 8 }); // thp's page 8 at PMD_SIZE
    mm.addVma({ start: 2 * PMD_SIZE, end: 5 * PMD_SIZE, pgoff: base }); // thp, then the folios at 3 and 4 · PMD_SIZE
    const dpw = (number: number, addr: number) => () => mm.map(addr, { level: 'pmd', entry: { kind: 'device-private-write', number } });
    expectPvmwError(dpw(c1.base + 2048, 4 * PMD_SIZE), 'BAD_ENTRY', hex(c1.base + 2048), 'order-9'); // wrong order
    expectPvmwError(dpw(c1.base + 1024 + 8, PMD_SIZE), 'BAD_ENTRY', hex(c1.base + 1024 + 8), 'not the head'); // a tail page
    expectPvmwError(dpw(c1.base + 512, 2 * PMD_SIZE), 'NO_FOLIO', hex(c1.base + 512)); // no folio there
    expect(mm.stats().leaves.pmd).toBe(0);
    dpw(c1.base + 1536, 3 * PMD_SIZE)();
    expect(mm.stats().leaves.pmd).toBe(1);
  });

  it('device folios at chunk boundaries; a number outside every chunk is PFN_RANGE', () => {
    const { e, c0, c1 } = setup();
    const top = model === 'pfn' ? c0 : c1; // the chunk with the highest numbers
    e.createFolio({ namespace: ns, number: c0.base, order: 9 });
    e.createFolio({ namespace: ns, number: top.base + CHUNK - 512, order: 9 });
    const beyond = top.base + CHUNK; // pfn model: 2^34, the end of the physical address space
    expectPvmwError(() => e.createFolio({ namespace: ns, number: beyond }), 'PFN_RANGE', hex(beyond));
    expectPvmwError(() => e.createFolio({ namespace: ns, number: top.base + CHUNK - 256, order: 9 }), 'PFN_RANGE', hex(top.base + CHUNK - 256));
    if (model === 'pfn') {
      const below = c1.base - 512; // chunks grow downwards: nothing below the last one
      expectPvmwError(() => e.createFolio({ namespace: ns, number: below, order: 9 }), 'PFN_RANGE', hex(below));
    }
    expect(e.folioCensus().devicePrivate).toBe(4);
  });
});
