import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { FolioId, FolioSpec } from '../model/folio.js';
import { folioAge } from './folio-age.js';

/**
 * The page allocator of the operations layer: where a new folio lands in RAM is a simulator decision
 * (kernel-operations.md §13 "Physical placement"). pvmw takes the lowest free, naturally aligned block of
 * RAM at or above a cursor per order, and reuses freed blocks of the same order first (LIFO, like a buddy
 * free list), so placement is deterministic for a given history (D6). Returns null when RAM is exhausted
 * (the fault path reports OOM).
 */
export class FolioAllocator {
  private readonly cursor = new Map<number, number>();
  private readonly freed = new Map<number, number[]>();

  constructor(private readonly engine: Engine) {}

  /** A new folio of `spec` (its number chosen here); null if no RAM block of that order is free. */
  alloc(spec: Omit<FolioSpec, 'number' | 'namespace'>): FolioId | null {
    const order = spec.hugetlb === '1G' ? 18 : spec.hugetlb === '2M' ? 9 : (spec.order ?? 0);
    const nr = 2 ** order;
    const ram = this.engine.memory.all().find((r) => r.kind === 'ram');
    if (!ram) return null;
    const list = this.freed.get(order);
    while (list && list.length > 0) {
      const n = list.pop()!;
      const id = this.tryCreate(spec, n);
      if (id !== null) return id;
    }
    let n = this.cursor.get(order) ?? ram.base;
    n = Math.ceil(n / nr) * nr;
    const end = ram.base + ram.pages;
    while (n + nr <= end) {
      const id = this.tryCreate(spec, n);
      if (id !== null) {
        this.cursor.set(order, n + nr);
        return id;
      }
      n += nr;
    }
    return null;
  }

  private tryCreate(spec: Omit<FolioSpec, 'number' | 'namespace'>, number: number): FolioId | null {
    try {
      return this.engine.createFolio({ ...spec, number });
    } catch (e) {
      if (e instanceof PvmwError && e.code === 'FOLIO_BUSY') return null;
      throw e;
    }
  }

  /** Free a folio and remember its block for reuse. */
  free(id: FolioId): void {
    const f = this.engine.folio(id);
    this.engine.freeFolio(id);
    folioAge(this.engine).forget(id); // the allocator resets page flags (PG_idle, PG_young)
    if (this.engine.memory.rangeOf(f.namespace, f.number)?.kind !== 'ram') return;
    let list = this.freed.get(f.order);
    if (!list) this.freed.set(f.order, (list = []));
    list.push(f.number);
  }
}
