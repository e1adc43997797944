// The WebAssembly hot-path codec (assembly/entry.ts) against the TypeScript codec (src/model/entry.ts):
// two independent implementations of spec §3.2–§3.5 must agree on every value of the valid domain.
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { WasmInstance } from '../src/wasm/loader.js';
import {
  encodePresent, encodeSwap, decodeSwap, encodeSoftleaf, rawToBigInt, rawFromBigInt, LEAF_PAGES, PFN_LIMIT, type PresentBits, type RawEntry,
} from '../src/model/entry.js';
import { decodeEntry } from '../src/model/decode.js';
import { softleafTable, softleafCodes, SOFTLEAF_CODE, type SoftleafKind } from '../src/model/softleaf.js';
import type { LeafLevel } from '../src/model/geometry.js';

const HEIGHT: Record<LeafLevel, number> = { pte: 0, pmd: 1, pud: 2 };
const RUNS = { numRuns: 1000 };
let w: WasmInstance;
const table = softleafTable({ devicePrivate: true, migration: true, memoryFailure: true }, 'series');

beforeAll(() => {
  w = new WasmInstance(64 * 1024 * 1024, 4);
  softleafCodes(table).forEach((code, type) => w.exports.setSoftleafCode(type, code));
});

const result = (): RawEntry => {
  const [lo, hi] = w.result();
  return { lo, hi };
};

const presentBits = fc.record({
  write: fc.boolean(), user: fc.boolean(), pwt: fc.boolean(), pcd: fc.boolean(), young: fc.boolean(), dirty: fc.boolean(),
  pat: fc.boolean(), special: fc.boolean(), uffdWp: fc.boolean(), softDirty: fc.boolean(), savedDirty: fc.boolean(),
  nx: fc.boolean(), protnone: fc.boolean(), pkey: fc.integer({ min: 0, max: 15 }),
}) as fc.Arbitrary<Partial<PresentBits>>;

const leaf = fc.constantFrom<LeafLevel>('pte', 'pmd', 'pud').chain((level) =>
  fc.record({
    level: fc.constant(level),
    pfn: fc.integer({ min: 0, max: PFN_LIMIT / LEAF_PAGES[level] - 1 }).map((n) => n * LEAF_PAGES[level]),
    bits: presentBits,
  }),
);

describe('§3.2 present leaves: WASM mkLeaf/leafPfn agree with the TypeScript codec', () => {
  it('encodes the same value, L1TF inversion included, and reads the pfn back', () => {
    fc.assert(
      fc.property(leaf, ({ level, pfn, bits }) => {
        const ts = encodePresent(level, pfn, bits);
        // The protection bits: the TypeScript value without its pfn field and without PSE (mkLeaf adds it).
        const field = level === 'pte' ? 0x000f_ffff_ffff_f000n : level === 'pmd' ? 0x000f_ffff_ffe0_0000n : 0x000f_ffff_c000_0000n;
        const prot = rawFromBigInt(rawToBigInt(ts) & ~field & ~(level === 'pte' ? 0n : 0x80n));
        w.exports.codecLeaf(pfn, HEIGHT[level], prot.lo, prot.hi);
        expect(result()).toEqual(ts);
        expect(w.exports.codecLeafPfn(ts.lo, ts.hi, HEIGHT[level])).toBe(pfn);
        expect(w.exports.codecClassify(ts.lo, ts.hi, HEIGHT[level])).toBe(2);
      }),
      RUNS,
    );
  });
});

describe('§3.5 swap format: WASM mkSwp/swpType/swpOffset agree with the TypeScript codec', () => {
  it('round-trips every type and 50-bit offset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 2 ** 50 - 1 }), (type, offset) => {
        const ts = encodeSwap(type, offset);
        w.exports.codecSwp(type, offset);
        expect(result()).toEqual(ts);
        expect(w.exports.codecSwpType(ts.lo, ts.hi)).toBe(type);
        expect(w.exports.codecSwpOffset(ts.lo, ts.hi)).toBe(offset);
        expect(decodeSwap(ts)).toMatchObject({ type, offset });
      }),
      RUNS,
    );
  });

  it('strips the soft-dirty, uffd-wp and exclusive bits before reading type and offset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 2 ** 50 - 1 }), fc.boolean(), fc.boolean(), fc.boolean(), (type, offset, softDirty, uffdWp, exclusive) => {
        const ts = encodeSwap(type, offset, { softDirty, uffdWp, exclusive });
        expect(w.exports.codecSwpType(ts.lo, ts.hi)).toBe(type);
        expect(w.exports.codecSwpOffset(ts.lo, ts.hi)).toBe(offset);
      }),
      RUNS,
    );
  });
});

describe('§3.4 softleaf classification: WASM and TypeScript name the same kind', () => {
  const kinds = (Object.keys(table.typeOf) as SoftleafKind[]).filter((k) => k !== 'marker');
  it('for every pfn-carrying kind of the series table, at PTE and PMD level', () => {
    fc.assert(
      fc.property(fc.constantFrom(...kinds), fc.integer({ min: 0, max: 2 ** 34 - 1 }), fc.constantFrom<LeafLevel>('pte', 'pmd'), (kind, number, level) => {
        const raw = encodeSoftleaf(table, 34, { kind: kind as never, number });
        const d = decodeEntry(raw, level, { table, swpPfnBits: 34, deviceModel: 'offset' });
        expect(d.kind).toBe(kind);
        expect(w.exports.codecClassify(raw.lo, raw.hi, HEIGHT[level])).toBe(16 + SOFTLEAF_CODE[kind]);
      }),
      RUNS,
    );
  });

  it('none and table pointers', () => {
    expect(w.exports.codecClassify(0, 0, 0)).toBe(0);
    expect(w.exports.codecClassify(0x60, 0, 0)).toBe(0); // pte_none ignores A and D (KNL erratum)
    expect(w.exports.codecClassify(0x1000 | 0x67, 0, 1)).toBe(1);
    expect(w.exports.codecClassify(0x1000 | 0x67, 0, 3)).toBe(1);
  });
});
