import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PvmwError, type PvmwErrorCode } from '../src/errors.js';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE, geometry } from '../src/model/geometry.js';
import {
  DEFAULT_VMA_FLAGS,
  EFAULT,
  VmaSet,
  linearPageIndex,
  thpVmaSuitableOrder,
  vmaAddress,
  vmaAddressEnd,
  type Vma,
  type VmaSpec,
} from '../src/model/vma.js';
import { expectPvmwError } from './helpers.js';

const G4 = geometry(4);
const G5 = geometry(5);
const P = PAGE_SIZE;

/** A free-standing VMA (not in a set) for the address helpers. */
function vma(start: number, end: number, pgoff: number, file: number | null = 7): Vma {
  return {
    id: 0,
    start,
    end,
    pgoff,
    file,
    anon: file === null,
    flags: { ...DEFAULT_VMA_FLAGS, thp: true },
    mm: 0,
  };
}


describe('§1.3 vma_address', () => {
  // VMA [0x10000000, 0x10010000): 16 pages at pgoff 100 … 115.
  const v = vma(0x1000_0000, 0x1001_0000, 100);

  it('branch 1: pgoff ≥ vm_pgoff maps linearly', () => {
    expect(vmaAddress(v, 100, 1)).toBe(0x1000_0000);
    expect(vmaAddress(v, 105, 1)).toBe(0x1000_0000 + 5 * P);
    expect(vmaAddress(v, 115, 1)).toBe(0x1001_0000 - P);
    expect(vmaAddress(v, 110, 512)).toBe(0x1000_0000 + 10 * P); // range running past vm_end still starts inside
  });

  it('branch 1: EFAULT at or beyond vm_end', () => {
    expect(vmaAddress(v, 116, 1)).toBe(EFAULT);
    expect(vmaAddress(v, 116, 100)).toBe(EFAULT);
    expect(vmaAddress(v, 2 ** 51, 1)).toBe(EFAULT); // would wrap in the kernel's unsigned arithmetic
    expect(EFAULT).toBe(-14);
  });

  it('branch 2: a range starting before the VMA returns vm_start if it reaches vm_pgoff', () => {
    expect(vmaAddress(v, 99, 2)).toBe(0x1000_0000);
    expect(vmaAddress(v, 0, 101)).toBe(0x1000_0000);
    expect(vmaAddress(v, 96, 512)).toBe(0x1000_0000);
  });

  it('branch 2: EFAULT when the range ends before vm_pgoff', () => {
    expect(vmaAddress(v, 99, 1)).toBe(EFAULT);
    expect(vmaAddress(v, 0, 100)).toBe(EFAULT);
  });

  it('is exact above 2^32 and near the 5-level top', () => {
    const top = vma(2 ** 56 - 2 * PMD_SIZE, 2 ** 56 - P, 2 ** 51);
    expect(vmaAddress(top, 2 ** 51 + 511, 1)).toBe(2 ** 56 - 2 * PMD_SIZE + 511 * P);
    expect(linearPageIndex(top, 2 ** 56 - 2 * P)).toBe(2 ** 51 + 1022);
    const hi = vma(0x7f00_0000_0000, 0x7f00_0020_0000, 0x7f00_0000_0);
    expect(vmaAddress(hi, 0x7f00_0000_0 + 3, 1)).toBe(0x7f00_0000_3000);
  });

  it('rejects offsets the kernel could never see', () => {
    expectPvmwError(() => vmaAddress(v, -1, 1), 'BAD_RANGE', '-1');
    expectPvmwError(() => vmaAddress(v, 1.5, 1), 'BAD_RANGE', '1.5');
    expectPvmwError(() => vmaAddress(v, 0, 0), 'BAD_RANGE', 'nr_pages 0');
    expectPvmwError(() => vmaAddress(v, 2 ** 52 - 1, 1), 'BAD_RANGE', '0x10000000000000');
  });
});

describe('§1.3 vma_address_end', () => {
  const v = vma(0x1000_0000, 0x1001_0000, 100);

  it('nr_pages == 1 is address + 4096 whatever pgoff says (KSM)', () => {
    expect(vmaAddressEnd({ address: 0x1000_5000, pgoff: 105, nrPages: 1, vma: v })).toBe(0x1000_6000);
    expect(vmaAddressEnd({ address: 0x1000_5000, pgoff: 123456789, nrPages: 1, vma: v })).toBe(0x1000_6000);
  });

  it('multi-page range inside the VMA ends at its last page + 1', () => {
    expect(vmaAddressEnd({ address: 0x1000_0000, pgoff: 100, nrPages: 4, vma: v })).toBe(0x1000_4000);
    expect(vmaAddressEnd({ address: 0x1000_2000, pgoff: 102, nrPages: 14, vma: v })).toBe(0x1001_0000);
  });

  it('clamps to vm_end when the range runs past the VMA', () => {
    expect(vmaAddressEnd({ address: 0x1000_8000, pgoff: 108, nrPages: 512, vma: v })).toBe(0x1001_0000);
    expect(vmaAddressEnd({ address: 0x1000_0000, pgoff: 2 ** 51, nrPages: 2, vma: v })).toBe(0x1001_0000);
  });

  it('range starting before the VMA: end counted from vm_pgoff', () => {
    expect(vmaAddressEnd({ address: 0x1000_0000, pgoff: 96, nrPages: 8, vma: v })).toBe(0x1000_4000);
  });

  it('clamps to vm_end when the end falls below vm_start (kernel unsigned wrap)', () => {
    expect(vmaAddressEnd({ address: 0x1000_0000, pgoff: 10, nrPages: 2, vma: v })).toBe(0x1001_0000);
  });

  it('a range ending exactly at vm_pgoff gives vm_start (no clamp)', () => {
    expect(vmaAddressEnd({ address: 0x1000_0000, pgoff: 98, nrPages: 2, vma: v })).toBe(0x1000_0000);
  });
});

describe('§1.3 linear_page_index', () => {
  it('is (addr − start) / 4096 + pgoff, exactly above 2^32', () => {
    const v = vma(0x5_0000_0000, 0x5_0010_0000, 7);
    expect(linearPageIndex(v, 0x5_0000_0000)).toBe(7);
    expect(linearPageIndex(v, 0x5_0000_3fff)).toBe(10);
    const a = vma(0x7fff_0000_0000, 0x7fff_1000_0000, 0x7fff_0000_0, null);
    expect(linearPageIndex(a, 0x7fff_0123_4000)).toBe(0x7fff_0123_4);
  });
});

describe('D5 thp_vma_suitable_order', () => {
  it('anon: the aligned block must lie inside the VMA; pgoff is not checked', () => {
    const a = vma(0x20_0000, 0x60_0000, 0x12345, null); // 2 MiB-aligned, 4 MiB long, odd pgoff
    expect(thpVmaSuitableOrder(a, 0x20_0000, 9)).toBe(true);
    expect(thpVmaSuitableOrder(a, 0x5f_f000, 9)).toBe(true);
    expect(thpVmaSuitableOrder(a, 0x5f_f000, 10)).toBe(false); // 4 MiB block [0x400000, 0x800000) crosses vm_end
    expect(thpVmaSuitableOrder(a, 0x20_0000, 0)).toBe(true);
  });

  it('anon: blocks crossing vm_start or vm_end are refused', () => {
    const a = vma(0x21_0000, 0x5f_0000, 0x210, null);
    expect(thpVmaSuitableOrder(a, 0x30_0000, 9)).toBe(false); // block [0x200000, 0x400000) starts before vm_start
    expect(thpVmaSuitableOrder(a, 0x50_0000, 9)).toBe(false); // block [0x400000, 0x600000) ends after vm_end
    expect(thpVmaSuitableOrder(a, 0x30_0000, 4)).toBe(true); // 64 KiB mTHP block fits
    expect(thpVmaSuitableOrder(a, 0x21_0000, 4)).toBe(true);
    expect(thpVmaSuitableOrder(a, 0x5e_f000, 4)).toBe(true);
  });

  it('file: block pgoff must be aligned to 2^order', () => {
    const aligned = vma(0x40_0000, 0x80_0000, 512);
    expect(thpVmaSuitableOrder(aligned, 0x41_2000, 9)).toBe(true);
    const mis = vma(0x40_0000, 0x80_0000, 1);
    expect(thpVmaSuitableOrder(mis, 0x41_2000, 9)).toBe(false);
    expect(thpVmaSuitableOrder(mis, 0x41_2000, 0)).toBe(true);
    const mis16 = vma(0x40_0000, 0x80_0000, 16); // aligned for order ≤ 4 only
    expect(thpVmaSuitableOrder(mis16, 0x41_2000, 4)).toBe(true);
    expect(thpVmaSuitableOrder(mis16, 0x41_2000, 5)).toBe(false);
    // The same misaligned pgoff on an anon VMA is fine.
    expect(thpVmaSuitableOrder(vma(0x40_0000, 0x80_0000, 1, null), 0x41_2000, 9)).toBe(true);
  });

  it('file: pgoff alignment counts from the block start, not vm_start', () => {
    // vm_start is 1 MiB-aligned; pgoff 256 makes 2 MiB-aligned addresses land on pgoff multiples of 512.
    const f = vma(0x10_0000, 0x50_0000, 256);
    expect(thpVmaSuitableOrder(f, 0x20_0000, 9)).toBe(true);
    expect(thpVmaSuitableOrder(f, 0x10_0000, 9)).toBe(false); // block starts before vm_start
    expect(thpVmaSuitableOrder(f, 0x4f_f000, 9)).toBe(false); // block [0x400000, 0x600000) crosses vm_end
  });

  it('PUD order above 2^32 and bad orders', () => {
    const big = vma(0x1_0000_0000 * 3, 0x1_0000_0000 * 3 + 2 * PUD_SIZE, 0);
    expect(thpVmaSuitableOrder(big, 0x3_5000_0000, 18)).toBe(true);
    expect(thpVmaSuitableOrder({ ...big, pgoff: 512 }, 0x3_5000_0000, 18)).toBe(false);
    expectPvmwError(() => thpVmaSuitableOrder(big, 0x3_0000_0000, 19), 'BAD_ORDER', '19');
    expectPvmwError(() => thpVmaSuitableOrder(big, 0x3_0000_0000, -1), 'BAD_ORDER', '-1');
  });
});

describe('§1.3 / §6.1 VmaSet', () => {
  function threeVmas(): { s: VmaSet; a: Vma; b: Vma; c: Vma } {
    const s = new VmaSet();
    const b = s.insert({ start: 0x20_0000, end: 0x30_0000 }, G4);
    const a = s.insert({ start: 0x10_0000, end: 0x20_0000, file: 3, pgoff: 9 }, G4); // adjacent to b
    const c = s.insert({ start: 0x40_0000, end: 0x60_0000, flags: { hugetlb: '2M', write: false } }, G4);
    return { s, a, b, c };
  }

  it('insert fills defaults: anon pgoff = start / 4096, file pgoff 0, rw flags', () => {
    const s = new VmaSet();
    const anon = s.insert({ start: 0x7f12_3456_7000, end: 0x7f12_3457_0000 }, G4);
    expect(anon.pgoff).toBe(0x7f12_3456_7);
    expect(anon.anon).toBe(true);
    expect(anon.file).toBe(null);
    expect(anon.flags).toEqual({ read: true, write: true, exec: false, shared: false, locked: false, thp: false, hugetlb: null, mayWrite: true, dontcopy: false, wipeonfork: false, mergeable: false });
    const file = s.insert({ start: 0x1000, end: 0x3000, file: 0, flags: { shared: true, thp: true } }, G4);
    expect(file.pgoff).toBe(0);
    expect(file.anon).toBe(false);
    expect(file.flags.shared && file.flags.thp && file.flags.read).toBe(true);
    expect(new Set([anon.id, file.id]).size).toBe(2);
  });

  it('keeps VMAs sorted and finds them (vma_lookup), adjacent VMAs included', () => {
    const { s, a, b, c } = threeVmas();
    expect(s.size).toBe(3);
    expect(s.all().map((v) => v.id)).toEqual([a.id, b.id, c.id]);
    expect(s.find(0x10_0000)).toBe(a);
    expect(s.find(0x1f_ffff)).toBe(a);
    expect(s.find(0x20_0000)).toBe(b);
    expect(s.find(0x2f_f000)).toBe(b);
    expect(s.find(0x30_0000)).toBeUndefined();
    expect(s.find(0x0f_f000)).toBeUndefined();
    expect(s.find(0x5f_ffff)).toBe(c);
    expect(s.find(0x60_0000)).toBeUndefined();
    expect(s.byId(b.id)).toBe(b);
  });

  it('overlapping returns intersecting VMAs in address order', () => {
    const { s, a, b, c } = threeVmas();
    expect(s.overlapping(0, 2 ** 47)).toEqual([a, b, c]);
    expect(s.overlapping(0x1f_f000, 0x20_1000)).toEqual([a, b]);
    expect(s.overlapping(0x20_0000, 0x40_0000)).toEqual([b]);
    expect(s.overlapping(0x30_0000, 0x40_0000)).toEqual([]);
    expect(s.overlapping(0x30_0000, 0x40_1000)).toEqual([c]);
    expect(s.overlapping(0x20_0000, 0x20_0000)).toEqual([]);
    expectPvmwError(() => s.overlapping(0x2000, 0x1000), 'BAD_RANGE', '8192');
  });

  it('covers: adjacent VMAs cover together, a gap does not', () => {
    const { s } = threeVmas();
    expect(s.covers(0x10_0000, 0x30_0000)).toBe(true);
    expect(s.covers(0x1f_f000, 0x20_1000)).toBe(true);
    expect(s.covers(0x10_0000, 0x30_1000)).toBe(false);
    expect(s.covers(0x0f_f000, 0x20_0000)).toBe(false);
    expect(s.covers(0x20_0000, 0x60_0000)).toBe(false);
    expect(s.covers(0x40_0000, 0x60_0000)).toBe(true);
    expect(s.covers(0x60_0000, 0x60_1000)).toBe(false);
    expect(s.covers(0x30_0000, 0x30_0000)).toBe(true); // empty range
  });

  it('remove takes a VMA out; removing twice is a no-op; all() snapshots stay valid', () => {
    const { s, a, b, c } = threeVmas();
    const before = s.all();
    expect(s.remove(b)).toBe(true);
    expect(s.remove(b)).toBe(false);
    expect(before).toHaveLength(3);
    expect(s.all()).toEqual([a, c]);
    expect(s.find(0x20_0000)).toBeUndefined();
    expect(s.covers(0x10_0000, 0x30_0000)).toBe(false);
    expect(s.byId(b.id)).toBeUndefined();
    // The hole can be refilled.
    const b2 = s.insert({ start: 0x20_0000, end: 0x40_0000 }, G4);
    expect(s.covers(0x10_0000, 0x60_0000)).toBe(true);
    expect(b2.id).not.toBe(b.id);
  });

  it('takes ids from a counter passed in', () => {
    let n = 100;
    const s = new VmaSet(() => n++);
    expect(s.insert({ start: 0x1000, end: 0x2000 }, G4).id).toBe(100);
    expect(s.insert({ start: 0x2000, end: 0x3000 }, G4).id).toBe(101);
    n = 100;
    expectPvmwError(() => s.insert({ start: 0x5000, end: 0x6000 }, G4), 'INTERNAL', '100');
  });

  it('accepts VMAs up to TASK_SIZE in both paging modes', () => {
    const s = new VmaSet();
    const t4 = s.insert({ start: 2 ** 47 - 2 * P, end: 2 ** 47 - P }, G4);
    expect(s.find(2 ** 47 - 2 * P)).toBe(t4);
    const s5 = new VmaSet();
    const t5 = s5.insert({ start: 2 ** 56 - PMD_SIZE, end: 2 ** 56 - P, file: 1, pgoff: 2 ** 51 }, G5);
    expect(s5.find(2 ** 56 - 2 * P)).toBe(t5);
    expect(vmaAddress(t5, 2 ** 51 + 510, 1)).toBe(2 ** 56 - 2 * P);
  });
});

describe('§1.3 VmaSet bad input (D7): PvmwError, set unchanged', () => {
  const cases: [string, VmaSpec, PvmwErrorCode, string[], 4 | 5][] = [
    ['misaligned start', { start: 0x60_0800, end: 0x70_0000 }, 'BAD_ADDRESS', ['0x600800'], 4],
    ['misaligned end', { start: 0x60_0000, end: 0x70_0010 }, 'BAD_ADDRESS', ['0x700010'], 4],
    ['end beyond 4-level TASK_SIZE', { start: 0x7fff_ffff_0000, end: 2 ** 47 }, 'BAD_ADDRESS', ['0x800000000000', '0x7ffffffff000'], 4],
    ['start at 4-level TASK_SIZE', { start: 2 ** 47 - P, end: 2 ** 47 }, 'BAD_ADDRESS', ['0x7ffffffff000'], 4],
    ['misaligned end above 2^53', { start: 2 ** 54, end: 2 ** 54 + 2 * P + 8 }, 'BAD_ADDRESS', ['0x40000000002008'], 5],
    ['end beyond 5-level TASK_SIZE', { start: 2 ** 56 - 2 * P, end: 2 ** 56 }, 'BAD_ADDRESS', ['0x100000000000000', '0xfffffffffff000'], 5],
    ['empty range', { start: 0x60_0000, end: 0x60_0000 }, 'BAD_RANGE', ['0x600000'], 4],
    ['reversed range', { start: 0x70_0000, end: 0x60_0000 }, 'BAD_RANGE', ['0x700000', '0x600000'], 4],
    ['overlap with existing', { start: 0x1f_0000, end: 0x21_0000 }, 'VMA_OVERLAP', ['[0x1f0000, 0x210000)', '[0x100000, 0x200000)'], 4],
    ['overlap covering existing', { start: 0, end: 0x100_0000 }, 'VMA_OVERLAP', ['[0x0, 0x1000000)', '[0x100000, 0x200000)'], 4],
    ['hugetlb 2M misaligned start', { start: 0x60_1000, end: 0x80_0000, flags: { hugetlb: '2M' } }, 'BAD_ADDRESS', ['0x601000', '0x200000'], 4],
    ['hugetlb 2M misaligned end', { start: 0x60_0000, end: 0x70_0000, flags: { hugetlb: '2M' } }, 'BAD_ADDRESS', ['0x700000'], 4],
    ['hugetlb 1G misaligned', { start: 0x4000_0000, end: 0x6000_0000, flags: { hugetlb: '1G' } }, 'BAD_ADDRESS', ['0x60000000', '0x40000000'], 4],
    ['hugetlb pgoff not a multiple', { start: 0x60_0000, end: 0x80_0000, file: 2, pgoff: 8, flags: { hugetlb: '2M' } }, 'BAD_RANGE', ['0x8', '0x200'], 4],
    ['hugetlb size that does not exist', { start: 0x60_0000, end: 0x80_0000, flags: { hugetlb: '4M' as never } }, 'BAD_ORDER', ['4M'], 4],
    ['negative pgoff', { start: 0x60_0000, end: 0x70_0000, file: 1, pgoff: -5 }, 'BAD_RANGE', ['-5'], 4],
    ['fractional pgoff', { start: 0x60_0000, end: 0x70_0000, pgoff: 2.5 }, 'BAD_RANGE', ['2.5'], 4],
    ['pgoff + pages reaching 2^52', { start: 0x60_0000, end: 0x70_0000, file: 1, pgoff: 2 ** 52 - 256 }, 'BAD_RANGE', ['0xfffffffffff00'], 4],
    ['negative file id', { start: 0x60_0000, end: 0x70_0000, file: -1 }, 'BAD_SETTING', ['-1'], 4],
    ['unknown flag', { start: 0x60_0000, end: 0x70_0000, flags: { huge: true } as never }, 'BAD_SETTING', ['huge'], 4],
    ['non-boolean flag', { start: 0x60_0000, end: 0x70_0000, flags: { write: 1 } as never }, 'BAD_SETTING', ['write', '1'], 4],
    ['non-number start', { start: 'x' as never, end: 0x70_0000 }, 'BAD_ADDRESS', ['x'], 4],
  ];

  it.each(cases)('%s', (_name, spec, code, inMessage, levels) => {
    let n = 1;
    const s = new VmaSet(() => n++);
    const a = s.insert({ start: 0x10_0000, end: 0x20_0000 }, geometry(levels));
    const b = s.insert({ start: 0x20_0000, end: 0x30_0000, file: 4 }, geometry(levels));
    const before = s.all();
    const nBefore = n;
    expectPvmwError(() => s.insert(spec, geometry(levels)), code, ...inMessage);
    expect(s.all()).toBe(before);
    expect(s.size).toBe(2);
    expect(n).toBe(nBefore); // no id consumed
    expect(s.find(0x10_0000)).toBe(a);
    expect(s.find(0x2f_ffff)).toBe(b);
    expect(s.find(0x30_0000)).toBeUndefined();
    expect(s.find(0x60_0000)).toBeUndefined();
    expect(s.find(2 ** 47 - P)).toBeUndefined();
  });
});

describe('§1.3 VmaSet property: find() agrees with a linear scan', () => {
  it('random non-overlapping insertions (and removals), random lookups', () => {
    const slot = fc.record({
      startPage: fc.integer({ min: 0, max: 4096 }), // dense: many hits, clashes and adjacent VMAs
      pages: fc.integer({ min: 1, max: 64 }),
      base: fc.constantFrom(0, 2 ** 40, 2 ** 54), // low, above 2^32, above 2^53 (5-level only)
    });
    fc.assert(
      fc.property(
        fc.array(slot, { maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 4096 + 80 }), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (slots, probes, removals) => {
          const s = new VmaSet();
          const naive: Vma[] = [];
          for (const { startPage, pages, base } of slots) {
            const spec = { start: base + startPage * P, end: base + (startPage + pages) * P };
            const clash = naive.some((v) => v.start < spec.end && spec.start < v.end);
            if (clash) {
              expect(() => s.insert(spec, G5)).toThrow(PvmwError);
            } else {
              naive.push(s.insert(spec, G5));
            }
          }
          for (const r of removals) {
            if (naive.length === 0) break;
            const [v] = naive.splice(r % naive.length, 1);
            expect(s.remove(v!)).toBe(true);
          }
          expect(s.size).toBe(naive.length);
          const starts = s.all().map((v) => v.start);
          expect(starts).toEqual([...starts].sort((x, y) => x - y));
          for (const p of probes) {
            for (const addr of [p * P, p * P + 123, 2 ** 40 + p * P, 2 ** 54 + p * P, 2 ** 54 + p * P + 123]) {
              expect(s.find(addr)).toBe(naive.find((v) => v.start <= addr && addr < v.end));
            }
            for (const lo of [p * P, 2 ** 54 + p * P]) {
              const hi = lo + 8 * P;
              const want = naive.filter((v) => v.start < hi && lo < v.end).sort((x, y) => x.start - y.start);
              expect(s.overlapping(lo, hi)).toEqual(want);
              let covered = true;
              for (let a = lo; a < hi; a += P) covered &&= naive.some((v) => v.start <= a && a < v.end);
              expect(s.covers(lo, hi)).toBe(covered);
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
