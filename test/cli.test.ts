// The `pvmw` command line (src/cli): run() with fake writers, checked against engines built the same way.
import { describe, expect, it } from 'vitest';
import { run, type Io } from '../src/cli/main.js';
import { buildDemoSpace, DEMO_LAYOUT, NOT_YET, type DemoReport } from '../src/cli/demo.js';
import { isDeepStrictEqual } from 'node:util';
import {
  Engine, PVMW_DEVICE_PRIVATE, PVMW_MIGRATION, decodeEntry, pageVmaMappedWalk, rawHex, referenceWalk,
  type EngineOptions, type PvmwError, type WalkKey, type WalkMatch, type WalkResult,
} from '../src/index.js';
import type { FolioWalksReport, WalkTarget } from '../src/cli/demo-walks.js';

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

    // Every probe address is translated; the output says plainly what exists and what does not yet.
    for (const p of space.probes) expect(r.out).toContain(`0x${p.address.toString(16)}  ${p.label}`);
    expect(r.out).toContain(NOT_YET);
    expect(r.out).toMatch(/Not yet: full migration and device memory operations, scenario files, and the pfn-vs-folio comparison report/);
    expect(r.out).not.toMatch(/does not exist yet|arrive with the walk issue/);
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

    // Translations: the same levels and raw entries as Mm.translate; u64 values as "0x…" strings.
    expect(j.translations).toHaveLength(space.probes.length);
    j.translations.forEach((w, i) => {
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
    const kinds = j.translations.map((w) => w.steps[w.steps.length - 1].kind);
    expect(kinds).toEqual(['present', 'present', 'present', 'present', 'device-private-write', 'migration-write', 'swap', 'marker', 'none']);
    // The migration entry names its folio without mapping it.
    const mig = j.translations[5];
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
    expect(j.translations[0].steps.map((s) => s.level)).toEqual(['pgd', 'p4d', 'pud', 'pmd', 'pte']);
    const dev = j.translations[4];
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
    const dev = j.translations[4];
    expect(dev.maps?.namespace).toBe('pfn');
    expect(Number(dev.maps?.number)).toBeGreaterThanOrEqual(j.settings.ramPages);
    expect(dev.samePfn).toBeNull();
  });
});

// --- the Walks section, checked against walks run here on an engine built the same way -----------------------

const IFACES = ['pfn-keyed', 'folio range', 'folio identity'] as const;

/** The keys of a target, built here from the spec (§1.3 DEFINE_FOLIO_VMA_WALK; series adds PVMW_DEVICE_PRIVATE). */
function keysOf(e: Engine, t: WalkTarget): WalkKey[] {
  const f = e.folio(t.folio);
  const dp = e.settings.semantics === 'series' && f.devicePrivate ? PVMW_DEVICE_PRIVATE : 0;
  return [
    { kind: 'pfn', number: f.number, nrPages: f.nrPages, pgoff: f.index, flags: t.flags | dp },
    { kind: 'folio', folio: t.folio, strategy: 'range', flags: t.flags },
    { kind: 'folio', folio: t.folio, strategy: 'identity', flags: t.flags },
  ];
}

type Own = { key: WalkKey; walk: WalkResult | null; refused: PvmwError | null };

/** Each interface's walk, run here; a refusal is kept, not thrown. */
function ownWalks(e: Engine, t: WalkTarget): Own[] {
  return keysOf(e, t).map((key) => {
    try {
      return { key, walk: pageVmaMappedWalk(e, { mm: t.mm, vma: t.vma, key }), refused: null };
    } catch (err) {
      return { key, walk: null, refused: err as PvmwError };
    }
  });
}

const strip = (m: WalkMatch) => ({ ...m, flags: m.flags & ~PVMW_DEVICE_PRIVATE });

/** The report of one folio's walks equals walks run here: counts, matches, counters, refusals and both verdicts. */
function expectFolioReport(e: Engine, t: WalkTarget, f: FolioWalksReport): void {
  expect(f.folio).toBe(t.folio);
  expect(f.runs.map((r) => r.interface)).toEqual([...IFACES]);
  const own = ownWalks(e, t);
  own.forEach((o, i) => {
    const r = f.runs[i];
    expect(r.refused?.code ?? null).toBe(o.refused?.code ?? null);
    expect(r.refused?.message ?? null).toBe(o.refused?.message ?? null);
    if (!o.walk) return;
    expect(r.matchCount).toBe(o.walk.matches.length);
    expect(r.counters).toEqual(o.walk.counters);
    expect(r.matches.map((m) => [m.address, m.level, m.entry, m.lock.kind, m.lock.table, m.flags])).toEqual(
      o.walk.matches.map((m) => [`0x${m.address.toString(16)}`, m.level, rawHex(m.raw), m.lock.kind, `0x${m.lock.table.toString(16)}`, `0x${m.flags.toString(16)}`]),
    );
    // The reference verdict is a real comparison: the reference walk run here gives the same matches and counters.
    const ref = referenceWalk(e, t.mm, t.vma, o.key);
    expect(r.reference.agrees).toBe(isDeepStrictEqual(ref.matches, o.walk.matches) && isDeepStrictEqual(ref.counters, o.walk.counters));
    // False matches: entries naming a page of another folio, decoded here.
    const foreign = o.walk.matches.filter((m) => {
      const d = decodeEntry(m.raw, m.level, e.decodeContext);
      return d.namespace === null || d.number === null || e.page(d.namespace, d.number)?.folio !== t.folio;
    });
    expect(r.falseMatches).toBe(foreign.length);
  });
  const ran = own.filter((o) => o.walk).map((o) => o.walk!.matches.map(strip));
  expect(f.interfacesAgree).toBe(ran.length < 2 ? null : ran.every((m) => isDeepStrictEqual(m, ran[0])));
}

/** The text block of one folio (from its label line to the next blank line). */
function block(out: string, label: string): string {
  const start = out.indexOf(`\n  ${label}\n`);
  expect(start, label).toBeGreaterThanOrEqual(0);
  const end = out.indexOf('\n\n', start + 1);
  return out.slice(start + 1, end < 0 ? undefined : end);
}

describe('pvmw demo: the Walks section', () => {
  it('walks the folios it names, in every interface, with the numbers walks run here give (text)', async () => {
    const r = await cli('demo');
    expect(r.code).toBe(0);
    const { e, space } = built();
    // The targets are the folios the brief names: order 0 and 4 PTE-mapped, a PMD THP, hugetlb 2M, the
    // device-private folio, the folio under migration (PVMW_MIGRATION), a file folio in the shared file VMA.
    const info = space.targets.map((t) => e.folio(t.folio));
    expect(info.map((f) => f.order)).toEqual([0, DEMO_LAYOUT.mthpOrder, 9, 9, 0, 0, 0]);
    expect([info[3].hugetlb, info[4].devicePrivate, info[6].file, space.targets[6].vma]).toEqual(['2M', true, 1, space.vmas.file]);
    expect(space.targets[5].flags).toBe(PVMW_MIGRATION);

    expect(r.out).toMatch(/^Walks: page_vma_mapped_walk/m);
    for (const t of space.targets) {
      const text = block(r.out, t.label);
      const own = ownWalks(e, t);
      expect(own.every((o) => o.walk)).toBe(true); // newest × pfn: every interface runs
      own.forEach((o, i) => {
        const n = o.walk!.matches.length;
        const head = i === 0 ? 'pfn-keyed (' : `folio-keyed, ${i === 1 ? 'range' : 'identity'} (`;
        expect(text).toMatch(new RegExp(`^    ${head.replace('(', '\\(')}.*\\): ${n} match${n === 1 ? '' : 'es'}$`, 'm'));
        // The first match is listed with its address, level and lock; at most 4 are, the rest counted.
        const m = o.walk!.matches[0];
        expect(text).toContain(`0x${m.address.toString(16)}  ${m.level}`);
        expect(text).toContain(`${m.lock.kind} lock, table 0x${m.lock.table.toString(16)}`);
        if (n > 4) expect(text).toContain(`… and ${n - 4} more`);
        const c = o.walk!.counters;
        const cells = [IFACES[i], ...Object.values(c.entriesRead), c.memmapLookups, c.restarts, c.tablesCrossed, 'agrees'];
        expect(text).toMatch(new RegExp(`^    ${cells.join(' +')}$`, 'm'));
      });
      expect(text).toMatch(/interfaces agree: yes/);
      expect(text).not.toMatch(/FALSE MATCH|DIFFERS|NO:/);
    }
    // The mTHP: 16 PTE matches, 4 listed per interface; identity pays one memmap lookup per match.
    const mthp = ownWalks(e, space.targets[1]);
    expect(mthp.map((o) => o.walk!.matches.length)).toEqual([16, 16, 16]);
    expect(mthp.map((o) => o.walk!.counters.memmapLookups)).toEqual([0, 0, 16]);
    expect(r.out).toMatch(/D1 aliasing: none in this space/);
  });

  it('--json holds the walks, equal to walks run here, with computed verdicts', async () => {
    for (const opts of [{}, { semantics: 'series' as const }, { deviceModel: 'offset' as const, semantics: 'series' as const, paging: 5 as const }]) {
      const argv = ['demo', '--json', ...Object.entries(opts).flatMap(([k, v]) => [`--${k === 'deviceModel' ? 'device-model' : k}`, String(v)])];
      const j = JSON.parse((await cli(...argv)).out) as DemoReport;
      const { e, space } = built(opts);
      expect(j.walks.folios).toHaveLength(space.targets.length);
      space.targets.forEach((t, i) => expectFolioReport(e, t, j.walks.folios[i]));
      expect(j.walks.folios.every((f) => f.interfacesAgree === true && f.falseMatches === 0)).toBe(true);
      expect(j.walks.walks).toBe(3 * (space.targets.length + (space.alias?.targets.length ?? 0)));
      expect(j.walks.ms).toBeLessThan(2000);
      if (space.alias) {
        space.alias.targets.forEach((t, i) => expectFolioReport(e, t, j.walks.alias!.folios[i]));
        expect(j.walks.alias!.falseMatches).toBe(0); // series tells offset from pfn
      } else expect(j.walks.alias).toBeNull();
    }
    // series: the device folio's pfn key carries PVMW_DEVICE_PRIVATE, the folio keys do not; they still agree.
    const j = JSON.parse((await cli('demo', '--json', '--semantics', 'series')).out) as DemoReport;
    const dev = j.walks.folios[4];
    expect(dev.runs.map((r) => r.key.flags)).toEqual([PVMW_DEVICE_PRIVATE, 0, 0]);
    expect(dev.agreement).toMatch(/flags differ only by PVMW_DEVICE_PRIVATE/);
  });

  it('newest × offset: folio-keyed walks are refused, and the D1 alias shows false matches', async () => {
    const r = await cli('demo', '--device-model', 'offset', '--semantics', 'newest');
    expect(r.code).toBe(0);
    const j = JSON.parse((await cli('demo', '--json', '--device-model', 'offset', '--semantics', 'newest')).out) as DemoReport;
    const { e, space } = built({ deviceModel: 'offset', semantics: 'newest' });
    space.targets.forEach((t, i) => expectFolioReport(e, t, j.walks.folios[i]));
    // Refusals come from the engine (D2), and the reference walk refuses too.
    for (const f of j.walks.folios) {
      expect(f.runs.map((x) => x.refused?.code ?? null)).toEqual([null, 'BAD_SETTING', 'BAD_SETTING']);
      expect(f.runs[1].refused!.message).toMatch(/D2/);
      expect(f.runs.map((x) => x.reference.agrees)).toEqual([true, true, true]);
      expect(f.interfacesAgree).toBeNull();
    }
    expect(r.out).toContain(`folio-keyed walks are refused on this engine: ${j.walks.folios[0].runs[1].refused!.message}`);
    expect(r.out).toMatch(/^    folio range, folio identity: refused by the engine \(BAD_SETTING, see above\); the reference walk refuses too$/m);

    // The alias: a fork child maps device-private offset N where mm 1 maps RAM pfn N.
    const a = space.alias!;
    const ram = e.folio(a.ram);
    const dev = e.folio(a.device);
    expect([dev.namespace, dev.number, ram.namespace]).toEqual(['device-private', ram.number, 'pfn']);
    expect(a.child.translate(a.address).leaf.entry).toMatchObject({ kind: 'device-private-write', namespace: 'device-private', number: ram.number });
    expect(space.mm.translate(a.address).leaf.entry).toMatchObject({ kind: 'present', namespace: 'pfn', number: ram.number });
    a.targets.forEach((t, i) => expectFolioReport(e, t, j.walks.alias!.folios[i]));
    // Walked here: the newest pfn-keyed walk for RAM pfn N finds the child's device-private entry, and the
    // device folio's walk finds the parent's present PTE: one false match each.
    const [ramInChild, devInParent] = a.targets.map((t) => ownWalks(e, t)[0].walk!.matches);
    expect(ramInChild.map((m) => decodeEntry(m.raw, m.level, e.decodeContext).kind)).toEqual(['device-private-write']);
    expect(devInParent.map((m) => decodeEntry(m.raw, m.level, e.decodeContext).kind)).toEqual(['present']);
    expect(j.walks.alias!.folios.map((f) => f.falseMatches)).toEqual([1, 1]);
    expect(j.walks.alias!.falseMatches).toBe(2);
    expect(j.walks.alias!.verdict).toMatch(/^D1 hazard \(newest × offset\): 2 false matches by the pfn-keyed walk/);
    expect(r.out).toContain(j.walks.alias!.verdict);
    expect(r.out.match(/FALSE MATCH: the entry names folio 0x[0-9a-f]+/g)).toHaveLength(2);
    expect(r.out).toContain(`FALSE MATCH: the entry names folio 0x${a.device.toString(16)}`);
    // The same build in the pfn model has no alias; the census counts the extra device folio.
    expect(j.built.devicePrivate).toBe(2);
    expect(e.folioCensus().devicePrivate).toBe(2);
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

// --- the Operations section: the rmap selftest run by operations, checked against a run here ---------------
describe('pvmw demo: Operations (spec §7.3 rmap selftest)', () => {
  it('runs every variant with the demo settings and reports what a run here gives (text and JSON)', async () => {
    const { runRmapSelftest, RMAP_SELFTEST_VARIANTS } = await import('../src/index.js');
    const { DEMO_SELFTEST_SEED } = await import('../src/cli/demo-ops.js');
    for (const argv of [[], ['--paging', '5', '--device-model', 'offset', '--semantics', 'series']]) {
      const opts: EngineOptions = argv.length ? { paging: 5, deviceModel: 'offset', semantics: 'series' } : {};
      const j = JSON.parse((await cli('demo', '--json', ...argv)).out) as DemoReport;
      const text = (await cli('demo', ...argv)).out;
      expect(j.operations.map((o) => o.variant)).toEqual([...RMAP_SELFTEST_VARIANTS]);
      for (const o of j.operations) {
        const here = runRmapSelftest(new Engine(opts), o.variant, DEMO_SELFTEST_SEED);
        expect(o).toMatchObject({ processes: here.processes, atNewPfn: here.processes, oldPfn: rawHexOf(here.oldPfn), newPfn: rawHexOf(here.newPfn), invariantsOk: true });
        expect(text).toMatch(new RegExp(`^  ${o.variant} +${o.processes} +${o.worker} +${o.oldPfn} +${o.newPfn} +${o.processes}/${o.processes} +ok `, 'm'));
      }
    }
  });
});

function rawHexOf(n: number): string {
  return '0x' + n.toString(16);
}
