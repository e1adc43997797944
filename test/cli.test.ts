// The `pvmw` command line (src/cli): run() with fake writers, checked against engines built the same way.
import { describe, expect, it } from 'vitest';
import { run, type Io } from '../src/cli/main.js';
import { buildDemoSpace, DEMO_LAYOUT, type DemoReport } from '../src/cli/demo.js';
import { Engine, rawHex, type EngineOptions } from '../src/index.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } };
  const code = await run(argv, io);
  return { code, out, err };
}

function built(opts: EngineOptions = {}) {
  const e = new Engine(opts);
  return { e, space: buildDemoSpace(e) };
}

const HEX = /^0x[0-9a-f]+$/;

describe('pvmw demo (text)', () => {
  it('exits 0 and prints the folio counts the engine really holds', async () => {
    const r = await cli('demo');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const { e, space } = built();
    const census = e.folioCensus();
    const total = census.byOrder.reduce((a, b) => a + b, 0);

    // The census (a memmap scan in WASM) agrees with what buildDemoSpace says it created.
    const f = space.folios;
    expect(census.byOrder[0]).toBe(f.anonSmall + f.migrating + f.devicePrivate + f.fileSmall);
    expect(census.byOrder[DEMO_LAYOUT.mthpOrder]).toBe(f.anonMthp);
    expect(census.byOrder[9]).toBe(f.anonThp + f.fileThp + f.hugetlb);
    expect(census.hugetlb).toBe(f.hugetlb);
    expect(census.devicePrivate).toBe(f.devicePrivate);

    // …and the text shows those numbers.
    expect(r.out).toContain(`Folios: ${total}\n`);
    expect(r.out).toContain(`${f.anonSmall} anon order-0, ${f.anonThp} anon THP`);
    census.byOrder.forEach((n, order) => {
      if (n) expect(r.out).toMatch(new RegExp(`^ +${order} +\\S+ \\S+ +${n}$`, 'm'));
    });
    for (const [label, n] of [['anon', census.anon], ['file', census.file], ['hugetlb', census.hugetlb], ['device-private', census.devicePrivate]] as const) {
      expect(r.out).toMatch(new RegExp(`^  ${label} +${n}$`, 'm'));
    }
    const stats = space.mm.stats();
    expect(r.out).toMatch(new RegExp(`^  pte +${stats.tables.pte} +${stats.leaves.pte}$`, 'm'));
    expect(r.out).toMatch(new RegExp(`^  pmd +${stats.tables.pmd} +${stats.leaves.pmd}$`, 'm'));

    // Every probe address is translated, and the output says plainly that page_vma_mapped_walk is not here yet.
    for (const p of space.probes) expect(r.out).toContain(`0x${p.address.toString(16)}  ${p.label}`);
    expect(r.out).toMatch(/not page_vma_mapped_walk/);
  });
});

describe('pvmw demo --json', () => {
  it('prints one JSON object whose figures match an engine built the same way', async () => {
    const r = await cli('demo', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as DemoReport;
    const { e, space } = built();
    const census = e.folioCensus();

    expect(j.built).toEqual(space.folios);
    expect(j.folios.total).toBe(census.byOrder.reduce((a, b) => a + b, 0));
    expect(j.folios.anon).toBe(census.anon);
    expect(j.folios.file).toBe(census.file);
    census.byOrder.forEach((n, order) => expect(j.folios.byOrder[order] ?? 0).toBe(n));
    expect(j.pageTables).toEqual(space.mm.stats());
    const usage = e.memoryUsage();
    for (const k of Object.keys(usage) as (keyof typeof usage)[]) expect(j.memory[k]).toBe(usage[k]);
    expect(j.buildMs).toBeLessThan(2000);

    expect(j.settings).toMatchObject({ paging: 4, semantics: 'newest', deviceModel: 'pfn', ramPages: 2 ** 22 });
    expect(j.memoryRanges.map((m) => m.kind)).toEqual(['ram', 'device-private']);
    expect(j.vmas.map((v) => v.start)).toEqual(space.mm.vmas.all().map((v) => '0x' + v.start.toString(16)));

    // Walks: the same levels and raw entries as Mm.translate; u64 values as "0x…" strings.
    expect(j.walks).toHaveLength(space.probes.length);
    j.walks.forEach((w, i) => {
      const t = space.mm.translate(space.probes[i].address);
      expect(w.address).toMatch(HEX);
      expect(w.steps.map((s) => [s.level, s.raw, s.kind])).toEqual(t.steps.map((s) => [s.level, rawHex(s.raw), s.entry.kind]));
      for (const s of w.steps) if (s.number !== null) expect(s.number).toMatch(HEX);
      const mapped = t.maps ? t.page : undefined;
      const named = t.maps ? undefined : t.page;
      expect(w.maps?.folio ?? null).toBe(mapped?.folio ?? null);
      expect(w.maps?.pageMapcount ?? null).toBe(mapped?.mapcount ?? null);
      expect(w.names?.folio ?? null).toBe(named?.folio ?? null);
    });
    const kinds = j.walks.map((w) => w.steps[w.steps.length - 1].kind);
    expect(kinds).toEqual(['present', 'present', 'present', 'present', 'device-private-write', 'migration-write', 'swap', 'marker', 'none']);
    // The migration entry names its folio without mapping it.
    const mig = j.walks[5];
    expect(mig.maps).toBeNull();
    expect(mig.names?.number).toBe('0x' + DEMO_LAYOUT.migratingPfn.toString(16));
    expect(mig.names?.folioMapcount).toBe(0);
  });

  it('works with 5-level paging and the offset device model', async () => {
    const r = await cli('demo', '--json', '--paging', '5', '--device-model', 'offset', '--semantics', 'series');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as DemoReport;
    expect(j.settings).toMatchObject({ paging: 5, userAddressBits: 56, deviceModel: 'offset', semantics: 'series' });
    expect(j.memoryRanges[1]).toMatchObject({ kind: 'device-private', namespace: 'device-private', base: '0x0' });
    expect(j.walks[0].steps.map((s) => s.level)).toEqual(['pgd', 'p4d', 'pud', 'pmd', 'pte']);
    const dev = j.walks[4];
    const offset = '0x' + DEMO_LAYOUT.deviceIndex.toString(16);
    expect(dev.steps[4]).toMatchObject({ kind: 'device-private-write', namespace: 'device-private', number: offset });
    expect(dev.maps).toMatchObject({ namespace: 'device-private', number: offset, folioKind: 'device-private, anon', pageMapcount: 1 });
    // The same number is also a real pfn (D1): the report shows that RAM page too.
    expect(dev.samePfn).toMatchObject({ namespace: 'pfn', number: offset });

    const { e, space } = built({ paging: 5, deviceModel: 'offset', semantics: 'series' });
    expect(j.pageTables).toEqual(space.mm.stats());
    expect(j.folios.devicePrivate).toBe(e.folioCensus().devicePrivate);
  });

  it('pfn model: the device page has a pfn above RAM and no RAM twin', async () => {
    const j = JSON.parse((await cli('demo', '--json', '--semantics', 'v6.14')).out) as DemoReport;
    const dev = j.walks[4];
    expect(dev.maps?.namespace).toBe('pfn');
    expect(Number(dev.maps?.number)).toBeGreaterThanOrEqual(j.settings.ramPages);
    expect(dev.samePfn).toBeNull();
  });
});

describe('pvmw usage errors', () => {
  it('a bad option value exits 2 and names the value on stderr, without a stack trace', async () => {
    const r = await cli('demo', '--paging', '7');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/\b7\b/);
    expect(r.err).toContain('BAD_SETTING');
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it.each([
    [['demo', '--semantics', 'v9'], 'v9'],
    [['demo', '--device-model', 'bogus'], 'bogus'],
    [['demo', '--unknown'], '--unknown'],
    [['frobnicate'], 'frobnicate'],
    [['demo', '--paging'], '--paging'],
  ])('%j exits 2 naming %s', async (argv, named) => {
    const r = await cli(...argv);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toContain(named);
  });

  it('no command shows usage and exits 2; --help exits 0', async () => {
    const none = await cli();
    expect(none.code).toBe(2);
    expect(none.err).toContain('Usage: pvmw');
    const help = await cli('demo', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('--device-model');
  });
});
