import { readFileSync } from 'node:fs';
import { PvmwError } from '../errors.js';
import { Engine } from '../model/engine.js';
import type { Mm } from '../model/mm.js';
import { dupMmap } from '../mm/fork.js';
import { validateScenario, type Scenario } from './schema.js';

/**
 * Load a scenario (schema.ts, version 1, explicit content) into a fresh Engine. Phase 1 validates the whole
 * document without an engine; phase 2 builds: device chunks, folios (in file order), then each process in
 * file order (a child is dupMmap's fork of its parent, whose content is placed by then), its VMAs, then its
 * entries. An error the engine raises while building is re-raised with the JSON path of the item being
 * placed. On any failure the half-built engine is dropped: callers only ever see a complete one (DESIGN.md §2).
 */
export interface LoadedScenario {
  engine: Engine;
  /** Address spaces by process id. */
  mms: Map<string, Mm>;
}

export function loadScenario(json: unknown): LoadedScenario {
  const sc = validateScenario(json);
  return build(sc);
}

/** Read, parse and load a scenario file. Unreadable or malformed JSON is BAD_SETTING naming the file and position. */
export function loadScenarioFile(file: string): LoadedScenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PvmwError('BAD_SETTING', `cannot read scenario file ${file}: ${(e as Error).message}`);
  }
  const doc = parseJson(text, file);
  try {
    return loadScenario(doc);
  } catch (e) {
    if (e instanceof PvmwError) throw new PvmwError(e.code, `${bare(e)} (in ${file})`, e.path);
    throw e;
  }
}

/** JSON.parse with an error naming the file, line, column and offset. */
export function parseJson(text: string, file: string): unknown {
  if (text.trim() === '') throw new PvmwError('BAD_SETTING', `scenario file ${file} is empty (line 1, column 1, position 0)`);
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : /end of JSON input|Unterminated/i.test(msg) ? text.length : 0;
    const before = text.slice(0, pos).split('\n');
    const line = before.length;
    const column = before[before.length - 1].length + 1;
    throw new PvmwError('BAD_SETTING', `scenario file ${file} is not valid JSON at line ${line}, column ${column} (position ${pos}): ${msg}`);
  }
}

function bare(e: PvmwError): string {
  return e.path && e.message.startsWith(`${e.path}: `) ? e.message.slice(e.path.length + 2) : e.message;
}

/** Run one placement; an engine error gets the item's JSON path. */
function at<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PvmwError && e.path === undefined) throw new PvmwError(e.code, e.message, path);
    throw e;
  }
}

function build(sc: Scenario): LoadedScenario {
  const engine = at('$.engine', () => new Engine(sc.engine));
  for (let i = 0; i < sc.deviceChunks; i++) at('$.engine.deviceChunks', () => engine.addDeviceMemory());
  sc.folios.forEach((f, i) => {
    const path = `$.folios[${i}]`;
    const first = at(path, () => engine.createFolios(f.spec, f.count));
    const pages = f.spec.hugetlb === '1G' ? 2 ** 18 : f.spec.hugetlb === '2M' ? 512 : 2 ** (f.spec.order ?? 0);
    f.tags.forEach((t, j) => {
      for (let k = 0; k < f.count; k++) at(`${path}.tags[${j}]`, () => engine.folios.setTag(first + k * pages, t.page, t.count, t.tag));
    });
  });
  const mms = new Map<string, Mm>();
  sc.processes.forEach((p, i) => {
    const path = `$.processes[${i}]`;
    let mm: Mm;
    if (p.parent !== null) {
      const r = at(`${path}.parent`, () => dupMmap(engine, mms.get(p.parent!)!));
      if (!r.ok) throw new PvmwError('MEMORY_LIMIT', `fork of ${JSON.stringify(p.parent)} failed: ${r.errno}`, `${path}.parent`);
      mm = r.child;
    } else {
      mm = at(path, () => engine.createMm());
    }
    mms.set(p.id, mm);
    p.vmas.forEach((v, j) => at(`${path}.vmas[${j}]`, () => mm.addVma(v)));
    p.entries.forEach((e, j) => at(`${path}.entries[${j}]`, () => mm.map(e.addr, { level: e.level, count: e.count, entry: e.entry })));
  });
  return { engine, mms };
}
