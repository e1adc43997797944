// Scenario files (issue 5 item 1, explicit content): a valid scenario with a fork loads as placed; every
// malformed fixture under test/fixtures/scenarios/bad/ fails with its code, JSON path and message.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadScenario, loadScenarioFile, scenarioJsonSchema, PvmwError, type PvmwErrorCode } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = `${root}/test/fixtures/scenarios`;

describe('scenario JSON Schema', () => {
  it('schema/scenario.schema.json equals the exported scenarioJsonSchema', () => {
    const file = `${root}/schema/scenario.schema.json`;
    // UPDATE_SCHEMA=1 npx vitest run test/scenario-load.test.ts rewrites the file from the exported object.
    if (process.env.UPDATE_SCHEMA === '1') writeFileSync(file, JSON.stringify(scenarioJsonSchema, null, 2) + '\n');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(JSON.parse(JSON.stringify(scenarioJsonSchema)));
    expect(scenarioJsonSchema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });
});

describe('loadScenario: a valid scenario with a fork', () => {
  const { engine, mms } = loadScenarioFile(`${fixtures}/fork.json`);
  const parent = mms.get('parent')!;
  const child = mms.get('child')!;

  it('loads with the invariants holding', () => {
    expect([...mms.keys()]).toEqual(['parent', 'child']);
    const r = engine.checkInvariants();
    expect(r.problems ?? []).toEqual([]);
    expect(r.ok).toBe(true);
    expect(engine.settings).toMatchObject({ paging: 4, semantics: 'series', deviceModel: 'offset', ramPages: 0x10000 });
    expect(engine.memory.devices()).toHaveLength(1);
  });

  it('entries are as placed', () => {
    const t = parent.translate(0x7f0000000000 + 0x3000);
    expect(t.leaf.level).toBe('pte');
    expect(t.leaf.entry.kind).toBe('present');
    expect(t.leaf.entry.number).toBe(0x103);
    expect(parent.entryAt(0x7f0000200000 + 0x5000).level).toBe('pmd');
    // Placed as device-private-write; fork of a COW mapping made the parent's entry read-only (copy_nonpresent_pte).
    expect(parent.entryAt(0x7f0000010000).entry).toMatchObject({ kind: 'device-private-read', namespace: 'device-private', number: 0 });
    expect(parent.entryAt(0x7f0000020000).entry.kind).toBe('swap');
    expect(parent.entryAt(0x7f1000002000).entry.number).toBe(0x1002);
    expect(parent.stats().leaves).toEqual({ pte: 4 + 1 + 1 + 4, pmd: 1, pud: 0 });
    expect(engine.page('pfn', 0x100)?.tag).toBe(161);
    expect(engine.page('pfn', 0x103)?.tag).toBe(161); // tags apply to every folio of a run (page 0 of each)
    expect(engine.page('pfn', 0x200)?.tag).toBe(0);
  });

  it('the child shares the parent’s pages after fork, and has its own VMA', () => {
    for (const a of [0x7f0000000000, 0x7f0000003000, 0x7f0000200000, 0x7f0000010000, 0x7f0000020000]) {
      expect(child.entryAt(a).entry.number).toBe(parent.entryAt(a).entry.number);
    }
    expect(child.vmas.all().map((v) => v.start)).toEqual([0x7f0000000000, 0x7f1000000000, 0x7f2000000000]);
    // Anon pages mapped by both (COW: write-protected in both). A shared file VMA without an anon_vma is not
    // copied by fork (vma_needs_copy): the child faults its pages in later.
    expect(engine.page('pfn', 0x100)!.mapcount).toBe(2);
    const thp = engine.folio(engine.page('pfn', 0x200)!.folio);
    expect(thp.mapcount).toBe(2);
    expect(child.entryAt(0x7f1000001000).entry.kind).toBe('none');
    expect(engine.page('pfn', 0x1001)!.mapcount).toBe(1);
    expect(parent.entryAt(0x7f0000000000).entry.present?.write).toBe(false);
    expect(child.entryAt(0x7f0000000000).entry.present?.write).toBe(false);
  });

  it('u64 values may be numbers or hex strings', () => {
    const doc = JSON.parse(readFileSync(`${fixtures}/fork.json`, 'utf8'));
    doc.engine.ramPages = 65536;
    doc.processes[0].vmas[0].start = 0x7f0000000000;
    const r = loadScenario(doc);
    expect(r.engine.checkInvariants().ok).toBe(true);
    expect(r.mms.get('child')!.entryAt(0x7f0000001000).entry.number).toBe(0x101);
  });
});

describe('README scenario example', () => {
  it('loads, and the child shares the parent’s four pages', () => {
    const readme = readFileSync(`${root}/README.md`, 'utf8');
    const block = /## Scenario files[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)![1];
    const { engine, mms } = loadScenario(JSON.parse(block));
    expect(engine.checkInvariants().ok).toBe(true);
    expect(mms.get('child')!.entryAt(0x7f0000003000).entry.number).toBe(0x103);
    expect(engine.page('pfn', 0x103)!.mapcount).toBe(2);
  });
});

// fixture → code → JSON path (substring; '' for JSON syntax errors, which have none) → message fragment.
const BAD: [string, PvmwErrorCode, string, string][] = [
  ['wrong-version', 'BAD_SETTING', '$.version', 'must be 1'],
  ['not-an-object', 'BAD_SETTING', '$', 'must be an object'],
  ['unknown-top-key', 'BAD_SETTING', '$.proceses', 'unknown key "proceses"'],
  ['bad-paging', 'BAD_SETTING', '$.engine.paging', 'must be one of 4, 5'],
  ['ram-pages-not-a-number', 'BAD_SETTING', '$.engine.ramPages', '"0x…" hex string'],
  ['ram-pages-too-big', 'BAD_SETTING', '$.engine.ramPages', 'ramPages must be a whole number from 1'],
  ['bad-hex-string', 'BAD_SETTING', '$.processes[0].vmas[0].start', '"0x7fzz00000000"'],
  ['hex-beyond-2^53', 'BAD_RANGE', '$.processes[0].vmas[0].start', 'does not fit'],
  ['vma-start-negative', 'BAD_SETTING', '$.processes[0].vmas[0].start', 'got -4096'],
  ['vmas-not-an-array', 'BAD_SETTING', '$.processes[0].vmas', 'must be an array'],
  ['vma-overlap', 'VMA_OVERLAP', '$.processes[0].vmas[1]', 'overlaps [0x7f0000000000, 0x7f0000400000)'],
  ['vma-misaligned', 'BAD_ADDRESS', '$.processes[0].vmas[0].start', 'not aligned to 0x1000'],
  ['vma-reversed', 'BAD_RANGE', '$.processes[0].vmas[0].end', 'empty or reversed'],
  ['vma-beyond-task-size', 'BAD_ADDRESS', '$.processes[0].vmas[0].end', 'beyond user space'],
  ['vma-unknown-flag', 'BAD_SETTING', '$.processes[0].vmas[0].flags.writable', 'unknown key "writable"'],
  ['entry-outside-vma', 'NO_VMA', '$.processes[0].entries[0]', 'do not lie inside one VMA of process "p"'],
  ['entry-crosses-vma-end', 'NO_VMA', '$.processes[0].entries[0]', '1025 pte entries'],
  ['pmd-entry-misaligned', 'BAD_ADDRESS', '$.processes[0].entries[0].addr', 'not aligned to 0x200000 (a pmd entry)'],
  ['entry-missing-addr', 'BAD_SETTING', '$.processes[0].entries[0].addr', 'is required'],
  ['unknown-entry-kind', 'BAD_SETTING', '$.processes[0].entries[0].entry.kind', 'got "presnt"'],
  ['unknown-entry-bit', 'BAD_SETTING', '$.processes[0].entries[0].entry.writable', 'unknown key "writable"'],
  ['swap-type-too-big', 'BAD_SETTING', '$.processes[0].entries[0].entry.swapType', 'from 0 to 31, got 40'],
  ['entry-count-zero', 'BAD_RANGE', '$.processes[0].entries[0].count', 'got 0'],
  ['entry-pfn-beyond-memory', 'PFN_RANGE', '$.processes[0].entries[0]', '0x20000'],
  ['entry-names-no-folio', 'NO_FOLIO', '$.processes[0].entries[0]', 'pfn 0x500 belongs to no folio'],
  ['device-entry-without-device-memory', 'PFN_RANGE', '$.processes[0].entries[0]', ''],
  ['anon-folio-in-file-vma', 'BAD_ENTRY', '$.processes[0].entries[0]', 'rmap would not find it'],
  ['folio-pfn-beyond-memory', 'PFN_RANGE', '$.folios[0]', '0x20000'],
  ['folio-order-too-big', 'BAD_ORDER', '$.folios[0].order', 'got 10'],
  ['folio-misaligned', 'BAD_ORDER', '$.folios[0]', 'not aligned to an order-4 folio'],
  ['folio-overlap', 'FOLIO_BUSY', '$.folios[1]', 'already belongs to folio'],
  ['folio-count-too-big', 'BAD_RANGE', '$.folios[0].count', 'do not fit in 2^32 pages'],
  ['folio-tag-beyond-folio', 'BAD_RANGE', '$.folios[0].tags[0].page', 'from 0 to 0, got 1'],
  ['process-id-not-string', 'BAD_SETTING', '$.processes[0].id', 'non-empty string'],
  ['duplicate-process-id', 'BAD_SETTING', '$.processes[1].id', 'duplicate process id "p"'],
  ['unknown-parent', 'BAD_SETTING', '$.processes[1].parent', 'unknown parent "q"'],
  ['own-parent', 'BAD_SETTING', '$.processes[0].parent', 'fork cycle'],
  ['forward-parent-cycle', 'BAD_SETTING', '$.processes[0].parent', 'defined after this process'],
  ['child-vma-overlaps-inherited', 'VMA_OVERLAP', '$.processes[1].vmas[0]', '($.processes[0].vmas[0])'],
  ['truncated', 'BAD_SETTING', '', 'is not valid JSON at line'],
  ['empty', 'BAD_SETTING', '', 'is empty'],
  ['trailing-comma', 'BAD_SETTING', '', 'line 4, column 1'],
];

describe('malformed scenario files', () => {
  it('every fixture has a row and every row a fixture', () => {
    const files = readdirSync(`${fixtures}/bad`).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    expect(files).toEqual(BAD.map((r) => r[0]).sort());
    expect(files.length).toBeGreaterThanOrEqual(20);
  });

  it.each(BAD)('%s → %s at %s', (name, code, path, fragment) => {
    const file = `${fixtures}/bad/${name}.json`;
    let err: unknown;
    try {
      loadScenarioFile(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PvmwError);
    const e = err as PvmwError;
    expect({ code: e.code, message: e.message }).toMatchObject({ code });
    if (path) {
      expect(e.path).toBeDefined();
      expect(e.path).toContain(path);
      expect(e.message.startsWith(`${e.path}: `)).toBe(true);
    } else {
      expect(e.message).toContain(file); // syntax errors name the file
    }
    expect(e.message).toContain(fragment);
    expect(e.message).toContain(file.slice(file.lastIndexOf('/') + 1));
  });
});
