import { PvmwError, hex } from '../errors.js';

/**
 * Swap space (kernel-operations.md §1.4 SWAP row, §5.5, §12.1): slots of swap type 0 holding the content tag of
 * the page written there and a swap count (one per swap PTE naming the slot). A slot is freed when its count
 * drops to zero. Offsets start at 1 and grow; freed offsets are reused lowest-first.
 */
export class SwapSpace {
  private readonly slots = new Map<number, { tag: number; count: number }>();
  private next = 1;
  private readonly freed: number[] = [];

  /** A new slot with the page's tag and count 1. */
  alloc(tag: number): number {
    const offset = this.freed.length > 0 ? this.freed.pop()! : this.next++;
    this.slots.set(offset, { tag, count: 1 });
    return offset;
  }

  private slot(offset: number) {
    const s = this.slots.get(offset);
    if (!s) throw new PvmwError('BAD_ENTRY', `swap offset ${hex(offset)} names no allocated swap slot`);
    return s;
  }

  has(offset: number): boolean {
    return this.slots.has(offset);
  }

  tag(offset: number): number {
    return this.slot(offset).tag;
  }

  count(offset: number): number {
    return this.slots.get(offset)?.count ?? 0;
  }

  /** swap_duplicate (fork): count + 1. */
  dup(offset: number): void {
    this.slot(offset).count++;
  }

  /** swap_free: count − 1, the slot freed at zero. */
  put(offset: number): void {
    const s = this.slot(offset);
    if (--s.count === 0) {
      this.slots.delete(offset);
      this.freed.push(offset);
      this.freed.sort((a, b) => b - a);
    }
  }

  get used(): number {
    return this.slots.size;
  }
}
