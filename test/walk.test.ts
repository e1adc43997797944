// The WebAssembly walk's public API (src/walk/pvmw.ts): the interfaces of D2 side by side, where they must
// differ (D1 aliasing), page_mapped_in_vma (§1.6), cost counters, and bad input (issue 3 "Bad input").
import { describe, expect, it } from 'vitest';
import { Engine, EFAULT, linearPageIndex, type EngineOptions } from '../src/index.js';
import { openWalk, pageMappedInVma, pageVmaMappedWalk, walkBatch, type WalkRequest } from '../src/walk/pvmw.js';
import { openReferenceWalk, referencePageMappedInVma } from '../src/walk/reference.js';
import { PVMW_DEVICE_PRIVATE, PVMW_MIGRATION, PVMW_SYNC, type WalkKey } from '../src/walk/types.js';
import { buildSpace } from './gen/space.js';
import { batchMatches } from './walk-diff.js';
import { expectPvmwError } from './helpers.js';

const CHUNK = 4096;
const engine = (o: EngineOptions = {}) => new Engine({ ramPages: 1 << 20, deviceChunkPages: CHUNK, ...o });

/** RAM folio at pfn N mapped in the parent; device folio at offset N mapped at the same address in a child. */
function aliasSpace(semantics: 'newest' | 'series') {
  const e = engine({ deviceModel: 'offset', semantics });
  e.addDeviceMemory();
  const N = 0x200;
  const parent = e.createMm();
  const child = e.createMm();
  const pv = parent.addVma({ start: 0x100000, end: 0x200000 });
  const cv = child.addVma({ start: 0x100000, end: 0x200000 });
  const index = linearPageIndex(pv, 0x150000);
  const ram = e.createFolio({ number: N, index });
  const dev = e.createFolio({ namespace: 'device-private', number: N, index });
  parent.map(0x150000, { entry: { kind: 'present', number: N, write: true } });
  child.map(0x150000, { entry: { kind: 'device-private-write', number: N } });
  return { e, parent, child, pv, cv, ram, dev, N, index };
}

describe('D1 aliasing in the offset model: where the interfaces must differ', () => {
  it('a newest pfn-keyed walk for pfn N reports the device-private entry with offset N, and the reverse', () => {
    const { e, parent, child, pv, cv, N, index } = aliasSpace('newest');
    const key: WalkKey = { kind: 'pfn', number: N, nrPages: 1, pgoff: index, flags: 0 };
    // The walk for the RAM page finds its own mapping in the parent, and a false match in the child.
    expect(pageVmaMappedWalk(e, { mm: parent, vma: pv, key }).matches.map((m) => m.address)).toEqual([0x150000]);
    const child1 = pageVmaMappedWalk(e, { mm: child, vma: cv, key }).matches;
    expect(child1).toHaveLength(1);
    expect(child1[0].raw).toEqual(child.translate(0x150000).leaf.raw);
    // newest has no PVMW_DEVICE_PRIVATE to tell them apart (and the folio-keyed walk refuses to guess, D2).
    expectPvmwError(() => pageVmaMappedWalk(e, { mm: child, vma: cv, key: { ...key, flags: PVMW_DEVICE_PRIVATE } }), 'BAD_SETTING', 'series');
  });

  it('series pfn-keyed and folio-keyed walks keep the two apart', () => {
    const { e, parent, child, pv, cv, ram, dev, N, index } = aliasSpace('series');
    const ramKey: WalkKey = { kind: 'pfn', number: N, nrPages: 1, pgoff: index, flags: 0 };
    const devKey: WalkKey = { ...ramKey, flags: PVMW_DEVICE_PRIVATE };
    const count = (mm: typeof parent, vma: typeof pv, key: WalkKey) => pageVmaMappedWalk(e, { mm, vma, key }).matches.length;
    expect([count(parent, pv, ramKey), count(child, cv, ramKey)]).toEqual([1, 0]);
    expect([count(parent, pv, devKey), count(child, cv, devKey)]).toEqual([0, 1]);
    for (const strategy of ['range', 'identity'] as const) {
      expect([count(parent, pv, { kind: 'folio', folio: ram, strategy, flags: 0 }), count(child, cv, { kind: 'folio', folio: ram, strategy, flags: 0 })]).toEqual([1, 0]);
      expect([count(parent, pv, { kind: 'folio', folio: dev, strategy, flags: 0 }), count(child, cv, { kind: 'folio', folio: dev, strategy, flags: 0 })]).toEqual([0, 1]);
    }
  });
});

describe('D2: the folio-keyed walk gives the series pfn-keyed walk\'s matches, in both device models', () => {
  for (const deviceModel of ['pfn', 'offset'] as const) {
    it(`${deviceModel} model: range, identity and pfn-keyed agree for every folio case of a generated space`, () => {
      const space = buildSpace({ seed: 7, paging: 4, deviceModel, semantics: 'series', scale: 'large' });
      const { engine: e } = space;
      const folioCases = space.cases.filter((c) => c.key.kind === 'folio' && c.address === undefined);
      const asPfn = (c: (typeof folioCases)[number]): WalkRequest => {
        const k = c.key as Extract<WalkKey, { kind: 'folio' }>;
        const f = e.folio(k.folio);
        const page = k.page ?? 0;
        const flags = k.flags | (f.devicePrivate ? PVMW_DEVICE_PRIVATE : 0);
        const key: WalkKey = k.page === undefined
          ? { kind: 'pfn', number: f.number, nrPages: f.nrPages, pgoff: f.index, flags }
          : { kind: 'pfn', number: f.number + page, nrPages: 1, pgoff: f.index + page, flags };
        return { mm: c.mm, vma: c.vma, key };
      };
      const other = (strategy: 'range' | 'identity') => (c: (typeof folioCases)[number]): WalkRequest => ({ mm: c.mm, vma: c.vma, key: { ...(c.key as Extract<WalkKey, { kind: 'folio' }>), strategy } });
      const pfn = walkBatch(e, folioCases.map(asPfn));
      const range = walkBatch(e, folioCases.map(other('range')));
      const identity = walkBatch(e, folioCases.map(other('identity')));
      // The same entries, addresses, levels and locks; the pfn-keyed walk's flags also show its input
      // PVMW_DEVICE_PRIVATE, which the folio-keyed walk does not need.
      const withoutDp = (b: typeof pfn) => batchMatches(b).map((ms) => ms.map((m) => ({ ...m, flags: m.flags & ~PVMW_DEVICE_PRIVATE })));
      expect(withoutDp(range)).toEqual(withoutDp(pfn));
      expect(withoutDp(identity)).toEqual(withoutDp(pfn));
      expect(pfn.matches).toBeGreaterThan(1000);
      // The strategies differ in cost: identity resolves candidates through the memmap, range never does.
      const lookups = (b: typeof pfn) => { let n = 0; for (let j = 0; j < b.walks; j++) n += b.counters[j * 12 + 5]; return n; };
      expect(lookups(range)).toBe(0);
      expect(lookups(pfn)).toBe(0);
      expect(lookups(identity)).toBeGreaterThanOrEqual(identity.matches);
    });
  }
});

describe('§1.6 page_mapped_in_vma (D2: the page\'s own offset, nr_pages 1)', () => {
  it('agrees with the reference for every page case of a generated space, and is EFAULT off the VMA', () => {
    const space = buildSpace({ seed: 11, paging: 5, deviceModel: 'pfn', semantics: 'newest', scale: 'small' });
    const pageCases = space.cases.filter((c) => c.key.kind === 'folio' && (c.key as { page?: number }).page !== undefined);
    expect(pageCases.length).toBeGreaterThan(20);
    let mapped = 0;
    for (const c of pageCases) {
      const wasm = pageMappedInVma(space.engine, c.mm, c.vma, c.key);
      expect(wasm).toBe(referencePageMappedInVma(space.engine, c.mm, c.vma, c.key));
      if (wasm !== EFAULT) mapped++;
    }
    expect(mapped).toBeGreaterThan(0);
  });
});

describe('issue 3 bad input: a clear error, engine unchanged', () => {
  const e = engine();
  const a = e.createMm();
  const b = e.createMm();
  const va = a.addVma({ start: 0x100000, end: 0x200000 });
  const vb = b.addVma({ start: 0x100000, end: 0x200000 });
  const f = e.createFolio({ number: 0x40, order: 2, index: linearPageIndex(va, 0x100000) });
  a.map(0x100000, { count: 4, entry: { kind: 'present', number: 0x40 } });
  const good: WalkKey = { kind: 'pfn', number: 0x40, nrPages: 4, pgoff: linearPageIndex(va, 0x100000), flags: 0 };
  pageVmaMappedWalk(e, { mm: a, vma: va, key: good }); // the first walk takes the engine's walk buffers
  const before = () => JSON.stringify([a.stats(), e.memoryUsage(), e.folio(f), a.translate(0x100000)]);
  const snap = before();
  it.each([
    ['a VMA of another mm', () => pageVmaMappedWalk(e, { mm: a, vma: vb, key: good }), 'NO_VMA', '0x100000'],
    ['PVMW_DEVICE_PRIVATE without series (a key in the wrong namespace)', () => pageVmaMappedWalk(e, { mm: a, vma: va, key: { ...good, flags: PVMW_DEVICE_PRIVATE } }), 'BAD_SETTING', 'series'],
    ['nr_pages 0', () => pageVmaMappedWalk(e, { mm: a, vma: va, key: { ...good, nrPages: 0 } }), 'BAD_RANGE', 'nr_pages'],
    ['a page not in the folio', () => pageVmaMappedWalk(e, { mm: a, vma: va, key: { kind: 'folio', folio: f, page: 4, strategy: 'range', flags: 0 } }), 'BAD_RANGE', '4'],
    ['an address outside the VMA', () => pageVmaMappedWalk(e, { mm: a, vma: va, key: good, address: 0x200000 }), 'BAD_ADDRESS', '0x200000'],
    ['an unknown flag bit', () => pageVmaMappedWalk(e, { mm: a, vma: va, key: { ...good, flags: 1 << 5 } }), 'BAD_SETTING', '0x20'],
    ['a folio that does not exist', () => pageVmaMappedWalk(e, { mm: a, vma: va, key: { kind: 'folio', folio: 0x41, strategy: 'identity', flags: 0 } }), 'NO_FOLIO', '0x41'],
    ['one bad request refuses the whole batch', () => walkBatch(e, [{ mm: a, vma: va, key: good }, { mm: a, vma: vb, key: good }]), 'NO_VMA', '0x100000'],
  ] as const)('%s', (_what, f, code, text) => {
    expectPvmwError(f, code, text);
    expect(before()).toBe(snap);
    expect(pageVmaMappedWalk(e, { mm: a, vma: va, key: good }).matches).toHaveLength(4);
  });

  it('flags pass through: PVMW_SYNC and PVMW_MIGRATION', () => {
    expect(pageVmaMappedWalk(e, { mm: a, vma: va, key: { ...good, flags: PVMW_SYNC } }).matches.map((m) => m.flags)).toEqual([1, 1, 1, 1]);
    expect(pageVmaMappedWalk(e, { mm: a, vma: va, key: { ...good, flags: PVMW_MIGRATION } }).matches).toHaveLength(0);
  });
});

describe('§1.4 walk_done and walk_restart: a caller acting between matches, as try_to_unmap_one does', () => {
  it('split a PMD-level match, restart, and carry on: WebAssembly and reference agree on twin spaces', () => {
    let splits = 0;
    let early = 0;
    for (const semantics of ['newest', 'series'] as const) {
      const o = { seed: 3, paging: 4 as const, deviceModel: 'pfn' as const, semantics, scale: 'small' as const };
      const a = buildSpace(o);
      const b = buildSpace(o);
      walkBatch(a.engine, []); // both twins take their walk buffers before any table changes
      walkBatch(b.engine, []);
      for (let j = 0; j < a.cases.length; j++) {
        const ca = a.cases[j];
        const cb = b.cases[j];
        const wa = openWalk(a.engine, { mm: ca.mm, vma: ca.vma, key: ca.key, address: ca.address });
        const wb = openReferenceWalk(b.engine, cb.mm, cb.vma, cb.key, { address: cb.address });
        expect(wa.start).toBe(wb.start);
        for (let n = 0; ; n++) {
          const ma = wa.next();
          const mb = wb.next();
          expect(ma, `case ${j} (${ca.row}) call ${n}`).toEqual(mb);
          if (ma === null) break;
          if (ma.level === 'pmd' && !ca.vma.flags.hugetlb) {
            // TTU_SPLIT_HUGE_PMD: split under the PMD lock, then page_vma_mapped_walk_restart.
            ca.mm.splitPmd(ma.address);
            cb.mm.splitPmd(mb!.address);
            wa.restart();
            wb.restart();
            splits++;
          } else if (j % 5 === 0 && n === 2) {
            wa.done(); // stop early: page_vma_mapped_walk_done
            wb.done();
            early++;
            break;
          }
        }
        expect(wa.counters().restarts).toBe(wb.counters.restarts);
      }
    }
    expect(splits).toBeGreaterThan(5);
    expect(early).toBeGreaterThan(5);
  });

  it('a walker ended by another walk on the same engine says so', () => {
    const e = engine();
    const mm = e.createMm();
    const vma = mm.addVma({ start: 0x100000, end: 0x200000 });
    e.createFolio({ number: 8, order: 1, index: linearPageIndex(vma, 0x100000) });
    mm.map(0x100000, { count: 2, entry: { kind: 'present', number: 8 } });
    const key: WalkKey = { kind: 'pfn', number: 8, nrPages: 2, pgoff: linearPageIndex(vma, 0x100000), flags: 0 };
    const w = openWalk(e, { mm, vma, key });
    expect(w.next()?.address).toBe(0x100000);
    pageVmaMappedWalk(e, { mm, vma, key });
    expectPvmwError(() => w.next(), 'BAD_SETTING', 'ended by another walk');
    const again = openWalk(e, { mm, vma, key });
    expect([again.next()?.address, again.next()?.address, again.next()]).toEqual([0x100000, 0x101000, null]);
  });
});
