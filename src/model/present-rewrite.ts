import { decodePresent, encodePresent, PAGE_PRESENT, PFN_HI_MASK, PFN_LO_MASK, type PresentBits, type RawEntry } from './entry.js';
import type { LeafLevel } from './geometry.js';

/**
 * A rewrite of present leaves' bits, `encodePresent(level, pfn, fn(decodePresent(level, raw).bits))` with the
 * entry's own pfn, memoized per distinct value of the bits outside the PFN field: decodePresent reads the bits
 * from outside the field only, and encodePresent puts the pfn into the field alone (inverted iff the result is
 * protnone, so the field is copied, or copied inverted when P changes). One decode and encode per distinct
 * flag pattern instead of one per entry. `fn` must be a pure function of the bits; the entries must have u32
 * halves (as read from the tables: a remembered pattern is not checked again).
 */
export class PresentRewrite {
  private readonly memo = new Map<number, RawEntry>();
  private readonly mask: number;
  /** The last key looked up and its memo (runs of entries with the same bits are the rule). */
  private lastKey = -1;
  private last: RawEntry | undefined;

  constructor(
    private readonly level: LeafLevel,
    private readonly fn: (bits: PresentBits) => Partial<PresentBits>,
  ) {
    this.mask = PFN_LO_MASK[level];
  }

  apply(e: RawEntry): RawEntry {
    const key = (e.lo & ~this.mask) + (e.hi >>> 20) * 0x40000000; // below the field in lo (≤ 30 bits), hi from bit 20
    if (key === this.lastKey) return this.put(this.last!, e);
    const m = this.memo.get(key);
    if (m !== undefined) {
      this.lastKey = key;
      this.last = m;
      return this.put(m, e);
    }
    const d = decodePresent(this.level, e);
    const out = encodePresent(this.level, d.pfn, this.fn(d.bits));
    // The result's bits outside the field, and in bit 0 of hi (a field bit, never a flag) whether P changed.
    const flip = ((out.lo ^ e.lo) & PAGE_PRESENT) !== 0 ? 1 : 0;
    const memo = { lo: (out.lo & ~this.mask) >>> 0, hi: ((out.hi & ~PFN_HI_MASK) | flip) >>> 0 };
    const check = this.put(memo, e);
    if (check.lo === out.lo && check.hi === out.hi) this.memo.set(key, memo); // else: never memoized, always coded
    return out;
  }

  private put(m: RawEntry, e: RawEntry): RawEntry {
    const flip = (m.hi & 1) !== 0;
    const lo = flip ? ~e.lo : e.lo;
    const hi = flip ? ~e.hi : e.hi;
    return { lo: ((lo & this.mask) | m.lo) >>> 0, hi: ((hi & PFN_HI_MASK) | (m.hi & ~1)) >>> 0 };
  }
}
