// The random address-space generator of the walk's differential tests (test/gen/space.ts, issue 3 item 4):
// deterministic, covering every row of spec §2 in every (device model × semantics) combination, both paging
// modes, aliasing device-private offsets in the offset model (D1), large enough and fast enough to build.
// The cases it proposes are checked against the tables: a row says what the folio's range in that VMA holds.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EFAULT, vmaAddress, vmaAddressEnd, type Engine, type Mm, type Translation,
} from '../src/index.js';
import { PVMW_DEVICE_PRIVATE, PVMW_INPUT_FLAGS, PVMW_MIGRATION, PVMW_SYNC } from '../src/walk/types.js';
import { buildSpace, folioKeysAllowed, requiredKinds, type Space, type SpaceOptions, type WalkCase } from './gen/space.js';

const P = 4096;
const MODELS = ['pfn', 'offset'] as const;
const SEMANTICS = ['newest', 'series', 'v6.14'] as const;
const COMBOS = MODELS.flatMap((deviceModel) => SEMANTICS.map((semantics) => ({ deviceModel, semantics })));
const LEVEL_PAGES: Record<string, number> = { pte: 1, pmd: 512, pud: 2 ** 18, p4d: 2 ** 27, pgd: 2 ** 27 };

/** The start address a case's walk begins at (vma_address of its key), or null for -EFAULT. */
function startOf(s: Space, c: WalkCase): number | null {
  if (c.address !== undefined) return c.address;
  const k = c.key;
  let a: number;
  if (k.kind === 'pfn') a = vmaAddress(c.vma, k.pgoff, k.nrPages);
  else {
    const f = s.engine.folio(k.folio);
    a = k.page === undefined ? vmaAddress(c.vma, f.index, f.nrPages) : vmaAddress(c.vma, f.index + k.page, 1);
  }
  return a === EFAULT ? null : a;
}

/** Everything observable about a space, for the determinism check. */
function fingerprint(s: Space, addrs: number[]): string {
  const e = s.engine;
  return JSON.stringify({
    usage: e.memoryUsage(),
    census: e.folioCensus(),
    stats: s.mms.map((mm) => [mm.id, mm.stats(), mm.vmas.all().map((v) => [v.id, v.start, v.end, v.pgoff, v.file, v.flags])]),
    folios: s.folios,
    counts: s.counts,
    aliases: s.aliases,
    cases: s.cases.map((c) => [c.mm.id, c.vma.id, c.key, c.row, c.address ?? null]),
    tr: s.mms.map((mm) => addrs.filter((a) => mm.vmas.find(a)).map((a) => mm.translate(a).steps.map((st) => [st.level, st.raw]))),
  });
}

/** Translations of [start, end) in mm, one per leaf (a huge leaf or an empty upper level counts once). */
function scan(mm: Mm, start: number, end: number): Translation[] {
  const out: Translation[] = [];
  for (let a = start; a < end;) {
    const t = mm.translate(a);
    out.push(t);
    const size = LEVEL_PAGES[t.leaf.level]! * P;
    a = Math.floor(a / size) * size + size;
  }
  return out;
}

/**
 * Check that a case's row says what its folio's range holds in that VMA (the generator's bookkeeping agrees
 * with the tables). `folio` is the folio the case is about. Returns a reason, or null when the row holds.
 */
function rowHolds(s: Space, c: WalkCase, folio: number): string | null {
  const e: Engine = s.engine;
  const f = e.folio(folio);
  const start = vmaAddress(c.vma, f.index, f.nrPages);
  if (start === EFAULT) return 'the folio lies outside the VMA';
  const end = vmaAddressEnd({ address: start, pgoff: f.index, nrPages: f.nrPages, vma: c.vma });
  const ts = scan(c.mm, start, end);
  const mine = ts.filter((t) => t.page?.folio === folio);
  const row = c.row.replace(/^(explicit-address|device-flag-missing|device-flag-wrong)\//, '');
  const [base, sub] = [row.split('/')[0]!, row.split('/').slice(1).join('/')];
  const has = (pred: (t: Translation) => boolean, what: string) => (ts.some(pred) ? null : `no ${what} in range`);
  const mineHas = (pred: (t: Translation) => boolean, what: string) => (mine.some(pred) ? null : `no ${what} naming the folio`);
  const kind = (t: Translation) => t.leaf.entry.kind;
  switch (base) {
    case 'none':
      return mine.length === 0 ? null : `row none, but ${mine.length} entries name the folio`;
    case 'mixed':
      return null; // random segments, possibly all empty
    case 'present-pte':
      return mineHas((t) => t.leaf.level === 'pte' && kind(t) === 'present' && (sub === 'protnone') === !!t.leaf.entry.present?.protnone, `present PTE (${sub})`);
    case 'present-pmd':
      return mineHas((t) => t.leaf.level === 'pmd' && kind(t) === 'present' && (sub === 'protnone') === !!t.leaf.entry.present?.protnone, 'present PMD');
    case 'migration-pte':
    case 'migration-pmd': {
      const lvl = base === 'migration-pte' ? 'pte' : 'pmd';
      return mineHas((t) => t.leaf.level === lvl && kind(t) === `migration-${sub.replace('device-folio-', '')}`, `${lvl} migration entry (${sub})`);
    }
    case 'migration-device-private-pte':
    case 'migration-device-private-pmd': {
      const lvl = base.endsWith('pte') ? 'pte' : 'pmd';
      return mineHas((t) => t.leaf.level === lvl && kind(t) === `migration-device-private-${sub}`, `${lvl} device-private migration entry`);
    }
    case 'device-private-pte':
    case 'device-private-pmd': {
      const lvl = base.endsWith('pte') ? 'pte' : 'pmd';
      return mineHas((t) => t.leaf.level === lvl && kind(t) === `device-private-${sub}`, `${lvl} device-private entry`);
    }
    case 'device-exclusive-pte':
      return mineHas((t) => kind(t) === 'device-exclusive', 'device-exclusive entry');
    case 'hwpoison':
      return mineHas((t) => kind(t) === 'hwpoison', 'hwpoison entry');
    case 'swap':
      return has((t) => kind(t) === 'swap', 'swap entry');
    case 'marker':
      return has((t) => kind(t) === 'marker' && t.leaf.entry.marker![sub === 'uffd-wp' ? 'uffdWp' : sub === 'guard' ? 'guard' : 'poisoned'], `${sub} marker`);
    case 'special':
      return has((t) => kind(t) === 'present' && !!t.leaf.entry.present?.special && t.leaf.entry.number === 0x10, 'zero page');
    case 'hugetlb-pmd':
    case 'hugetlb-pud': {
      const lvl = base === 'hugetlb-pmd' ? 'pmd' : 'pud';
      if (sub === 'marker') return has((t) => t.leaf.level === lvl && kind(t) === 'marker', `${lvl} marker`);
      return mineHas((t) => t.leaf.level === lvl && kind(t) === sub, `hugetlb ${lvl} ${sub}`);
    }
    case 'alias': {
      // The folio's twin (same anon_vma and index, the other namespace, equal number in the offset model).
      const twin = ts.find((t) => t.page && t.page.folio !== folio && e.folio(t.page.folio).index === f.index && e.folio(t.page.folio).devicePrivate !== f.devicePrivate);
      if (mine.length > 0) return 'alias row, but entries name the folio itself';
      return twin ? null : 'no entry of the twin folio in range';
    }
    default:
      return `unknown row ${c.row}`;
  }
}

/** The folio a folio-derived case is about, or null (raw ranges, PFNMAP, zero page, or an ambiguous number). */
function folioOf(s: Space, o: SpaceOptions, c: WalkCase): number | null {
  if (/^(raw-pfn-range|special\/pfnmap|special\/zero-page-raw)/.test(c.row)) return null;
  const k = c.key;
  if (k.kind === 'folio') return k.page === undefined ? k.folio : null;
  if (c.address !== undefined) return null;
  if (o.deviceModel === 'offset') return null; // offsets and pfns collide: the number alone does not say
  return s.engine.page('pfn', k.number)?.folio ?? null;
}

function checkCases(s: Space, o: SpaceOptions, sample = 1): { checked: number } {
  const folioOk = folioKeysAllowed(o);
  let checked = 0;
  s.cases.forEach((c, i) => {
    // Every case names a VMA of its mm, with input flags only, the device flag only under series.
    expect(c.mm.vmas.find(c.vma.start)?.id).toBe(c.vma.id);
    const k = c.key;
    expect(k.flags & ~PVMW_INPUT_FLAGS).toBe(0);
    if (o.semantics !== 'series') expect(k.flags & PVMW_DEVICE_PRIVATE).toBe(0);
    if (k.kind === 'folio') {
      expect(folioOk).toBe(true);
      expect(k.flags & PVMW_DEVICE_PRIVATE).toBe(0);
    } else {
      expect(k.nrPages).toBeGreaterThanOrEqual(1);
      if (c.row === 'raw-pfn-range') expect(k.nrPages).toBeLessThanOrEqual(600);
    }
    if (!c.row.startsWith('raw-pfn-range') && !c.row.startsWith('special/pfnmap')) expect(startOf(s, c), c.row).not.toBeNull();
    if (i % sample !== 0) return;
    const f = folioOf(s, o, c);
    if (f === null) return;
    const why = rowHolds(s, c, f);
    expect(why, `case ${i} (${c.row}, mm ${c.mm.id}, VMA ${c.vma.start.toString(16)}, folio ${f.toString(16)})`).toBeNull();
    checked++;
  });
  return { checked };
}

describe('address-space generator (test/gen/space.ts)', () => {
  it('is deterministic: the same options build the same tables, folios, memory, census and cases', () => {
    for (const o of [
      { seed: 7, paging: 4, deviceModel: 'offset', semantics: 'series', scale: 'large' },
      { seed: 8, paging: 5, deviceModel: 'pfn', semantics: 'newest', scale: 'small' },
      { seed: 9, paging: 4, deviceModel: 'offset', semantics: 'v6.14', scale: 'small' },
    ] as SpaceOptions[]) {
      const a = buildSpace(o);
      const b = buildSpace(o);
      // Sample addresses: where cases start, plus VMA edges.
      const addrs = new Set<number>();
      a.cases.forEach((c, i) => {
        if (i % 7 !== 0) return;
        const st = startOf(a, c);
        if (st !== null) addrs.add(st);
      });
      for (const mm of a.mms) for (const v of mm.vmas.all()) addrs.add(v.start).add(v.end - P);
      expect(addrs.size).toBeGreaterThan(100);
      expect(fingerprint(b, [...addrs])).toBe(fingerprint(a, [...addrs]));
      // A different seed builds a different space.
      const c = buildSpace({ ...o, seed: o.seed + 1000 });
      expect(fingerprint(c, [...addrs])).not.toBe(fingerprint(a, [...addrs]));
    }
  });

  it.each(COMBOS)('every kind of spec §2 is installed ($deviceModel model, $semantics), series-only kinds only under series', ({ deviceModel, semantics }) => {
    for (const scale of ['small', 'large'] as const) {
      const s = buildSpace({ seed: 1, paging: 4, deviceModel, semantics, scale });
      const missing = requiredKinds({ deviceModel, semantics }).filter((k) => !(s.counts[k]! > 0));
      expect(missing, `${scale}`).toEqual([]);
      const seriesKinds = Object.keys(s.counts).filter((k) => k.includes('migration-device-private'));
      if (semantics === 'series') expect(seriesKinds.length).toBe(6);
      else expect(seriesKinds).toEqual([]);
      // Every order 0 … 9, hugetlb 2M and 1G, device-private folios.
      const census = s.engine.folioCensus();
      for (let order = 0; order <= 9; order++) expect(census.byOrder[order], `${scale} order ${order}`).toBeGreaterThan(0);
      expect(census.byOrder[18]).toBeGreaterThan(0);
      expect(census.hugetlb).toBeGreaterThan(census.byOrder[18]!);
      expect(census.devicePrivate).toBeGreaterThan(0);
      const devOrders = new Set(s.folios.map((id) => s.engine.folio(id)).filter((f) => f.devicePrivate).map((f) => f.order));
      expect([...devOrders].sort()).toEqual([0, 9]);
      // Folio keys exist exactly where the folio-keyed walk works (D2).
      const folioKeys = s.cases.filter((c) => c.key.kind === 'folio');
      if (folioKeysAllowed({ deviceModel, semantics })) {
        expect(new Set(folioKeys.map((c) => (c.key.kind === 'folio' ? c.key.strategy : '')))).toEqual(new Set(['range', 'identity']));
        expect(folioKeys.some((c) => c.key.kind === 'folio' && c.key.page !== undefined)).toBe(true);
      } else {
        expect(folioKeys).toEqual([]);
      }
      // All four flag combinations; the device flag on device folios under series.
      const flags = new Set(s.cases.map((c) => c.key.flags & (PVMW_SYNC | PVMW_MIGRATION)));
      expect(flags.size).toBe(4);
      const dp = s.cases.filter((c) => c.key.flags & PVMW_DEVICE_PRIVATE).length;
      if (semantics === 'series') expect(dp).toBeGreaterThan(0);
      else expect(dp).toBe(0);
      // Cases for every kind of row, raw ranges and explicit addresses included.
      const bases = new Set(s.cases.map((c) => c.row.split('/')[0]));
      for (const b of ['none', 'present-pte', 'present-pmd', 'device-private-pte', 'device-private-pmd', 'device-exclusive-pte',
        'swap', 'hwpoison', 'marker', 'special', 'mixed', 'hugetlb-pmd', 'hugetlb-pud', 'alias', 'raw-pfn-range', 'explicit-address',
        semantics === 'series' ? 'migration-device-private-pte' : 'migration-pte', 'migration-pmd']) {
        expect(bases.has(b), `${scale}: no case for row ${b}`).toBe(true);
      }
      for (const r of ['present-pte/order0', 'present-pte/mthp', 'present-pte/pte-mapped-thp', 'present-pte/partial', 'present-pte/cross-pmd',
        'present-pte/protnone', 'present-pmd/protnone', 'migration-pte/read', 'migration-pte/read-exclusive', 'migration-pte/write',
        'special/zero-page', 'special/pfnmap', 'alias/ram-key-over-device-entry', 'alias/device-key-over-ram-entry']) {
        expect(s.cases.some((c) => c.row === r), `${scale}: no case for row ${r}`).toBe(true);
      }
    }
  });

  it.each(COMBOS)('rows agree with the tables: the folio range of each case holds what its row says ($deviceModel, $semantics)', ({ deviceModel, semantics }) => {
    const o: SpaceOptions = { seed: 3, paging: 4, deviceModel, semantics, scale: 'small' };
    const { checked } = checkCases(buildSpace(o), o);
    const folioKeyed = folioKeysAllowed(o) || deviceModel === 'pfn';
    if (folioKeyed) expect(checked).toBeGreaterThan(200);
  });

  it('rows agree with the tables in a large space (a sample of cases)', () => {
    const o: SpaceOptions = { seed: 11, paging: 5, deviceModel: 'pfn', semantics: 'series', scale: 'large' };
    const { checked } = checkCases(buildSpace(o), o, 5);
    expect(checked).toBeGreaterThan(500);
  });

  it.each(MODELS)('kernel-operations §0.3: every mapping is where rmap looks — leaves naming a folio in its rmap VMAs add up to its mapcount (%s model)', (deviceModel) => {
    const s = buildSpace({ seed: 6, paging: 4, deviceModel, semantics: 'series', scale: 'small' });
    const e = s.engine;
    let mappedFolios = 0;
    for (const id of s.folios) {
      const f = e.folio(id);
      let maps = 0;
      for (const { mm, vma } of s.rmap(id)) {
        const start = vmaAddress(vma, f.index, f.nrPages);
        const end = vmaAddressEnd({ address: start, pgoff: f.index, nrPages: f.nrPages, vma });
        maps += scan(mm, start, end).filter((t) => t.maps && t.page?.folio === id).length;
      }
      expect(maps, `folio ${id.toString(16)} (order ${f.order}${f.devicePrivate ? ', device' : ''}${f.hugetlb ? ', hugetlb' : ''})`).toBe(f.mapcount);
      if (maps > 0) mappedFolios++;
    }
    expect(mappedFolios).toBeGreaterThan(s.folios.length / 3); // page-cache folios outside every VMA stay unmapped
    // Cases come in whole rmap walks: a folio with cases has one for each VMA rmap visits.
    const pairs = new Map<number, Set<string>>();
    for (const c of s.cases) {
      const id = c.key.kind === 'folio' ? c.key.folio : null;
      if (id === null) continue;
      if (!pairs.has(id)) pairs.set(id, new Set());
      pairs.get(id)!.add(`${c.mm.id}:${c.vma.id}`);
    }
    expect(pairs.size).toBeGreaterThan(50);
    for (const [id, got] of pairs) expect(got.size).toBe(s.rmap(id).length);
  });

  it('both paging modes build; 5-level spaces use addresses above the 4-level limit', () => {
    for (const paging of [4, 5] as const) {
      const s = buildSpace({ seed: 2, paging, deviceModel: 'offset', semantics: 'series', scale: 'small' });
      const starts = s.mms.flatMap((mm) => mm.vmas.all().map((v) => v.start));
      const high = starts.filter((a) => a >= 2 ** 47).length;
      if (paging === 4) expect(high).toBe(0);
      else expect(high).toBeGreaterThan(0);
      expect(s.mms.every((mm) => mm.stats().leaves.pte > 0)).toBe(true);
    }
  });

  it('D1 offset model: device-private folios sit at offsets equal to the pfns of mapped RAM folios (aliasing)', () => {
    for (const semantics of SEMANTICS) {
      const s = buildSpace({ seed: 4, paging: 4, deviceModel: 'offset', semantics, scale: 'small' });
      const e = s.engine;
      expect(s.aliases.length).toBeGreaterThan(0);
      for (const { ram, device } of s.aliases) {
        const [r, d] = [e.folio(ram), e.folio(device)];
        expect(r).toMatchObject({ namespace: 'pfn', devicePrivate: false, anon: true });
        expect(d).toMatchObject({ namespace: 'device-private', devicePrivate: true, anon: true, number: r.number, order: r.order, index: r.index, anonVma: r.anonVma });
        expect(r.mapcount).toBeGreaterThan(0);
        expect(d.mapcount).toBeGreaterThan(0);
      }
      // Independently of the bookkeeping: scan all device-private folios for a mapped RAM folio at the same number.
      const aliased = s.folios.map((id) => e.folio(id)).filter((f) => {
        if (!f.devicePrivate) return false;
        const p = e.page('pfn', f.number);
        return p !== undefined && p.page === 0 && e.folio(p.folio).mapcount > 0;
      });
      expect(aliased.length).toBeGreaterThanOrEqual(s.aliases.length);
    }
    // In the pfn model device pages have their own pfns: the same structure, no collision.
    const s = buildSpace({ seed: 4, paging: 4, deviceModel: 'pfn', semantics: 'newest', scale: 'small' });
    for (const { ram, device } of s.aliases) expect(s.engine.folio(device).number).not.toBe(s.engine.folio(ram).number);
  });

  it('large scale: hundreds of VMAs, thousands of folios and cases, built in well under the budget', () => {
    const o: SpaceOptions = { seed: 5, paging: 4, deviceModel: 'offset', semantics: 'newest' };
    buildSpace({ ...o, seed: 99 }); // warm up the JIT
    const t0 = performance.now();
    const s = buildSpace(o);
    const ms = performance.now() - t0;
    const usage = s.engine.memoryUsage();
    console.log(`large space built in ${ms.toFixed(0)} ms: ${JSON.stringify(s.summary)}, wasm ${(usage.wasmBytes / 2 ** 20).toFixed(1)} MiB`);
    expect(ms).toBeLessThan(5000);
    expect(s.mms.length).toBeGreaterThanOrEqual(4);
    expect(s.summary.vmas).toBeGreaterThanOrEqual(200);
    expect(s.folios.length).toBeGreaterThanOrEqual(2000);
    expect(s.cases.length).toBeGreaterThanOrEqual(1000);
    expect(usage.wasmBytes).toBeLessThan(256 * 2 ** 20);
    // Forked mms share anon folios: some folio is mapped in more than one mm at the same address.
    expect(s.counts['shape:shared-anon']).toBeGreaterThan(0);
    // The series' space has folio keys and thousands of cases too.
    const t1 = performance.now();
    const t = buildSpace({ ...o, semantics: 'series', deviceModel: 'pfn' });
    console.log(`large series/pfn space built in ${(performance.now() - t1).toFixed(0)} ms: ${t.cases.length} cases`);
    expect(t.cases.length).toBeGreaterThanOrEqual(1000);
  });

  it('property: any seed builds a small space with every kind (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer(), fc.constantFrom<4 | 5>(4, 5), fc.constantFrom(...COMBOS), (seed, paging, { deviceModel, semantics }) => {
        const s = buildSpace({ seed, paging, deviceModel, semantics, scale: 'small' });
        expect(requiredKinds({ deviceModel, semantics }).filter((k) => !(s.counts[k]! > 0))).toEqual([]);
        expect(s.cases.length).toBeGreaterThan(100);
      }),
      { numRuns: 40 },
    );
  });
});
