import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PvmwError } from '../src/errors.js';
import type { LeafLevel } from '../src/model/geometry.js';
import {
  type PresentBits,
  type RawEntry,
  type SoftleafSpec,
  decodePresent,
  decodeSoftleaf,
  decodeSwap,
  encodePresent,
  encodeSoftleaf,
  encodeSwap,
  isTablePointer,
  pmdPresent,
  pteNone,
  ptePresent,
  pteProtnone,
  rawFromBigInt,
  rawHex,
  rawToBigInt,
  softleafValue,
} from '../src/model/entry.js';
import { type SoftleafTable, isMigration, softleafTable } from '../src/model/softleaf.js';
import type { KernelConfig, Semantics } from '../src/model/settings.js';
import { expectPvmwError } from './helpers.js';
import type { PvmwErrorCode } from '../src/errors.js';

const RUNS = { numRuns: 1000 };
const ALL_ON: KernelConfig = { devicePrivate: true, migration: true, memoryFailure: true };
const NEWEST = softleafTable(ALL_ON, 'newest');

/** Expect fn to throw a PvmwError with this code whose message names `needle`. */
/** A BAD_ENTRY (or `code`) error whose message names `needle`. */
const expectBad = (fn: () => unknown, needle: string, code: PvmwErrorCode = 'BAD_ENTRY'): void => {
  expectPvmwError(fn, code, needle);
};

const h = (n: number) => '0x' + n.toString(16);
const isU32 = (x: number) => Number.isInteger(x) && x >= 0 && x < 2 ** 32;
const big = (e: RawEntry) => rawToBigInt(e);

// ---------------------------------------------------------------------------------------------------------
describe('§3.5 test vectors (4-level, all configs on, NEWEST numbering)', () => {
  const vectors: { name: string; spec: SoftleafSpec; x86: bigint; arch?: bigint; number: number | null; young: boolean }[] = [
    { name: 'migration-write (27), pfn 0x1234', spec: { kind: 'migration-write', number: 0x1234 }, x86: 0xdfffffffffdb9600n, arch: 0x6c00000000001234n, number: 0x1234, young: false },
    { name: 'migration-read (25), pfn 0x1234 + young', spec: { kind: 'migration-read', number: 0x1234, young: true }, x86: 0xcffff7ffffdb9600n, number: 0x1234, young: true },
    { name: 'device-private-write (28), pfn 0x100000', spec: { kind: 'device-private-write', number: 0x100000 }, x86: 0xe7ffffffdffffe00n, number: 0x100000, young: false },
    { name: 'device-exclusive (30), pfn 5', spec: { kind: 'device-exclusive', number: 5 }, x86: 0xf7fffffffffff400n, number: 5, young: false },
    { name: 'hwpoison (24), pfn 0x42', spec: { kind: 'hwpoison', number: 0x42 }, x86: 0xc7ffffffffff7a00n, number: 0x42, young: false },
    { name: 'marker (31), GUARD', spec: { kind: 'marker', guard: true }, x86: 0xfffffffffffff600n, arch: 0x7c00000000000004n, number: null, young: false },
    { name: 'swapfile type 0, offset 1', spec: { kind: 'swap', swapType: 0, offset: 1 }, x86: 0x07fffffffffffc00n, arch: 0x1n, number: null, young: false },
  ];

  for (const v of vectors) {
    it(`§3.5 encode: ${v.name} → ${v.x86.toString(16)}`, () => {
      const e = encodeSoftleaf(NEWEST, 34, v.spec);
      expect(rawHex(e)).toBe('0x' + v.x86.toString(16).padStart(16, '0'));
      expect(isU32(e.lo) && isU32(e.hi)).toBe(true);
    });
    it(`§3.5 decode: ${v.name}`, () => {
      const d = decodeSoftleaf(NEWEST, 34, rawFromBigInt(v.x86));
      expect(d.kind).toBe(v.spec.kind);
      expect(d.number).toBe(v.number);
      expect(d.young).toBe(v.young);
      expect(d.dirty).toBe(false);
      expect([d.softDirty, d.uffdWp, d.exclusive]).toEqual([false, false, false]);
      if (v.arch !== undefined) expect(softleafValue(d.type, d.offset)).toBe(v.arch);
    });
    it(`§3.5 flag variants +0x2/+0x4/+0x8: ${v.name}`, () => {
      const cases = [
        { add: 0x2n, flags: { softDirty: true } },
        { add: 0x4n, flags: { uffdWp: true } },
        { add: 0x8n, flags: { exclusive: true } },
        { add: 0xen, flags: { softDirty: true, uffdWp: true, exclusive: true } },
      ];
      for (const c of cases) {
        expect(big(encodeSoftleaf(NEWEST, 34, { ...v.spec, flags: c.flags }))).toBe(v.x86 + c.add);
        const d = decodeSoftleaf(NEWEST, 34, rawFromBigInt(v.x86 + c.add));
        expect(d.kind).toBe(v.spec.kind);
        expect(d.number).toBe(v.number);
        expect({ softDirty: d.softDirty, uffdWp: d.uffdWp, exclusive: d.exclusive }).toEqual({
          softDirty: false,
          uffdWp: false,
          exclusive: false,
          ...c.flags,
        });
      }
    });
  }

  it('§3.3 arch-independent values of migration-write / marker / swap', () => {
    expect(softleafValue(27, 0x1234)).toBe(0x6c00000000001234n);
    expect(softleafValue(31, 4)).toBe(0x7c00000000000004n);
    expect(softleafValue(0, 1)).toBe(1n);
    expectBad(() => softleafValue(32, 0), '0x20');
    expectBad(() => softleafValue(0, 2 ** 58), '0x400000000000000');
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('§3.4 softleaf type tables', () => {
  const pick = (t: SoftleafTable) => ({ max: t.maxSwapfiles, ...t.typeOf });

  it('§3.4 NEWEST, all configs on: swap 0–23, hwpoison 24, migration 25–27, device 28–30, marker 31', () => {
    expect(pick(NEWEST)).toEqual({
      max: 24, hwpoison: 24, 'migration-read': 25, 'migration-read-exclusive': 26, 'migration-write': 27,
      'device-private-write': 28, 'device-private-read': 29, 'device-exclusive': 30, marker: 31,
    });
  });

  it('§3.4 SERIES (SWP_DEVICE_NUM = 6): swap 0–20, hwpoison 21 … migration-device-private 28–30, marker 31', () => {
    expect(pick(softleafTable(ALL_ON, 'series'))).toEqual({
      max: 21, hwpoison: 21, 'migration-read': 22, 'migration-read-exclusive': 23, 'migration-write': 24,
      'device-private-write': 25, 'device-private-read': 26, 'device-exclusive': 27,
      'migration-device-private-read': 28, 'migration-device-private-read-exclusive': 29,
      'migration-device-private-write': 30, marker: 31,
    });
  });

  it('§3.4 no CONFIG_DEVICE_PRIVATE: MAX_SWAPFILES 27, hwpoison 27, migration 28–30, marker 31', () => {
    for (const sem of ['newest', 'series', 'v6.14'] as Semantics[]) {
      expect(pick(softleafTable({ ...ALL_ON, devicePrivate: false }, sem))).toEqual({
        max: 27, hwpoison: 27, 'migration-read': 28, 'migration-read-exclusive': 29, 'migration-write': 30, marker: 31,
      });
    }
  });

  it('§3.4 every configuration assigns each of the 32 type values exactly once, marker always 31', () => {
    for (const t of allTables()) {
      expect(t.table.kindOf.every((k) => k !== undefined)).toBe(true);
      expect(t.table.typeOf.marker).toBe(31);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
/** Reference model of §3.2 in BigInt, written from the bit table independently of entry.ts. */
const PFN_MASK_BIG: Record<LeafLevel, bigint> = { pte: 0x000ffffffffff000n, pmd: 0x000fffffffe00000n, pud: 0x000fffffc0000000n };
function presentRef(level: LeafLevel, pfn: number, b: PresentBits): bigint {
  const bit = (c: boolean, n: number) => (c ? 1n << BigInt(n) : 0n);
  let v = bit(!b.protnone, 0) | bit(b.protnone || b.global, 8) | bit(b.write, 1) | bit(b.user, 2) | bit(b.pwt, 3);
  v |= bit(b.pcd, 4) | bit(b.young, 5) | bit(b.dirty, 6) | bit(level !== 'pte', 7) | bit(b.special, 9);
  v |= bit(b.uffdWp, 10) | bit(b.softDirty, 11) | bit(b.pat, level === 'pte' ? 7 : 12) | bit(b.savedDirty, 58);
  v |= bit(b.nx, 63) | (BigInt(b.pkey) << 59n);
  let field = BigInt(pfn) << 12n;
  if (b.protnone) field = ~field & PFN_MASK_BIG[level];
  return v | field;
}

const bool = fc.boolean();
const presentBitsArb: fc.Arbitrary<PresentBits> = fc
  .record({
    write: bool, user: bool, pwt: bool, pcd: bool, young: bool, dirty: bool, global: bool, pat: bool, special: bool,
    uffdWp: bool, softDirty: bool, savedDirty: bool, nx: bool, protnone: bool, pkey: fc.integer({ min: 0, max: 15 }),
  })
  .map((b) => ({ ...b, global: b.global && !b.protnone })); // bit 8 is GLOBAL only when P = 1
const ALIGN: Record<LeafLevel, number> = { pte: 1, pmd: 512, pud: 2 ** 18 };
const pfnArb = (level: LeafLevel) => fc.integer({ min: 0, max: 2 ** 40 / ALIGN[level] - 1 }).map((x) => x * ALIGN[level]);
const levelArb = fc.constantFrom<LeafLevel>('pte', 'pmd', 'pud');

describe('§3.2 present entries', () => {
  it('§3.2 decodePresent(encodePresent(x)) == x for PTE/PMD/PUD, all bit combinations, protnone', () => {
    fc.assert(
      fc.property(levelArb.chain((l) => fc.tuple(fc.constant(l), pfnArb(l), presentBitsArb)), ([level, pfn, bits]) => {
        const e = encodePresent(level, pfn, bits);
        expect(isU32(e.lo) && isU32(e.hi)).toBe(true);
        expect(big(e)).toBe(presentRef(level, pfn, bits));
        expect(decodePresent(level, e)).toEqual({ pfn, bits });
        expect(ptePresent(e)).toBe(true);
        expect(pteNone(e)).toBe(false);
        expect(pteProtnone(e)).toBe(bits.protnone);
        expect(pmdPresent(e)).toBe(true);
        expect(isTablePointer(level, e)).toBe(false);
      }),
      RUNS,
    );
  });

  it('§3.2 L1TF inversion: a protnone PTE stores NOT(pfn) in bits 12..51; decodePresent restores the pfn', () => {
    const e = encodePresent('pte', 0x1234, { protnone: true, young: true });
    const field = (big(e) >> 12n) & (2n ** 40n - 1n);
    expect(field).toBe(~0x1234n & (2n ** 40n - 1n));
    expect(big(e) & 0x1ffn).toBe(0x120n); // P clear, PROTNONE (bit 8) and A set
    expect(decodePresent('pte', e).pfn).toBe(0x1234);
    const pmd = encodePresent('pmd', 0x200 * 7, { protnone: true });
    expect((big(pmd) >> 21n) & (2n ** 31n - 1n)).toBe(~7n & (2n ** 31n - 1n));
    expect(decodePresent('pmd', pmd)).toMatchObject({ pfn: 0x200 * 7, bits: { protnone: true, global: false } });
    fc.assert(
      fc.property(pfnArb('pte'), (pfn) => {
        const p = encodePresent('pte', pfn, { protnone: true });
        expect((big(p) >> 12n) & (2n ** 40n - 1n)).toBe(~BigInt(pfn) & (2n ** 40n - 1n));
        expect(decodePresent('pte', p).pfn).toBe(pfn);
      }),
      { numRuns: 500 },
    );
  });

  it('§3.2 PMD/PUD leaves set PSE; PAT moves to bit 12; pte_none ignores A and D', () => {
    expect(big(encodePresent('pmd', 512, {}))).toBe(0x200081n);
    expect(big(encodePresent('pud', 2 ** 18, { pat: true }))).toBe(0x40001081n);
    expect(big(encodePresent('pte', 1, { pat: true }))).toBe(0x1081n);
    expect(pteNone({ lo: 0x60, hi: 0 })).toBe(true);
    expect(pteNone({ lo: 0x2, hi: 0 })).toBe(false);
    expect(pmdPresent({ lo: 0x80, hi: 0 })).toBe(true);
  });

  it('§3.2 outside the domain: pfn ≥ 2^40, misaligned huge pfns, pkey > 15, protnone+global → BAD_ENTRY', () => {
    expectBad(() => encodePresent('pte', 2 ** 40, {}), '0x10000000000');
    expectBad(() => encodePresent('pte', -1, {}), '-1');
    expectBad(() => encodePresent('pte', 1.5, {}), '1.5');
    expectBad(() => encodePresent('pmd', 513, {}), '0x201');
    expectBad(() => encodePresent('pud', 512, {}), '0x200');
    expectBad(() => encodePresent('pte', 0, { pkey: 16 }), '0x10');
    expectBad(() => encodePresent('pte', 0x77, { protnone: true, global: true }), '0x77');
    expectBad(() => encodePresent('pgd' as LeafLevel, 0, {}), 'pgd', 'BAD_SETTING');
    expectBad(() => decodePresent('pte', { lo: 0x1000, hi: 0 }), '0x0000000000001000');
    expectBad(() => decodePresent('pmd', { lo: 0x1001, hi: 0 }), '0x0000000000001001');
    fc.assert(
      fc.property(levelArb, fc.integer({ min: 2 ** 40, max: Number.MAX_SAFE_INTEGER }), (level, pfn) => {
        expectBad(() => encodePresent(level, pfn - (pfn % ALIGN[level]), {}), h(pfn - (pfn % ALIGN[level])));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.constantFrom<LeafLevel>('pmd', 'pud'), fc.integer({ min: 0, max: 2 ** 40 - 1 }), (level, pfn) => {
        fc.pre(pfn % ALIGN[level] !== 0);
        expectBad(() => encodePresent(level, pfn, {}), h(pfn));
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
/** §3.5's own encode rule in BigInt: NOT(offset) << 14 (64-bit), >> 5 (logical), | type << 59. */
function swapRef(type: number, offset: number, flags: { softDirty: boolean; uffdWp: boolean; exclusive: boolean }): bigint {
  const M64 = 2n ** 64n - 1n;
  let v = (((~BigInt(offset) & M64) << 14n) & M64) >> 5n;
  v |= BigInt(type) << 59n;
  return v | (flags.softDirty ? 2n : 0n) | (flags.uffdWp ? 4n : 0n) | (flags.exclusive ? 8n : 0n);
}
const flagsArb = fc.record({ softDirty: bool, uffdWp: bool, exclusive: bool });

describe('§3.5 swap-format entries', () => {
  it('§3.5 decodeSwap(encodeSwap(x)) == x over type 0..31, offset 0..2^50−1, all flags', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 2 ** 50 - 1 }), flagsArb, (type, offset, flags) => {
        const e = encodeSwap(type, offset, flags);
        expect(isU32(e.lo) && isU32(e.hi)).toBe(true);
        expect(big(e)).toBe(swapRef(type, offset, flags));
        expect(big(e) & 0x181n).toBe(0n); // bits 0, 7, 8 clear
        expect(ptePresent(e) || pmdPresent(e)).toBe(false);
        expect(decodeSwap(e)).toEqual({ type, offset, ...flags });
      }),
      RUNS,
    );
  });

  it('§3.5 outside the domain: offset ≥ 2^50, type ≥ 32, negative or fractional → BAD_ENTRY naming the value', () => {
    expectBad(() => encodeSwap(0, 2 ** 50), '0x4000000000000');
    expectBad(() => encodeSwap(32, 0), '0x20');
    expectBad(() => encodeSwap(-1, 0), '-1');
    expectBad(() => encodeSwap(0, 0.5), '0.5');
    expectBad(() => decodeSwap({ lo: 0x101, hi: 0 }), '0x0000000000000101');
    expectBad(() => decodeSwap({ lo: 0x80, hi: 0 }), '0x0000000000000080');
    expectBad(() => decodeSwap({ lo: -1, hi: 0 }), '-1');
    fc.assert(
      fc.property(fc.integer({ min: 2 ** 50, max: Number.MAX_SAFE_INTEGER }), (offset) => expectBad(() => encodeSwap(1, offset), h(offset))),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 32, max: 2 ** 31 }), (type) => expectBad(() => encodeSwap(type, 0), h(type))),
      { numRuns: 500 },
    );
  });

  it('§3.5 raw edge helpers: BigInt ↔ halves ↔ 16-digit hex', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (b) => {
        const e = rawFromBigInt(b);
        expect(isU32(e.lo) && isU32(e.hi)).toBe(true);
        expect(rawToBigInt(e)).toBe(b);
        expect(rawHex(e)).toBe('0x' + b.toString(16).padStart(16, '0'));
      }),
      { numRuns: 500 },
    );
    expectBad(() => rawFromBigInt(2n ** 64n), '0x10000000000000000');
    expectBad(() => rawFromBigInt(-1n), '-1');
  });
});

// ---------------------------------------------------------------------------------------------------------
const CONFIGS: KernelConfig[] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ devicePrivate: !!(i & 1), migration: !!(i & 2), memoryFailure: !!(i & 4) }));
function allTables(): { sem: Semantics; config: KernelConfig; table: SoftleafTable }[] {
  return (['newest', 'series'] as Semantics[]).flatMap((sem) => CONFIGS.map((config) => ({ sem, config, table: softleafTable(config, sem) })));
}

/** A valid SoftleafSpec for a table and SWP_PFN_BITS. */
function specArb(table: SoftleafTable, bits: number): fc.Arbitrary<SoftleafSpec> {
  const kinds = ['swap', ...Object.keys(table.typeOf)] as SoftleafSpec['kind'][];
  return fc.tuple(fc.constantFrom(...kinds), flagsArb).chain(([kind, flags]): fc.Arbitrary<SoftleafSpec> => {
    if (kind === 'swap') {
      return fc.record({ swapType: fc.integer({ min: 0, max: table.maxSwapfiles - 1 }), offset: fc.integer({ min: 0, max: 2 ** 50 - 1 }) })
        .map((s) => ({ kind, ...s, flags }));
    }
    if (kind === 'marker') {
      return fc.record({ uffdWp: bool, poisoned: bool, guard: bool }).filter((m) => m.uffdWp || m.poisoned || m.guard)
        .map((m) => ({ kind, ...m, flags }));
    }
    const mig = isMigration(kind);
    return fc.record({ number: fc.integer({ min: 0, max: 2 ** bits - 1 }), young: mig ? bool : fc.constant(false), dirty: mig ? bool : fc.constant(false) })
      .map((p) => ({ kind, ...p, flags }));
  });
}

describe('§3.3/§3.4 softleaves with meaning', () => {
  for (const { sem, config, table } of allTables()) {
    for (const bits of [34, 40]) {
      const name = `${sem} ${JSON.stringify(config)} SWP_PFN_BITS=${bits}`;
      it(`§3.3 decodeSoftleaf(encodeSoftleaf(x)) == x: ${name}`, () => {
        fc.assert(
          fc.property(specArb(table, bits), (spec) => {
            const d = decodeSoftleaf(table, bits, encodeSoftleaf(table, bits, spec));
            expect(d.kind).toBe(spec.kind);
            expect({ softDirty: d.softDirty, uffdWp: d.uffdWp, exclusive: d.exclusive }).toEqual(spec.flags);
            if (spec.kind === 'swap') {
              expect([d.type, d.offset, d.number]).toEqual([spec.swapType, spec.offset, null]);
            } else if (spec.kind === 'marker') {
              expect(d.type).toBe(table.typeOf.marker);
              expect(d.markerBits).toBe((spec.uffdWp ? 1 : 0) | (spec.poisoned ? 2 : 0) | (spec.guard ? 4 : 0));
            } else {
              expect(d.type).toBe(table.typeOf[spec.kind]);
              expect([d.number, d.young, d.dirty]).toEqual([spec.number, !!spec.young, !!spec.dirty]);
              expect(d.offset).toBe(spec.number + (spec.young ? 2 ** bits : 0) + (spec.dirty ? 2 ** (bits + 1) : 0));
            }
          }),
          { numRuns: 500 },
        );
      });
    }
  }

  it('§3.4 decodeSoftleaf classifies every type value by the table', () => {
    for (const { table } of allTables()) {
      for (let t = 0; t < 32; t++) expect(decodeSoftleaf(table, 34, encodeSwap(t, 0)).kind).toBe(table.kindOf[t]);
    }
  });

  it('§3.3 outside the domain: number ≥ 2^SWP_PFN_BITS, A/D on non-migration kinds, empty markers, absent kinds', () => {
    expectBad(() => encodeSoftleaf(NEWEST, 34, { kind: 'hwpoison', number: 2 ** 34 }), '0x400000000');
    expectBad(() => encodeSoftleaf(NEWEST, 40, { kind: 'migration-read', number: 2 ** 40 }), '0x10000000000');
    expectBad(() => encodeSoftleaf(NEWEST, 34, { kind: 'device-exclusive', number: 5, young: true }), 'device-exclusive');
    expectBad(() => encodeSoftleaf(NEWEST, 34, { kind: 'device-private-read', number: 0x77, dirty: true }), '0x77');
    expectBad(() => encodeSoftleaf(NEWEST, 34, { kind: 'marker' }), '0x0');
    expectBad(() => encodeSoftleaf(NEWEST, 34, { kind: 'swap', swapType: 24, offset: 0 }), '0x18');
    expectBad(() => encodeSoftleaf(NEWEST, 34, { kind: 'migration-device-private-read', number: 1 }), 'migration-device-private-read');
    const noDev = softleafTable({ ...ALL_ON, devicePrivate: false }, 'series');
    expectBad(() => encodeSoftleaf(noDev, 34, { kind: 'device-private-write', number: 1 }), 'device-private-write');
    expectBad(() => encodeSoftleaf(softleafTable({ ...ALL_ON, migration: false }, 'newest'), 34, { kind: 'migration-write', number: 1 }), 'migration-write');
    expectBad(() => encodeSoftleaf(NEWEST, 49, { kind: 'hwpoison', number: 1 }), '49', 'BAD_SETTING');
    for (const bits of [34, 40]) {
      fc.assert(
        fc.property(fc.integer({ min: 2 ** bits, max: Number.MAX_SAFE_INTEGER }), (n) => {
          expectBad(() => encodeSoftleaf(NEWEST, bits, { kind: 'migration-write', number: n }), h(n));
        }),
        { numRuns: 500 },
      );
    }
  });
});
