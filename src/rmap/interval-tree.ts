/**
 * The pgoff interval tree of spec §6.1 (anon_vma->rb_root of AVCs, address_space->i_mmap of VMAs): items keyed
 * by a page-offset interval [first, last]. Queries yield the items overlapping [first, last] in tree order:
 * by first, and items with equal first in insertion order (decisions.md D6; the kernel inserts an equal key
 * to the right).
 *
 * Kept as an array sorted by (first, insertion sequence) with binary-search insertion and a query that stops
 * at the first item starting after `last`. A fork tree puts every VMA of a range under one key, so the query
 * reports nearly every item it reads; an augmented tree would only help sparse queries.
 */
export class PgoffTree<T> {
  private items: { first: number; last: number; seq: number; item: T }[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  insert(item: T, first: number, last: number): void {
    const e = { first, last, seq: this.seq++, item };
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid].first <= first) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, e);
  }

  /** Remove an item (by identity). False if it is not in the tree. */
  remove(item: T): boolean {
    const i = this.items.findIndex((e) => e.item === item);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }

  /** Items whose interval overlaps [first, last], in tree order. */
  *query(first: number, last: number): Generator<T> {
    for (const e of this.items) {
      if (e.first > last) return;
      if (e.last >= first) yield e.item;
    }
  }

  /** Every item, in tree order. */
  *all(): Generator<T> {
    for (const e of this.items) yield e.item;
  }
}
