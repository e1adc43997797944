// map() installs only what rmap could find again (kernel-operations.md §0.3): mappings (present, device-private,
// device-exclusive entries) and migration entries name folios whose anon-ness matches the VMA's, whose file is
// the VMA's file, and whose index + page offset is the linear page index of the address (KSM folios are exempt
// from the index; hwpoison entries and special present entries from all of it). A map range lies in one VMA.
// Every rejection leaves the mm as it was.
import { describe, expect, it } from 'vitest';
import {
  Engine, Mm, PvmwError, PMD_SIZE, PUD_SIZE, linearPageIndex,
  type EngineOptions, type EntrySpec, type MapSpec, type PvmwErrorCode,
} from '../src/index.js';

const P = 4096;
const hex = (n: number) => '0x' + n.toString(16);

function engine(opts: EngineOptions = {}): Engine {
  return new Engine({ ramPages: 1 << 20, deviceChunkPages: 4096, ...opts });
}

/** The linear page index of `addr` in the VMA of `mm` holding it. */
function lpi(mm: Mm, addr: number): number {
  return linearPageIndex(mm.vmas.find(addr)!, addr);
}

/** Everything a map could disturb: stats, tables, translations at `addrs`, folio and page mapcounts. */
function snapshot(e: Engine, mm: Mm, addrs: number[], folios: number[]): string {
  return JSON.stringify({
    stats: mm.stats(),
    tables: e.memoryUsage().tables,
    tr: addrs.map((a) => mm.translate(a).steps.map((s) => [s.level, s.raw])),
    folios: folios.map((id) => {
      const f = e.folio(id);
      const pages = Array.from({ length: Math.min(f.nrPages, 8) }, (_, k) => e.page(f.namespace, f.number + k)!.mapcount);
      return [f.mapcount, f.entireMapcount, ...pages];
    }),
  });
}

/** map() fails with `code` and a message containing `inMessage`; the mm and the folios are unchanged. */
function refused(e: Engine, mm: Mm, addr: number, spec: MapSpec, folios: number[], code: PvmwErrorCode, ...inMessage: string[]): void {
  const addrs = [addr, addr + P, addr + 2 * P, addr - (addr % PMD_SIZE) + PMD_SIZE - P];
  const before = snapshot(e, mm, addrs, folios);
  let caught: unknown;
  try {
    mm.map(addr, spec);
  } catch (err) {
    caught = err;
  }
  expect(caught, `map at ${hex(addr)} should fail with ${code}`).toBeInstanceOf(PvmwError);
  const err = caught as PvmwError;
  expect(err.code, err.message).toBe(code);
  for (const s of inMessage) expect(err.message).toContain(s);
  expect(snapshot(e, mm, addrs, folios)).toBe(before);
}

const present = (number: number, count = 1): MapSpec => ({ count, entry: { kind: 'present', number } });
const pmd = (entry: EntrySpec): MapSpec => ({ level: 'pmd', entry });

describe('map() names only folios rmap would find there (kernel-operations §0.3)', () => {
  it('kernel-operations §0.3: an anon folio in a shared file VMA is BAD_ENTRY, and a file folio in an anon VMA', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000, file: 1, flags: { shared: true } });
    mm.addVma({ start: 0x20000, end: 0x30000 });
    const anon = e.createFolio({ number: 8, index: lpi(mm, 0x10000) }); // the index fits, the kind does not
    const file = e.createFolio({ number: 9, file: 1, index: lpi(mm, 0x20000) });
    refused(e, mm, 0x10000, present(8), [anon, file], 'BAD_ENTRY', 'pfn 0x8 cannot be mapped at 0x10000: rmap would not find it there', 'the folio is anon, the VMA shared of file 1');
    refused(e, mm, 0x20000, present(9), [anon, file], 'BAD_ENTRY', 'pfn 0x9 cannot be mapped at 0x20000', 'the folio is of file 1, the VMA anon');
    // The same kinds the other way round fit (file VMAs default to pgoff 0).
    const file0 = e.createFolio({ number: 10, file: 1, index: lpi(mm, 0x10000) });
    const anon0 = e.createFolio({ number: 11, index: lpi(mm, 0x20000) });
    mm.map(0x10000, present(10));
    mm.map(0x20000, present(11));
    expect([anon, file, file0, anon0].map((id) => e.folio(id).mapcount)).toEqual([0, 0, 1, 1]);
    // A private file VMA holds both: its file's page-cache folios and anon COW copies (§5.7 do_cow_fault).
    mm.addVma({ start: 0x40000, end: 0x50000, file: 1, pgoff: 0x30 });
    const cow = e.createFolio({ number: 12, index: lpi(mm, 0x41000) });
    mm.map(0x41000, present(12));
    expect(e.folio(cow).mapcount).toBe(1);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('kernel-operations §0.3: a folio of file 2 in a VMA of file 1 is BAD_ENTRY', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000, file: 1, pgoff: 40 });
    const f2 = e.createFolio({ number: 16, order: 2, file: 2, index: 40 });
    refused(e, mm, 0x10000, present(16, 4), [f2], 'BAD_ENTRY', 'pfn 0x10 cannot be mapped at 0x10000', 'the folio is of file 2, the VMA private of file 1');
    const f1 = e.createFolio({ number: 32, order: 2, file: 1, index: 40 });
    mm.map(0x10000, present(32, 4));
    expect(e.folio(f1)).toMatchObject({ mapcount: 4 });
  });

  it('kernel-operations §0.3: an anon folio with the wrong index is BAD_ENTRY naming both indexes', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x400000, end: 0x800000 }); // default pgoff 0x400: page index = VA / 4096
    const f = e.createFolio({ number: 7, index: 0x123 });
    refused(e, mm, 0x456000, present(7), [f], 'BAD_ENTRY', 'pfn 0x7 cannot be mapped at 0x456000',
      'its page index 0x123 is not the linear page index 0x456 of 0x456000');
    // Inside a large folio the page offset counts: page 5 of an order-4 folio of index 0x450 has index 0x455.
    const big = e.createFolio({ number: 32, order: 4, index: 0x450 });
    refused(e, mm, 0x456000, present(32 + 5), [f, big], 'BAD_ENTRY', 'pfn 0x25 cannot be mapped at 0x456000',
      'its page index 0x455 is not the linear page index 0x456');
    mm.map(0x455000, present(32 + 5, 3));
    expect(e.folio(big).mapcount).toBe(3);
    expect(mm.translate(0x457000).page).toMatchObject({ folio: big, page: 7, mapcount: 1 });
  });

  it('kernel-operations §0.3: one anon folio mapped in two mms at the same address (after fork) has mapcount 2', () => {
    const e = engine();
    const [parent, child] = [e.createMm(), e.createMm()];
    for (const mm of [parent, child]) mm.addVma({ start: 0x10000, end: 0x20000 });
    const f = e.createFolio({ number: 5, index: lpi(parent, 0x13000) });
    parent.map(0x13000, { entry: { kind: 'present', number: 5, write: true } });
    child.map(0x13000, present(5));
    expect(e.folio(f).mapcount).toBe(2);
    expect(e.page('pfn', 5)!.mapcount).toBe(2);
    // Anywhere else in the child it is not where rmap looks.
    refused(e, child, 0x14000, present(5), [f], 'BAD_ENTRY', 'its page index 0x13 is not the linear page index 0x14 of 0x14000');
    expect(child.translate(0x13000).page).toMatchObject({ folio: f, mapcount: 2 });
  });

  it('kernel-operations §0.3: a file folio mapped by VMAs of its file at different addresses, with matching pgoffs', () => {
    const e = engine();
    const [mm, other] = [e.createMm(), e.createMm()];
    mm.addVma({ start: 0x100000, end: 0x110000, file: 3 }); // file pages 0 … 15 (file VMAs default to pgoff 0)
    mm.addVma({ start: 0x200000, end: 0x208000, file: 3, pgoff: 8 }); // file pages 8 … 15
    mm.addVma({ start: 0x300000, end: 0x310000, file: 3, pgoff: 0 });
    other.addVma({ start: 0x7000000, end: 0x7010000, file: 3, pgoff: 4 }); // file pages 4 … 19
    const f = e.createFolio({ number: 64, order: 3, file: 3, index: 8 }); // file pages 8 … 15
    mm.map(0x108000, present(64, 8));
    mm.map(0x200000, present(64, 8));
    other.map(0x7004000, present(64, 8));
    expect(e.folio(f).mapcount).toBe(24);
    for (let k = 0; k < 8; k++) expect(e.page('pfn', 64 + k)!.mapcount).toBe(3);
    refused(e, mm, 0x300000, present(64, 8), [f], 'BAD_ENTRY', 'pfn 0x40 cannot be mapped at 0x300000',
      'its page index 0x8 is not the linear page index 0x0 of 0x300000');
    refused(e, other, 0x7000000, present(64, 8), [f], 'BAD_ENTRY', 'its page index 0x8 is not the linear page index 0x4');
  });

  it('kernel-operations §0.3: a KSM folio is exempt from the index check, not from being anon', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    mm.addVma({ start: 0x40000, end: 0x50000, file: 1, flags: { shared: true } });
    const ksm = e.createFolio({ number: 3, flags: { ksm: true } }); // index 0, merged from two pages
    mm.map(0x10000, present(3));
    mm.map(0x1f000, present(3));
    expect(e.folio(ksm).mapcount).toBe(2);
    refused(e, mm, 0x40000, present(3), [ksm], 'BAD_ENTRY', 'the folio is anon, the VMA shared of file 1');
    const plain = e.createFolio({ number: 4 }); // the same, not KSM
    refused(e, mm, 0x11000, present(4), [ksm, plain], 'BAD_ENTRY', 'its page index 0x0 is not the linear page index 0x11');
  });

  it('kernel-operations §0.3: hwpoison entries and special present entries are exempt (they map nothing)', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    const f = e.createFolio({ number: 6, order: 1, file: 9, index: 1234 }); // neither anon nor at this index
    mm.map(0x10000, { count: 2, entry: { kind: 'hwpoison', number: 6 } });
    mm.map(0x12000, { count: 2, entry: { kind: 'present', number: 6, special: true } });
    expect(mm.stats().leaves.pte).toBe(4);
    expect(mm.translate(0x11000).leaf.entry).toMatchObject({ kind: 'hwpoison', number: 7 });
    expect(e.folio(f).mapcount).toBe(0);
    refused(e, mm, 0x14000, present(6), [f], 'BAD_ENTRY', 'the folio is of file 9, the VMA anon');
    // A hwpoison entry still names a page of a folio.
    refused(e, mm, 0x14000, { entry: { kind: 'hwpoison', number: 100 } }, [f], 'NO_FOLIO', '0x64');
  });

  it.each(['pfn', 'offset'] as const)('kernel-operations §0.3: migration, device-private and device-exclusive entries are checked (%s model)', (deviceModel) => {
    const e = engine({ deviceModel, semantics: 'series' }); // series: migration entries of device pages carry offsets
    const dev = e.addDeviceMemory();
    const mm = e.createMm();
    mm.addVma({ start: 0x10000, end: 0x20000 });
    const f = e.createFolio({ number: 8, index: 0x10 });
    const d = e.createFolio({ namespace: dev.namespace, number: dev.base, index: 0x12 });
    for (const kind of ['migration-read', 'migration-write', 'migration-read-exclusive', 'device-exclusive'] as const) {
      refused(e, mm, 0x11000, { entry: { kind, number: 8 } }, [f, d], 'BAD_ENTRY', 'pfn 0x8 cannot be mapped at 0x11000', 'its page index 0x10 is not the linear page index 0x11');
    }
    const what = deviceModel === 'pfn' ? 'pfn' : 'device-private offset';
    refused(e, mm, 0x13000, { entry: { kind: 'device-private-write', number: dev.base } }, [f, d], 'BAD_ENTRY',
      `${what} ${hex(dev.base)} cannot be mapped at 0x13000`, 'its page index 0x12 is not the linear page index 0x13');
    refused(e, mm, 0x13000, { entry: { kind: 'migration-device-private-read', number: dev.base } }, [f, d], 'BAD_ENTRY', `${what} ${hex(dev.base)}`);
    mm.map(0x10000, { entry: { kind: 'migration-write', number: 8 } });
    mm.map(0x12000, { entry: { kind: 'device-private-read', number: dev.base } });
    expect([e.folio(f).mapcount, e.folio(d).mapcount]).toEqual([0, 1]);
  });

  it('kernel-operations §0.3: a PMD-mapped THP needs index = the linear page index of its first page', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 3 * PMD_SIZE });
    mm.addVma({ start: 3 * PMD_SIZE, end: 5 * PMD_SIZE, file: 4, pgoff: 0x1000 });
    const off = e.createFolio({ number: 512, order: 9, index: lpi(mm, PMD_SIZE) + 1 }); // one page off
    refused(e, mm, PMD_SIZE, pmd({ kind: 'present', number: 512 }), [off], 'BAD_ENTRY', 'pfn 0x200 cannot be mapped at 0x200000',
      'its page index 0x201 is not the linear page index 0x200 of 0x200000');
    refused(e, mm, PMD_SIZE, pmd({ kind: 'migration-read', number: 512 }), [off], 'BAD_ENTRY', 'its page index 0x201');
    const thp = e.createFolio({ number: 1024, order: 9, index: lpi(mm, PMD_SIZE) });
    mm.map(PMD_SIZE, pmd({ kind: 'present', number: 1024 }));
    expect(e.folio(thp)).toMatchObject({ mapcount: 1, entireMapcount: 1 });
    refused(e, mm, 2 * PMD_SIZE, pmd({ kind: 'present', number: 1024 }), [thp], 'BAD_ENTRY', 'its page index 0x200 is not the linear page index 0x400');
    // A file THP: page-cache index 0x1200 is 512 pages into a VMA with pgoff 0x1000.
    const fthp = e.createFolio({ number: 1536, order: 9, file: 4, index: 0x1200 });
    refused(e, mm, 3 * PMD_SIZE, pmd({ kind: 'present', number: 1536 }), [fthp], 'BAD_ENTRY', 'its page index 0x1200 is not the linear page index 0x1000');
    mm.map(4 * PMD_SIZE, pmd({ kind: 'present', number: 1536 }));
    expect(mm.translate(4 * PMD_SIZE + 9 * P).page).toMatchObject({ folio: fthp, page: 9, mapcount: 1 });
    // A 1G hugetlb folio at PUD level likewise.
    mm.addVma({ start: PUD_SIZE, end: 2 * PUD_SIZE, flags: { hugetlb: '1G' } });
    const h1 = e.createFolio({ number: 2 ** 18, hugetlb: '1G', index: lpi(mm, PUD_SIZE) + 512 });
    refused(e, mm, PUD_SIZE, { level: 'pud', entry: { kind: 'present', number: 2 ** 18 } }, [h1], 'BAD_ENTRY', 'its page index 0x40200 is not the linear page index 0x40000');
  });

  it('kernel-operations §0.3: a PTE run over order-0 folios with consecutive indexes maps; a gap names the first bad pfn', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x100000, end: 0x200000 });
    const run = e.createFolios({ number: 0x100, index: lpi(mm, 0x100000) }, 8); // indexes 0x100 … 0x107
    mm.map(0x100000, present(0x100, 8));
    for (let k = 0; k < 8; k++) expect(e.folio(run + k).mapcount).toBe(1);
    // Indexes 0x140 … 0x143, then 0x145 … 0x148: the fifth page is one page off.
    const a = e.createFolios({ number: 0x200, index: lpi(mm, 0x140000) }, 4);
    const b = e.createFolios({ number: 0x204, index: lpi(mm, 0x140000) + 5 }, 4);
    refused(e, mm, 0x140000, present(0x200, 8), [a, a + 3, b, b + 3], 'BAD_ENTRY', 'pfn 0x204 cannot be mapped at 0x144000',
      'its page index 0x145 is not the linear page index 0x144 of 0x144000');
    mm.map(0x140000, present(0x200, 4));
    mm.map(0x145000, present(0x204, 4));
    expect(mm.stats().leaves.pte).toBe(16);
  });

  it('kernel-operations §0.3: a map range spanning two adjacent VMAs is NO_VMA, even where the indexes run on', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: 0x100000, end: 0x200000 });
    mm.addVma({ start: 0x200000, end: 0x300000 }); // adjacent; default pgoffs, so the linear index runs on
    const f = e.createFolios({ number: 0x400, index: lpi(mm, 0x1fe000) }, 4);
    refused(e, mm, 0x1fe000, present(0x400, 4), [f, f + 3], 'NO_VMA', '[0x1fe000, 0x202000) is not inside one VMA');
    refused(e, mm, 0x1ff000, { count: 2, entry: { kind: 'marker', guard: true } }, [f], 'NO_VMA', '0x1ff000');
    mm.map(0x1fe000, present(0x400, 2));
    mm.map(0x200000, present(0x402, 2));
    expect(mm.stats().leaves.pte).toBe(4);
  });
});

describe('PMD-level softleaves (kernel-operations §0.2, spec §3.4)', () => {
  it('hwpoison entries and markers are valid PMD leaves in a hugetlb VMA only; swap and device-exclusive never', () => {
    const e = engine();
    const mm = e.createMm();
    mm.addVma({ start: PMD_SIZE, end: 3 * PMD_SIZE, flags: { hugetlb: '2M' } });
    mm.addVma({ start: 4 * PMD_SIZE, end: 5 * PMD_SIZE });
    const h2 = e.createFolio({ number: 512, hugetlb: '2M', index: 7 }); // hwpoison is exempt from the index
    mm.map(PMD_SIZE, pmd({ kind: 'hwpoison', number: 512 }));
    mm.map(2 * PMD_SIZE, pmd({ kind: 'marker', uffdWp: true }));
    expect(mm.stats().leaves.pmd).toBe(2);
    expect(e.folio(h2).mapcount).toBe(0);
    refused(e, mm, 4 * PMD_SIZE, pmd({ kind: 'hwpoison', number: 512 }), [h2], 'BAD_ENTRY', 'hwpoison entries are not valid pmd leaves');
    refused(e, mm, 4 * PMD_SIZE, pmd({ kind: 'marker', guard: true }), [h2], 'BAD_ENTRY', 'marker entries are not valid pmd leaves');
    refused(e, mm, 4 * PMD_SIZE, pmd({ kind: 'swap', swapType: 1, offset: 512 }), [h2], 'BAD_ENTRY', 'swap entries');
    e.createFolio({ number: 1024, order: 9, index: lpi(mm, 4 * PMD_SIZE) });
    refused(e, mm, 4 * PMD_SIZE, pmd({ kind: 'device-exclusive', number: 1024 }), [h2], 'BAD_ENTRY', 'device-exclusive entries');
    mm.map(4 * PMD_SIZE, pmd({ kind: 'migration-read', number: 1024 }));
  });
});
