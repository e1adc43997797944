import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SETTINGS, Engine, PvmwError, PMD_SIZE, PUD_SIZE,
  type EngineOptions, type Mm, type Namespace, type PvmwErrorCode,
} from '../src/index.js';
import { expectPvmwError } from './helpers.js';

// Issue "Bad input" and D7: input the kernel could never see raises a PvmwError with a stable code and a message
// naming the bad value (hex for addresses and pfns, JSON for names); the rejected operation changes nothing
// (DESIGN.md §3 "Errors"), and the engine keeps answering correctly.

const P = 4096;
const RAM = 1 << 20;
const CHUNK = 4096;
const G1 = 2 ** 18; // first pfn of the 1 GiB hugetlb folio
const WRONG = 4096; // pfns 4096…4607: 32 order-4 folios for 0x800000…0x9ff000 (a PMD there names a wrong-order folio)
const EDGE = 0x3000; // two order-1 folios for 0x5fe000…0x601000, either side of the device PMD at 0x600000
const THP2 = 0x2000; // a THP for 0x1200000, a free slot of the 2M hugetlb VMA
const FILE_A = 0x40000; // the small file folio's two mappings, through two VMAs of its file
const FILE_B = 0x81000;

interface World {
  e: Engine;
  mm: Mm;
  mm2: Mm;
  ns: Namespace;
  dev: { base: number };
  ids: Record<'small' | 'mth' | 'thp' | 'h2' | 'h1' | 'dthp', number>;
}

/**
 * An engine with something of everything: folios of each kind, mapped at every level, in two mms. Every folio is
 * one rmap would find where it is mapped (kernel-operations.md §0.3): anon folios in anon VMAs, whose default
 * pgoff makes the index of the page at VA a equal a / 4096; the file folio in VMAs of its file, whose pgoff puts
 * its index at the mapped address.
 */
function world(opts: EngineOptions = {}): World {
  const e = new Engine({ ramPages: RAM, deviceChunkPages: CHUNK, ...opts });
  const ns: Namespace = e.settings.deviceModel === 'offset' ? 'device-private' : 'pfn';
  const dev = e.addDeviceMemory();
  const ids = {
    small: e.createFolio({ number: 3, file: 1, index: 2 ** 33 }),
    mth: e.createFolio({ number: 16, order: 4, anonVma: 5, index: 0x3fb }), // its pages 5…7 at 0x400000…0x402000
    thp: e.createFolio({ number: 512, order: 9, index: 0x200 }),
    h2: e.createFolio({ number: 1024, hugetlb: '2M', index: 0x1000 }),
    h1: e.createFolio({ number: G1, hugetlb: '1G', index: PUD_SIZE / P }),
    dthp: e.createFolio({ namespace: ns, number: dev.base + 512, order: 9, index: 0x600 }),
  };
  e.createFolios({ number: WRONG, order: 4, index: 0x800 }, 32);
  e.createFolios({ number: EDGE, order: 1, index: 0x5fe }, 2);
  e.createFolio({ number: THP2, order: 9, index: 0x1200 });
  e.folios.setTag(ids.thp, 5, 3, 77);
  const mm = e.createMm();
  mm.addVma({ start: 0x200000, end: 0xa00000 });
  mm.addVma({ start: 0x1000000, end: 0x1400000, flags: { hugetlb: '2M' } });
  mm.addVma({ start: PUD_SIZE, end: 2 * PUD_SIZE, flags: { hugetlb: '1G' } });
  mm.addVma({ start: 2 * PUD_SIZE, end: 3 * PUD_SIZE, file: 8 });
  mm.addVma({ start: FILE_A, end: FILE_A + P, file: 1, pgoff: 2 ** 33 });
  mm.addVma({ start: FILE_B - P, end: FILE_B + P, file: 1, pgoff: 2 ** 33 - 1 });
  mm.map(0x200000, { level: 'pmd', entry: { kind: 'present', number: 512, write: true } });
  mm.map(0x400000, { count: 3, entry: { kind: 'present', number: 16 + 5 } });
  mm.map(FILE_A, { entry: { kind: 'present', number: 3 } });
  mm.map(0x405000, { entry: { kind: 'swap', swapType: 2, offset: 99 } });
  mm.map(0x406000, { entry: { kind: 'marker', guard: true } });
  mm.map(FILE_B, { entry: { kind: 'present', number: 3 } });
  mm.map(0x600000, { level: 'pmd', entry: { kind: 'device-private-write', number: dev.base + 512 } });
  mm.map(0x1000000, { level: 'pmd', entry: { kind: 'present', number: 1024 } });
  mm.map(PUD_SIZE, { level: 'pud', entry: { kind: 'present', number: G1 } });
  // mm2 (a fork child, say) maps two pages of the THP and one of the device THP where mm's VMA would have them;
  // its one VMA also reaches 0x1000000 and PUD_SIZE + PMD_SIZE, where h2 and page 512 of h1 fit a normal VMA.
  const mm2 = e.createMm();
  mm2.addVma({ start: 0x200000, end: PUD_SIZE + 2 * PMD_SIZE });
  mm2.map(0x205000, { count: 2, entry: { kind: 'present', number: 512 + 5 } });
  mm2.map(0x607000, { entry: { kind: 'device-private-write', number: dev.base + 512 + 7 } });
  return { e, mm, mm2, ns, dev, ids };
}

const ADDRS = [0, FILE_A, FILE_B, 0x200000, 0x205000, 0x206000, 0x3ff000, 0x400000, 0x402000, 0x403000, 0x404000, 0x405000,
  0x406000, 0x407000, 0x5ff000, 0x600000 + 7 * P, 0x600000 + 9 * P, 0x800000, 0x1000000 + 3 * P, 0x1200000,
  PUD_SIZE + 0x123000, PUD_SIZE + PMD_SIZE, 2 * PUD_SIZE, 2 ** 47 - 2 * P];

/** Everything observable: usage, census, folios, pages, and each live mm's stats, VMAs and translations. */
function snap(w: World): unknown {
  const { e } = w;
  const { wasmBytes: _grown, ...usage } = e.memoryUsage();
  const pages = [3, 16, 21, 22, 512, 517, 518, 1024 + 9, G1 + 5].map((n) => e.page('pfn', n));
  return structuredClone({
    usage,
    census: e.folioCensus(),
    folios: Object.values(w.ids).map((id) => e.folio(id)),
    pages: [...pages, e.page(w.ns, w.dev.base + 512 + 7)],
    live: e.allMms().map((m) => m.id),
    mms: e.allMms().map((m) => ({
      stats: m.stats(),
      vmas: m.vmas.all(),
      tr: ADDRS.map((a) => {
        const t = m.translate(a);
        return { steps: t.steps.map((s) => [s.level, s.raw]), page: t.page };
      }),
    })),
  });
}

/** A valid round trip: map a new page and a new THP (in an existing memmap section), check, undo; all as before. */
function stillWorks(w: World): void {
  const { e, mm } = w;
  const before = snap(w);
  const f = e.createFolio({ number: 20_000, index: 0x5ff }); // anon, for 0x5ff000
  const t = e.createFolio({ number: 20_480, order: 9, index: 0x800 }); // anon, for 0x800000
  mm.map(0x5ff000, { entry: { kind: 'present', number: 20_000 } });
  mm.map(0x800000, { level: 'pmd', entry: { kind: 'present', number: 20_480 } });
  expect(mm.translate(0x5ff000).page).toMatchObject({ folio: f, page: 0, mapcount: 1 });
  expect(mm.translate(0x800000 + 17 * P).page).toMatchObject({ folio: t, page: 17, mapcount: 1 });
  expect(e.folio(t)).toMatchObject({ entireMapcount: 1, mapcount: 1 });
  expect(mm.translate(0x400000).page).toMatchObject({ folio: w.ids.mth, page: 5, mapcount: 1 });
  expect(mm.clear(0x800000, 0xa00000) + mm.clear(0x5ff000, 0x600000)).toBe(2);
  e.freeFolio(f);
  e.freeFolio(t);
  expect(snap(w)).toEqual(before);
}


/** The error, then proof that nothing changed (the invariant checker passes, issue 4) and that the engine
 *  still works. */
function rejects(w: World, f: () => unknown, code: PvmwErrorCode, ...inMessage: string[]): void {
  const before = snap(w);
  expectPvmwError(f, code, ...inMessage);
  expect(snap(w)).toEqual(before);
  expect(w.e.checkInvariants().problems).toEqual([]);
  stillWorks(w);
}

type Msg = string | ((w: World) => string);
type Case = [string, (w: World) => unknown, PvmwErrorCode, ...Msg[]];
const hex = (n: number) => '0x' + n.toString(16);
/** A number the device-private entries of this model cannot name: RAM (pfn model) or past device memory (offset). */
const notDevice = (w: World) => (w.ns === 'pfn' ? 3 : CHUNK + 3);
/** A number device-exclusive entries cannot name: device memory (pfn model) or past RAM (offset model). */
const notRam = (w: World) => (w.ns === 'pfn' ? w.dev.base + 512 : RAM + 5);
const pte = (w: World, addr: number, number: number, count = 1) => w.mm.map(addr, { count, entry: { kind: 'present', number } });
const pmd = (w: World, addr: number, number: number) => w.mm.map(addr, { level: 'pmd', entry: { kind: 'present', number } });

describe('bad input: unknown settings and setting values (BAD_SETTING, D1, D5)', () => {
  const cases: Array<[string, unknown, string]> = [
    ['unknown top-level name', { ramPage: 4096 }, '"ramPage"'],
    ['unknown config name', { config: { hugetlb: true } }, '"hugetlb"'],
    ['config value not boolean', { config: { migration: 1 } }, 'config.migration'],
    ['config not an object', { config: 'all' }, '"all"'],
    ['bad semantics', { semantics: 'v6.15' }, '"v6.15"'],
    ['bad deviceModel', { deviceModel: 'zone-device' }, '"zone-device"'],
    ['bad paging', { paging: 3 }, 'got 3'],
    ['paging as a string', { paging: '5' }, '"5"'],
    ['ramPages 0', { ramPages: 0 }, 'got 0'],
    ['ramPages not whole', { ramPages: 1.5 }, '1.5'],
    ['deviceChunkPages not a multiple of 512', { deviceChunkPages: 1000 }, '1000'],
  ];
  it.each(cases)('%s', (_t, opts, msg) => {
    const w = world();
    const defaults = structuredClone(DEFAULT_SETTINGS);
    const before = snap(w);
    expectPvmwError(() => new Engine(opts as EngineOptions), 'BAD_SETTING', msg);
    expect(DEFAULT_SETTINGS).toEqual(defaults);
    expect(snap(w)).toEqual(before);
    stillWorks(w);
    expect(new Engine({ ramPages: 64 }).settings).toMatchObject({ ...defaults, ramPages: 64 });
  });

  it('unknown names inside operations: folio flags, VMA flags, levels, namespaces', () => {
    const w = world();
    rejects(w, () => w.e.createFolio({ number: 8, flags: { young: true } as never }), 'BAD_SETTING', '"young"');
    rejects(w, () => w.mm.addVma({ start: 0xa00000, end: 0xb00000, flags: { huge: true } as never }), 'BAD_SETTING', '"huge"');
    rejects(w, () => w.mm.map(0x800000, { level: 'p4d' as never, entry: { kind: 'present', number: 9 } }), 'BAD_SETTING', '"p4d"');
    rejects(w, () => w.e.createFolio({ namespace: 'device' as never, number: 8 }), 'BAD_SETTING', '"device"');
    rejects(w, () => w.e.createFolio({ number: 8, file: 1, anonVma: 2 }), 'BAD_SETTING', 'file 1', 'anonVma 2');
    rejects(w, () => w.e.createFolio({ number: 8, index: 2 ** 44 }), 'BAD_SETTING', '0xfffffffffff');
    rejects(w, () => w.mm.map(0x800000, { entry: { kind: 'swapped' as never, number: 1 } }), 'BAD_ENTRY', '"swapped"');
  });

  it('an option given as undefined takes its default (D1)', () => {
    expect(new Engine({ ramPages: 64, semantics: undefined, deviceModel: undefined }).settings.semantics).toBe('newest');
  });
});

describe('bad input: rejected operations change nothing (issue "Bad input", D7)', () => {
  const cases: Case[] = [
    // BAD_ADDRESS: misaligned, or beyond the paging mode's user space (spec §3.1)
    ['misaligned PTE address', (w) => pte(w, 0x800800, 3), 'BAD_ADDRESS', '0x800800'],
    ['PMD leaf at a non-2M address', (w) => pmd(w, 0x801000, 2048), 'BAD_ADDRESS', '0x801000', '0x200000'],
    ['PUD leaf at a non-1G address', (w) => w.mm.map(PUD_SIZE + PMD_SIZE, { level: 'pud', entry: { kind: 'present', number: G1 } }), 'BAD_ADDRESS', '0x40200000'],
    ['misaligned VMA start', (w) => w.mm.addVma({ start: 0xa01234, end: 0xb00000 }), 'BAD_ADDRESS', '0xa01234'],
    ['VMA end beyond 4-level user space', (w) => w.mm.addVma({ start: 2 ** 47 - PMD_SIZE, end: 2 ** 47 }), 'BAD_ADDRESS', '0x800000000000'],
    ['VMA in 5-level space on a 4-level engine', (w) => w.mm.addVma({ start: 2 ** 50, end: 2 ** 50 + P }), 'BAD_ADDRESS', '0x4000000000000'],
    ['translate beyond user space', (w) => w.mm.translate(2 ** 47), 'BAD_ADDRESS', '0x800000000000'],
    ['negative address', (w) => pte(w, -P, 3), 'BAD_ADDRESS', '-4096'],
    ['clear with a misaligned end', (w) => w.mm.clear(0x400000, 0x400800), 'BAD_ADDRESS', '0x400800'],
    ['hugetlb VMA not aligned to its page size', (w) => w.mm.addVma({ start: 0x1400000 + P, end: 0x1600000, flags: { hugetlb: '2M' } }), 'BAD_ADDRESS', '0x1401000'],
    // BAD_ORDER: orders and hugetlb sizes that do not exist, folios not naturally aligned
    ['order 10', (w) => w.e.createFolio({ number: 2048, order: 10 }), 'BAD_ORDER', 'order 10'],
    ['order -1', (w) => w.e.createFolio({ number: 2048, order: -1 }), 'BAD_ORDER', '-1'],
    ['order 2.5', (w) => w.e.createFolio({ number: 2048, order: 2.5 }), 'BAD_ORDER', '2.5'],
    ['hugetlb 4M', (w) => w.e.createFolio({ number: 2048, hugetlb: '4M' as never }), 'BAD_ORDER', '"4M"'],
    ['hugetlb 2M with order 8', (w) => w.e.createFolio({ number: 2048, hugetlb: '2M', order: 8 }), 'BAD_ORDER', '8'],
    ['misaligned folio pfn', (w) => w.e.createFolio({ number: 2048 + 16, order: 9 }), 'BAD_ORDER', '0x810'],
    ['misaligned order-4 pfn', (w) => w.e.createFolio({ number: 2050, order: 4 }), 'BAD_ORDER', '0x802'],
    ['hugetlb VMA of size 4M', (w) => w.mm.addVma({ start: 0x1400000, end: 0x1800000, flags: { hugetlb: '4M' as never } }), 'BAD_ORDER', '"4M"'],
    ['hugetlb folio in device memory', (w) => w.e.createFolio({ namespace: w.ns, number: w.dev.base + 1024, hugetlb: '2M' }), 'BAD_ORDER', 'hugetlb'],
    // VMA_OVERLAP
    ['overlapping VMA', (w) => w.mm.addVma({ start: 0x900000, end: 0xb00000 }), 'VMA_OVERLAP', '0x900000', '0xb00000', '0x200000', '0xa00000'],
    ['identical VMA', (w) => w.mm.addVma({ start: 0x1000000, end: 0x1400000, flags: { hugetlb: '2M' } }), 'VMA_OVERLAP', '0x1000000'],
    ['VMA containing others', (w) => w.mm.addVma({ start: 0x100000, end: 0x2000000 }), 'VMA_OVERLAP', '0x100000'],
    // NO_VMA
    ['entry outside any VMA', (w) => pte(w, 0x10000, 3), 'NO_VMA', '0x10000'],
    ['map running off the end of a VMA', (w) => pte(w, 0x9ff000, WRONG, 2), 'NO_VMA', '0x9ff000', '0xa01000'],
    ['PMD leaf past the last VMA', (w) => pmd(w, 0xa00000, 2048), 'NO_VMA', '0xa00000'],
    ['map across a gap between VMAs', (w) => w.mm.map(0xa00000 - PMD_SIZE, { level: 'pmd', count: 3, entry: { kind: 'present', number: 512 } }), 'NO_VMA'],
    // PFN_RANGE: beyond physical memory, beyond device memory, the wrong namespace
    ['folio pfn beyond RAM', (w) => w.e.createFolio({ number: RAM }), 'PFN_RANGE', '0x100000'],
    ['folio running past the end of RAM', (w) => w.e.createFolio({ number: RAM - 256, order: 9 }), 'PFN_RANGE', '0xfff00'],
    ['negative pfn', (w) => w.e.createFolio({ number: -512 }), 'PFN_RANGE', '-512'],
    ['present entry beyond RAM', (w) => pte(w, 0x800000, RAM + 5), 'PFN_RANGE', '0x100005'],
    ['present entries running past RAM', (w) => pte(w, 0x800000, RAM - 1, 2), 'PFN_RANGE', '0xfffff'],
    ['page lookup beyond RAM', (w) => w.e.page('pfn', 2 ** 33), 'PFN_RANGE', '0x200000000'],
    ['device folio beyond device memory', (w) => w.e.createFolio({ namespace: w.ns, number: w.dev.base + CHUNK }), 'PFN_RANGE', (w) => hex(w.dev.base + CHUNK)],
    ['page lookup past device memory', (w) => w.e.page(w.ns, w.dev.base + CHUNK), 'PFN_RANGE', (w) => hex(w.dev.base + CHUNK)],
    ['device folio named in the other namespace', (w) => w.e.createFolio({ namespace: w.ns === 'pfn' ? 'device-private' : 'pfn', number: 2 ** 34 - 512 }), 'PFN_RANGE', '0x3fffffe00'],
    ['device-private entry naming RAM or past device memory', (w) => w.mm.map(0x800000, { entry: { kind: 'device-private-write', number: notDevice(w) } }), 'PFN_RANGE', (w) => hex(notDevice(w))],
    ['device-exclusive entry naming device memory or past RAM', (w) => w.mm.map(0x800000, { entry: { kind: 'device-exclusive', number: notRam(w) } }), 'PFN_RANGE', (w) => hex(notRam(w))],
    ['present entry naming device memory or past RAM', (w) => pte(w, 0x800000, notRam(w)), 'PFN_RANGE', (w) => hex(notRam(w))],
    // NO_FOLIO
    ['folio id with no folio', (w) => w.e.folio(5), 'NO_FOLIO', '0x5'],
    ['folio id of a tail page', (w) => w.e.folio(17), 'NO_FOLIO', '0x11'],
    ['freeing a tail page', (w) => w.e.freeFolio(512 + 8), 'NO_FOLIO', '0x208'],
    ['folio id beyond the memmap', (w) => w.e.folio(2 ** 40), 'NO_FOLIO', '0x10000000000'],
    ['present entry on a page in no folio', (w) => pte(w, 0x800000, 7), 'NO_FOLIO', '0x7'],
    ['third of three entries in no folio', (w) => pte(w, 0x409000, 16 + 14, 3), 'NO_FOLIO', '0x20'],
    ['tag on no folio', (w) => w.e.folios.setTag(4, 0, 1, 1), 'NO_FOLIO', '0x4'],
    // FOLIO_BUSY
    ['folio over a tail page', (w) => w.e.createFolio({ number: 16 + 8 }), 'FOLIO_BUSY', '0x18'],
    ['large folio over small ones', (w) => w.e.createFolio({ number: 0, order: 9 }), 'FOLIO_BUSY', '0x3'],
    ['device folio over a device folio', (w) => w.e.createFolio({ namespace: w.ns, number: w.dev.base + 640, order: 4 }), 'FOLIO_BUSY'],
    ['freeing a PMD-mapped THP', (w) => w.e.freeFolio(w.ids.thp), 'FOLIO_BUSY', '0x200', '3 times'],
    ['freeing a PTE-mapped small folio', (w) => w.e.freeFolio(w.ids.small), 'FOLIO_BUSY', '0x3'],
    ['freeing a device-mapped device folio', (w) => w.e.freeFolio(w.ids.dthp), 'FOLIO_BUSY'],
    // ENTRY_CONFLICT (each entry names a page rmap would find at its address: only the entry in the way is wrong)
    ['PTE over a PTE', (w) => pte(w, 0x401000, 16 + 6), 'ENTRY_CONFLICT', '0x401000'],
    ['four PTEs whose third is taken', (w) => pte(w, 0x403000, 16 + 8, 4), 'ENTRY_CONFLICT', '0x405000'],
    ['PTEs running into a PMD leaf', (w) => pte(w, 0x5fe000, EDGE, 4), 'ENTRY_CONFLICT', '0x600000'],
    ['PTE under a PMD leaf', (w) => pte(w, 0x201000, 512 + 1), 'ENTRY_CONFLICT', '0x200000', 'pmd'], // names the leaf in the way
    ['PMD leaf over a PTE table', (w) => w.mm2.map(0x200000, { level: 'pmd', entry: { kind: 'present', number: 512 } }), 'ENTRY_CONFLICT', '0x200000'],
    ['PMD leaf naming pages in no folio', (w) => pmd(w, 0x800000, 2048 + 512), 'NO_FOLIO', '0xa00'],
    ['clear part of a PMD leaf', (w) => w.mm.clear(0x200000, 0x201000), 'ENTRY_CONFLICT', '0x200000'],
    ['clear part of a PUD leaf', (w) => w.mm.clear(PUD_SIZE + PMD_SIZE, 2 * PUD_SIZE), 'ENTRY_CONFLICT', '0x40000000'],
    // BAD_ENTRY
    ['PMD leaf naming a non-head page (of a 1G folio)', (w) => w.mm2.map(PUD_SIZE + PMD_SIZE, { level: 'pmd', entry: { kind: 'present', number: G1 + 512 } }), 'BAD_ENTRY', '0x40200', 'not the head'],
    ['PMD leaf naming a wrong-order folio', (w) => pmd(w, 0x800000, WRONG), 'BAD_ENTRY', '0x1000', 'order-9'],
    ['PMD leaf at a misaligned pfn', (w) => pmd(w, 0x800000, 512 + 16), 'BAD_ENTRY', '0x210'],
    ['THP in a hugetlb VMA', (w) => pmd(w, 0x1200000, THP2), 'BAD_ENTRY', '0x2000', 'can only map hugetlb folios'],
    ['hugetlb folio in a normal VMA', (w) => w.mm2.map(0x1000000, { level: 'pmd', entry: { kind: 'present', number: 1024 } }), 'BAD_ENTRY', '0x400', 'only be mapped in a hugetlb VMA'],
    ['hugetlb folio PTE-mapped', (w) => pte(w, 0x800000, 1024 + 3), 'BAD_ENTRY', '0x403'],
    ['PTE in a hugetlb VMA', (w) => pte(w, 0x1200000, 3), 'BAD_ENTRY', '0x1000000'],
    ['PMD in a 1G hugetlb VMA', (w) => pmd(w, PUD_SIZE + PUD_SIZE / 2, 1024), 'BAD_ENTRY', 'pmd'],
    ['PUD leaf outside a 1G hugetlb VMA', (w) => w.mm.map(2 * PUD_SIZE, { level: 'pud', entry: { kind: 'present', number: G1 } }), 'BAD_ENTRY', '0x80000000'],
    ['present pfn past 2^40', (w) => pte(w, 0x800000, 2 ** 40), 'BAD_ENTRY', '0x10000000000'],
    ['softleaf number past SWP_PFN_BITS', (w) => w.mm.map(0x800000, { entry: { kind: 'migration-read', number: 2 ** 34 } }), 'BAD_ENTRY', '0x400000000'],
    ['swap type of a special kind', (w) => w.mm.map(0x800000, { entry: { kind: 'swap', swapType: 24, offset: 1 } }), 'BAD_ENTRY', '0x18'],
    ['marker without bits', (w) => w.mm.map(0x800000, { entry: { kind: 'marker' } }), 'BAD_ENTRY', 'marker'],
    ['young bit on a device-private entry', (w) => w.mm.map(0x800000, { entry: { kind: 'device-private-read', number: w.dev.base + 512, young: true } }), 'BAD_ENTRY'],
    // BAD_RANGE
    ['map count 0', (w) => w.mm.map(0x800000, { count: 0, entry: { kind: 'present', number: 3 } }), 'BAD_RANGE', '0'],
    ['clear an empty range', (w) => w.mm.clear(0x400000, 0x400000), 'BAD_RANGE', '0x400000'],
    ['tag beyond the folio', (w) => w.e.folios.setTag(w.ids.mth, 10, 7, 1), 'BAD_RANGE', '16 pages'],
  ];
  for (const model of ['pfn', 'offset'] as const) {
    describe(`${model} model`, () => {
      it.each(cases)('%s', (_title, f, code, ...msg) => {
        const w = world({ deviceModel: model });
        rejects(w, () => f(w), code, ...msg.map((m) => (typeof m === 'string' ? m : m(w))));
      });
    });
  }
});

describe('bad input: the unchanged-engine check is not vacuous', () => {
  it.each<[string, (w: World) => unknown]>([
    ['one more PTE', (w) => pte(w, 0x408000, 16 + 13)],
    ['a PTE past the translated addresses', (w) => pte(w, 0x9ff000, WRONG + 0x1ff)],
    ['a tag', (w) => w.e.folios.setTag(w.ids.h1, 9, 1, 1)],
    ['a new folio', (w) => w.e.createFolio({ number: 20_000 })],
    ['a new VMA', (w) => w.mm.addVma({ start: 0xa00000, end: 0xa01000 })],
    ['a VMA flag', (w) => (w.mm.vmas.all()[0].flags.locked = true)],
    ['a cleared entry', (w) => w.mm2.clear(0x206000, 0x207000)],
    ['a freed mm', (w) => w.e.freeMm(w.mm2.id)],
  ])('snap() sees %s', (_t, change) => {
    const w = world();
    const before = snap(w);
    change(w);
    expect(snap(w)).not.toEqual(before);
  });
});

describe('bad input: freed mms (MM_FREED)', () => {
  it('every operation on a freed mm is MM_FREED; the rest of the engine is unchanged', () => {
    const w = world();
    const id = w.mm2.id;
    expect(w.e.folio(w.ids.thp).mapcount).toBe(3);
    w.e.freeMm(id);
    expect(w.e.folio(w.ids.thp).mapcount).toBe(1); // freeing unmapped mm2's two PTEs
    expect(w.e.allMms().map((m) => m.id)).toEqual([w.mm.id]);
    const m2 = w.mm2;
    const s = String(id);
    rejects(w, () => m2.map(0x200000, { entry: { kind: 'present', number: 3 } }), 'MM_FREED', s);
    rejects(w, () => m2.translate(0x200000), 'MM_FREED', s);
    rejects(w, () => m2.addVma({ start: 0x800000, end: 0x900000 }), 'MM_FREED', s);
    rejects(w, () => m2.clear(0x200000, 0x400000), 'MM_FREED', s);
    rejects(w, () => m2.stats(), 'MM_FREED', s);
    rejects(w, () => w.e.mm(id), 'MM_FREED', s, 'was freed');
    rejects(w, () => w.e.freeMm(id), 'MM_FREED', s);
    rejects(w, () => w.e.mm(999), 'MM_FREED', '999', 'does not exist');
    expect(w.e.mm(w.mm.id)).toBe(w.mm);
    const m3 = w.e.createMm();
    expect(m3.id).not.toBe(id);
  });
});

describe('bad input: 5-level paging moves the user-space limit (spec §3.1)', () => {
  it('addresses up to 2^56 − 4096 are valid, 2^56 is BAD_ADDRESS', () => {
    const w = world({ paging: 5 });
    const top = 2 ** 56 - PMD_SIZE;
    w.mm.addVma({ start: top, end: 2 ** 56 - P });
    w.e.createFolio({ number: 2048, index: (2 ** 56 - 2 * P) / P });
    w.mm.map(2 ** 56 - 2 * P, { entry: { kind: 'present', number: 2048 } });
    expect(w.mm.translate(2 ** 56 - 2 * P).page).toMatchObject({ folio: 2048, mapcount: 1 });
    rejects(w, () => w.mm.addVma({ start: 2 ** 56 - P, end: 2 ** 56 }), 'BAD_ADDRESS', '0xfffffffffff000');
    rejects(w, () => w.mm.map(2 ** 56 - P, { entry: { kind: 'present', number: 2048 } }), 'BAD_ADDRESS', '0xfffffffffff000');
    rejects(w, () => w.mm.translate(2 ** 56), 'BAD_ADDRESS', '0x100000000000000');
    rejects(w, () => w.e.createFolio({ number: w.dev.base + CHUNK }), 'PFN_RANGE', '0x10000000000');
  });
});

describe('bad input: PMD-level softleaves (spec §3.4 softleaf_is_valid_pmd_entry, kernel-operations §0.2)', () => {
  it('migration and device-private entries are valid PMD softleaves', () => {
    const w = world();
    // As set_pmd_migration_entry does: the THP's PMD is replaced by a PMD migration entry naming it.
    expect(w.mm.clear(0x200000, 0x400000)).toBe(1);
    w.mm.map(0x200000, { level: 'pmd', entry: { kind: 'migration-write', number: 512 } });
    expect(w.mm.translate(0x200000).leaf.entry).toMatchObject({ kind: 'migration-write', number: 512 });
    expect(w.mm.translate(0x600000).leaf.entry).toMatchObject({ kind: 'device-private-write', number: w.dev.base + 512 });
  });

  it('swap, marker, hwpoison and device-exclusive entries at PMD level in a normal VMA are BAD_ENTRY (§3.4, §0.2)', () => {
    const w = world();
    const at = 0x800000;
    rejects(w, () => w.mm.map(at, { level: 'pmd', entry: { kind: 'device-exclusive', number: 512 } }), 'BAD_ENTRY');
    rejects(w, () => w.mm.map(at, { level: 'pmd', entry: { kind: 'swap', swapType: 0, offset: 5 } }), 'BAD_ENTRY');
    rejects(w, () => w.mm.map(at, { level: 'pmd', entry: { kind: 'marker', guard: true } }), 'BAD_ENTRY');
    rejects(w, () => w.mm.map(at, { level: 'pmd', entry: { kind: 'hwpoison', number: 512 } }), 'BAD_ENTRY');
  });
});
