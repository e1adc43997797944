import type { FolioId } from '../model/folio.js';
import type { AnonVma } from './anon-vma.js';

/**
 * KSM's rmap objects (kernel-operations.md §8.1): a stable node per KSM folio, holding the rmap_items that
 * map it. An rmap_item records (mm, address) and the anon_vma of the VMA it was merged in.
 */
export interface RmapItem {
  mm: number;
  address: number;
  anonVma: AnonVma;
}

export interface StableNode {
  readonly id: number;
  /** The KSM folio (kpfn). */
  folio: FolioId;
  items: RmapItem[];
}

export class StableNodes {
  private readonly byId = new Map<number, StableNode>();
  private nextId = 1;

  create(folio: FolioId): StableNode {
    const node: StableNode = { id: this.nextId++, folio, items: [] };
    this.byId.set(node.id, node);
    return node;
  }

  get(id: number): StableNode | undefined {
    return this.byId.get(id);
  }

  remove(id: number): void {
    this.byId.delete(id);
  }

  all(): IterableIterator<StableNode> {
    return this.byId.values();
  }
}
