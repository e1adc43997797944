import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PvmwError } from '../src/errors.js';
import { type DecodeContext, decodeContext, decodeEntry, namespaceOf } from '../src/model/decode.js';
import {
  type RawEntry,
  type SoftleafSpec,
  decodePresent,
  encodePresent,
  encodeSoftleaf,
  encodeSwap,
  isTablePointer,
  rawFromBigInt,
} from '../src/model/entry.js';
import type { LevelName } from '../src/model/geometry.js';
import { DEFAULT_SETTINGS, type DeviceModel, type KernelConfig } from '../src/model/settings.js';
import { type SoftleafKind, isDevicePrivateKind, softleafTable } from '../src/model/softleaf.js';
import { expectPvmwError } from './helpers.js';
import type { PvmwErrorCode } from '../src/errors.js';

const ALL_ON: KernelConfig = { devicePrivate: true, migration: true, memoryFailure: true };
const ctxOf = (semantics: 'newest' | 'series', deviceModel: DeviceModel, swpPfnBits = 34): DecodeContext => ({
  table: softleafTable(ALL_ON, semantics),
  swpPfnBits,
  deviceModel,
});
const NEWEST_PFN = ctxOf('newest', 'pfn');
const NEWEST_OFF = ctxOf('newest', 'offset');
const SERIES_PFN = ctxOf('series', 'pfn');
const SERIES_OFF = ctxOf('series', 'offset');
const MODELS: DeviceModel[] = ['pfn', 'offset'];

/** A BAD_ENTRY (or `code`) error whose message names `needle`. */
const expectBad = (fn: () => unknown, needle: string, code: PvmwErrorCode = 'BAD_ENTRY'): void => {
  expectPvmwError(fn, code, needle);
};

const leaf = (ctx: DecodeContext, spec: SoftleafSpec, level: LevelName = 'pte') =>
  decodeEntry(encodeSoftleaf(ctx.table, ctx.swpPfnBits, spec), level, ctx);

describe('decodeEntry: none and table entries (§3.2 predicates)', () => {
  it('§3.2 a PTE is none by pte_none (A and D ignored); PMD/PUD/P4D/PGD none = all zero', () => {
    for (const lo of [0, 0x20, 0x40, 0x60]) {
      expect(decodeEntry({ lo, hi: 0 }, 'pte', NEWEST_PFN)).toEqual({
        kind: 'none', level: 'pte', huge: false, namespace: null, number: null,
        bits: { write: false, young: false, dirty: false, softDirty: false, uffdWp: false, exclusive: false },
      });
    }
    for (const level of ['pgd', 'p4d', 'pud', 'pmd'] as LevelName[]) {
      expect(decodeEntry({ lo: 0, hi: 0 }, level, NEWEST_PFN).kind).toBe('none');
    }
  });

  it('§3.2 a present entry without PSE at PGD/P4D/PUD/PMD is a table pointer', () => {
    const tbl = { lo: 0x12345067, hi: 0x0 }; // P, RW, USER, A, D + next-table address
    for (const level of ['pgd', 'p4d', 'pud', 'pmd'] as LevelName[]) {
      const d = decodeEntry(tbl, level, NEWEST_PFN);
      expect([d.kind, d.level, d.huge, d.namespace, d.number]).toEqual(['table', level, false, null, null]);
      expect(isTablePointer(level, tbl)).toBe(true);
    }
    expect(isTablePointer('pte', tbl)).toBe(false);
    expect(isTablePointer('pmd', encodePresent('pmd', 512, {}))).toBe(false);
  });
});

describe('decodeEntry: present entries (§3.2)', () => {
  it('§3.2 present PTE/PMD/PUD: pfn namespace, huge for PSE leaves, pte_dirty = D or SAVED_DIRTY', () => {
    const pte = decodeEntry(encodePresent('pte', 0x1234, { write: true, young: true, softDirty: true }), 'pte', NEWEST_OFF);
    expect(pte).toMatchObject({ kind: 'present', level: 'pte', huge: false, namespace: 'pfn', number: 0x1234 });
    expect(pte.bits).toEqual({ write: true, young: true, dirty: false, softDirty: true, uffdWp: false, exclusive: false });
    const pmd = decodeEntry(encodePresent('pmd', 0x400, { savedDirty: true, uffdWp: true }), 'pmd', NEWEST_PFN);
    expect(pmd).toMatchObject({ kind: 'present', huge: true, namespace: 'pfn', number: 0x400 });
    expect(pmd.bits).toMatchObject({ write: false, dirty: true, uffdWp: true });
    const pud = decodeEntry(encodePresent('pud', 2 ** 18 * 3, { protnone: true, dirty: true }), 'pud', NEWEST_PFN);
    expect(pud).toMatchObject({ kind: 'present', huge: true, number: 2 ** 18 * 3, present: { protnone: true } });
  });

  it('§3.2 decodeEntry of any present leaf agrees with decodePresent (property)', () => {
    const levelPfn = fc.constantFrom<'pte' | 'pmd' | 'pud'>('pte', 'pmd', 'pud').chain((l) => {
      const a = l === 'pte' ? 1 : l === 'pmd' ? 512 : 2 ** 18;
      return fc.tuple(fc.constant(l), fc.integer({ min: 0, max: 2 ** 40 / a - 1 }).map((x) => x * a));
    });
    const bits = fc.record({ write: fc.boolean(), young: fc.boolean(), dirty: fc.boolean(), savedDirty: fc.boolean(), protnone: fc.boolean(), softDirty: fc.boolean(), uffdWp: fc.boolean(), pkey: fc.integer({ min: 0, max: 15 }) });
    fc.assert(
      fc.property(levelPfn, bits, fc.constantFrom(...MODELS), ([level, pfn], b, model) => {
        const e = encodePresent(level, pfn, b);
        const d = decodeEntry(e, level, ctxOf('series', model));
        expect(d.kind).toBe('present');
        expect(d.huge).toBe(level !== 'pte');
        expect([d.namespace, d.number]).toEqual(['pfn', pfn]);
        expect(d.present).toEqual(decodePresent(level, e).bits);
        expect(d.bits).toEqual({ write: b.write, young: b.young, dirty: b.dirty || b.savedDirty, softDirty: b.softDirty, uffdWp: b.uffdWp, exclusive: false });
        expect(d.swap).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decodeEntry: §3.5 test vectors and namespaces (§4.4, D1)', () => {
  it('§3.5 vectors decode to kind, number and namespace in both device models', () => {
    const rows: [bigint, SoftleafKind, number | null, 'pfn' | 'device-private' | null][] = [
      [0xdfffffffffdb9600n, 'migration-write', 0x1234, 'pfn'],
      [0xcffff7ffffdb9600n, 'migration-read', 0x1234, 'pfn'],
      [0xe7ffffffdffffe00n, 'device-private-write', 0x100000, 'device-private'],
      [0xf7fffffffffff400n, 'device-exclusive', 5, 'pfn'],
      [0xc7ffffffffff7a00n, 'hwpoison', 0x42, 'pfn'],
      [0xfffffffffffff600n, 'marker', null, null],
      [0x07fffffffffffc00n, 'swap', null, null],
    ];
    for (const [v, kind, number, nsOffset] of rows) {
      const pfnModel = decodeEntry(rawFromBigInt(v), 'pte', NEWEST_PFN);
      const offModel = decodeEntry(rawFromBigInt(v), 'pte', NEWEST_OFF);
      expect([pfnModel.kind, pfnModel.number, pfnModel.namespace]).toEqual([kind, number, number === null ? null : 'pfn']);
      expect([offModel.kind, offModel.number, offModel.namespace]).toEqual([kind, number, nsOffset]);
      expect(pfnModel.swap).toBeDefined();
    }
    expect(decodeEntry(rawFromBigInt(0xcffff7ffffdb9600n), 'pte', NEWEST_PFN).bits.young).toBe(true);
    expect(decodeEntry(rawFromBigInt(0xfffffffffffff600n), 'pte', NEWEST_PFN).marker).toEqual({ uffdWp: false, poisoned: false, guard: true });
    expect(decodeEntry(rawFromBigInt(0x07fffffffffffc00n), 'pte', NEWEST_PFN).swap).toEqual({ type: 0, offset: 1 });
  });

  it('D1 a device-private-write entry with number 5: device-private in the offset model, pfn in the pfn model', () => {
    for (const [ctx, ns] of [[NEWEST_OFF, 'device-private'], [NEWEST_PFN, 'pfn'], [SERIES_OFF, 'device-private'], [SERIES_PFN, 'pfn']] as const) {
      const d = leaf(ctx, { kind: 'device-private-write', number: 5 });
      expect([d.kind, d.number, d.namespace, d.bits.write]).toEqual(['device-private-write', 5, ns, true]);
    }
  });

  it('§4.4 SERIES migration-device-private kinds carry device-private offsets in the offset model', () => {
    const kinds: SoftleafKind[] = ['migration-device-private-read', 'migration-device-private-read-exclusive', 'migration-device-private-write'];
    for (const kind of kinds) {
      const off = leaf(SERIES_OFF, { kind, number: 0x77, young: true, dirty: true } as SoftleafSpec);
      expect([off.kind, off.namespace, off.number, off.bits.young, off.bits.dirty]).toEqual([kind, 'device-private', 0x77, true, true]);
      expect(leaf(SERIES_PFN, { kind, number: 0x77 } as SoftleafSpec).namespace).toBe('pfn');
    }
  });

  it('§4.4 namespaceOf over every kind and model', () => {
    const kinds = Object.keys(softleafTable(ALL_ON, 'series').typeOf).concat('swap') as SoftleafKind[];
    for (const kind of kinds) {
      for (const model of MODELS) {
        const want = kind === 'swap' || kind === 'marker' ? null : model === 'offset' && isDevicePrivateKind(kind) ? 'device-private' : 'pfn';
        expect(namespaceOf(kind, model)).toBe(want);
      }
    }
  });
});

describe('decodeEntry: softleaf bits (§3.3, §3.5, §3.6)', () => {
  it('§3.6 write and exclusive follow the migration type; swap-format bits 1..3 are carried', () => {
    const row = (kind: SoftleafKind, flags = {}) => leaf(SERIES_PFN, { kind, number: 9, flags } as SoftleafSpec).bits;
    expect(row('migration-read')).toMatchObject({ write: false, exclusive: false });
    expect(row('migration-read-exclusive')).toMatchObject({ write: false, exclusive: true });
    expect(row('migration-write')).toMatchObject({ write: true, exclusive: true });
    expect(row('migration-device-private-read-exclusive')).toMatchObject({ write: false, exclusive: true });
    expect(row('migration-device-private-write')).toMatchObject({ write: true, exclusive: true });
    expect(row('device-private-read')).toMatchObject({ write: false, exclusive: false });
    expect(row('device-exclusive')).toMatchObject({ write: false, young: false, dirty: false });
    expect(row('migration-read', { exclusive: true, softDirty: true, uffdWp: true })).toEqual({
      write: false, young: false, dirty: false, softDirty: true, uffdWp: true, exclusive: true,
    });
    const m = leaf(NEWEST_PFN, { kind: 'marker', uffdWp: true, poisoned: true });
    expect([m.kind, m.namespace, m.number, m.marker]).toEqual(['marker', null, null, { uffdWp: true, poisoned: true, guard: false }]);
  });

  it('§3.4 PMD/PUD softleaves decode (migration, device-private, and others without rejection)', () => {
    const mig = leaf(NEWEST_PFN, { kind: 'migration-write', number: 0x200, dirty: true }, 'pmd');
    expect([mig.kind, mig.level, mig.huge, mig.number, mig.bits.dirty]).toEqual(['migration-write', 'pmd', false, 0x200, true]);
    expect(leaf(NEWEST_OFF, { kind: 'device-private-read', number: 0x400 }, 'pmd').namespace).toBe('device-private');
    expect(leaf(NEWEST_PFN, { kind: 'swap', swapType: 3, offset: 99 }, 'pmd').swap).toEqual({ type: 3, offset: 99 });
    expect(leaf(NEWEST_PFN, { kind: 'hwpoison', number: 1 }, 'pud').kind).toBe('hwpoison');
  });

  it('§3.5 decodeEntry inverts encodeSoftleaf for every kind, 4- and 5-level (property)', () => {
    const ctxArb = fc.tuple(fc.constantFrom<'newest' | 'series'>('newest', 'series'), fc.constantFrom(...MODELS), fc.constantFrom(34, 40))
      .map(([s, m, b]) => ctxOf(s, m, b));
    fc.assert(
      fc.property(ctxArb, fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 2 ** 40 - 1 }), fc.constantFrom<LevelName>('pte', 'pmd', 'pud'), (ctx, type, n, level) => {
        const kind = ctx.table.kindOf[type]!;
        const spec: SoftleafSpec =
          kind === 'swap' ? { kind, swapType: type, offset: n }
          : kind === 'marker' ? { kind, guard: true }
          : { kind, number: n % 2 ** ctx.swpPfnBits };
        const d = leaf(ctx, spec, level);
        expect(d.kind).toBe(kind);
        expect(d.swap?.type).toBe(type);
        expect(d.namespace).toBe(namespaceOf(kind, ctx.deviceModel));
        expect(d.number).toBe(kind === 'swap' || kind === 'marker' ? null : n % 2 ** ctx.swpPfnBits);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decodeEntry: values valid at no level → BAD_ENTRY (§3.2, §3.5)', () => {
  it('§3.2 non-present PGD/P4D, PSE at PGD/P4D, invalidated PMD, swap PTE with bit 7, bad halves, bad level', () => {
    expectBad(() => decodeEntry({ lo: 0x2, hi: 0 }, 'pgd', NEWEST_PFN), '0x0000000000000002');
    expectBad(() => decodeEntry({ lo: 0x81, hi: 0 }, 'p4d', NEWEST_PFN), '0x0000000000000081');
    expectBad(() => decodeEntry({ lo: 0x200080, hi: 0 }, 'pmd', NEWEST_PFN), '0x0000000000200080');
    expectBad(() => decodeEntry({ lo: 0x100, hi: 0x10 }, 'pmd', NEWEST_PFN), '0x0000001000000100');
    expectBad(() => decodeEntry({ lo: 0x80, hi: 1 }, 'pte', NEWEST_PFN), '0x0000000100000080');
    expectBad(() => decodeEntry({ lo: 2 ** 32, hi: 0 }, 'pte', NEWEST_PFN), '0x100000000');
    expectBad(() => decodeEntry({ lo: 1, hi: 0 }, 'pte4' as LevelName, NEWEST_PFN), 'pte4', 'BAD_SETTING');
  });

  it('§3.2 any 64-bit value at any level decodes or raises BAD_ENTRY, never anything else (property)', () => {
    const levels = fc.constantFrom<LevelName>('pgd', 'p4d', 'pud', 'pmd', 'pte');
    const rawArb: fc.Arbitrary<RawEntry> = fc.record({ lo: fc.integer({ min: 0, max: 2 ** 32 - 1 }), hi: fc.integer({ min: 0, max: 2 ** 32 - 1 }) });
    fc.assert(
      fc.property(rawArb, levels, fc.constantFrom(NEWEST_PFN, SERIES_OFF), (raw, level, ctx) => {
        try {
          const d = decodeEntry(raw, level, ctx);
          expect(d.level).toBe(level);
          expect(d.number === null).toBe(d.namespace === null);
        } catch (e) {
          expect(e).toBeInstanceOf(PvmwError);
          expect((e as PvmwError).code).toBe('BAD_ENTRY');
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decodeContext (D1, D5, §3.1)', () => {
  it('D5 defaults: NEWEST table, SWP_PFN_BITS 34; LA57 gives 40', () => {
    const c = decodeContext(DEFAULT_SETTINGS);
    expect([c.table.maxSwapfiles, c.swpPfnBits, c.deviceModel]).toEqual([24, 34, 'pfn']);
    expect(decodeContext({ ...DEFAULT_SETTINGS, paging: 5, semantics: 'series', deviceModel: 'offset' })).toMatchObject({ swpPfnBits: 40, deviceModel: 'offset', table: { maxSwapfiles: 21 } });
    expect(encodeSwap(0, 0)).toEqual({ lo: 0xfffffe00, hi: 0x07ffffff });
  });
});
