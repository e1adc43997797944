import { PvmwError } from '../errors.js';
import { vmaPages, type Vma } from '../model/vma.js';
import { PgoffTree } from './interval-tree.js';

/**
 * anon_vma and anon_vma_chain (spec §6.1; kernel-operations.md §1.2, §2.2, §4.2 step 3, §5.3 step 4). An
 * anon_vma's tree holds the AVCs of every VMA that may map its folios, keyed by the VMA's pgoff interval; a
 * VMA's chain lists one AVC per anon_vma it is linked to (its own and its ancestors'). Folios name their
 * anon_vma by id (folio->mapping).
 */
export interface AnonVma {
  readonly id: number;
  root: AnonVma;
  parent: AnonVma | null;
  /** Child anon_vmas made by fork (num_children). */
  numChildren: number;
  /** VMAs whose own anon_vma this is (num_active_vmas). */
  numActiveVmas: number;
  readonly tree: PgoffTree<Avc>;
}

export interface Avc {
  readonly vma: Vma;
  readonly anonVma: AnonVma;
}

function interval(vma: Vma): [number, number] {
  return [vma.pgoff, vma.pgoff + vmaPages(vma) - 1];
}

export class AnonVmas {
  private readonly byId = new Map<number, AnonVma>();
  private readonly chains = new Map<number, Avc[]>();
  private readonly own = new Map<number, AnonVma>();
  private nextId = 1;

  get(id: number): AnonVma | undefined {
    return this.byId.get(id);
  }

  get count(): number {
    return this.byId.size;
  }

  /** The VMA's own anon_vma (vma->anon_vma), or null. */
  of(vma: Vma): AnonVma | null {
    return this.own.get(vma.id) ?? null;
  }

  /** The VMA's chain (vma->anon_vma_chain), oldest link first. */
  chain(vma: Vma): readonly Avc[] {
    return this.chains.get(vma.id) ?? [];
  }

  /** Is the VMA linked to this anon_vma (an AVC in its chain)? */
  linked(vma: Vma, av: AnonVma): boolean {
    return this.chain(vma).some((c) => c.anonVma === av);
  }

  private create(id = this.nextId): AnonVma {
    const av: AnonVma = { id, root: undefined as unknown as AnonVma, parent: null, numChildren: 0, numActiveVmas: 0, tree: new PgoffTree() };
    av.root = av;
    this.byId.set(id, av);
    this.nextId = Math.max(this.nextId, id + 1);
    return av;
  }

  private link(vma: Vma, av: AnonVma): void {
    const avc: Avc = { vma, anonVma: av };
    const [first, last] = interval(vma);
    av.tree.insert(avc, first, last);
    let c = this.chains.get(vma.id);
    if (!c) this.chains.set(vma.id, (c = []));
    c.push(avc);
  }

  /**
   * anon_vma_prepare (§5.3 step 4): give an anonymous VMA an anon_vma before its first anon folio. A new root
   * anon_vma (the kernel may instead reuse a mergeable neighbour's; pvmw always makes a new one).
   */
  prepare(vma: Vma): AnonVma {
    const have = this.of(vma);
    if (have) return have;
    const av = this.create();
    av.numActiveVmas = 1;
    this.own.set(vma.id, av);
    this.link(vma, av);
    return av;
  }

  /**
   * A folio placed by hand names anon_vma `id` (Mm.map): make that anon_vma exist (a root, if new) and link
   * the VMA to it, so rmap finds the mapping. A VMA without an anon_vma takes it as its own.
   */
  adopt(vma: Vma, id: number): AnonVma {
    if (!Number.isSafeInteger(id) || id < 0) throw new PvmwError('BAD_SETTING', `anon_vma id ${String(id)} is not a whole number`);
    const av = this.byId.get(id) ?? this.create(id);
    if (!this.linked(vma, av)) {
      this.link(vma, av);
      if (!this.own.has(vma.id)) {
        this.own.set(vma.id, av);
        av.numActiveVmas++;
      }
    }
    return av;
  }

  /**
   * anon_vma_clone (split, mremap's copy_vma): `dst` gets an AVC for every anon_vma of `src`'s chain and the
   * same own anon_vma (its active count + 1).
   */
  clone(dst: Vma, src: Vma): void {
    for (const c of this.chain(src)) this.link(dst, c.anonVma);
    const av = this.of(src);
    if (av) {
      this.own.set(dst.id, av);
      av.numActiveVmas++;
    }
  }

  /**
   * anon_vma_fork (§1.2): clone the parent's chain into the child VMA, reusing an anon_vma of the chain that
   * has no active VMAs and at most one child (fork only); else a new anon_vma under the parent's.
   */
  fork(child: Vma, parent: Vma): void {
    const pav = this.of(parent);
    if (!pav) return;
    let reuse: AnonVma | null = null;
    for (const c of this.chain(parent)) {
      this.link(child, c.anonVma);
      const av = c.anonVma;
      if (!reuse && av.numActiveVmas === 0 && av.numChildren < 2) reuse = av;
    }
    if (reuse) {
      this.own.set(child.id, reuse);
      reuse.numActiveVmas++;
      return;
    }
    const av = this.create();
    av.root = pav.root;
    av.parent = pav;
    av.numActiveVmas = 1;
    pav.numChildren++;
    this.own.set(child.id, av);
    this.link(child, av);
  }

  /**
   * unlink_anon_vmas (munmap, exit; mremap DONTUNMAP of a whole VMA): remove the VMA's AVCs; an anon_vma left
   * with no AVCs and no children is freed (its parent's child count drops). Folios naming a freed anon_vma are
   * unmapped, so no rmap walk reaches it.
   */
  unlink(vma: Vma): void {
    const av = this.own.get(vma.id);
    if (av) av.numActiveVmas--;
    this.own.delete(vma.id);
    const c = this.chains.get(vma.id) ?? [];
    this.chains.delete(vma.id);
    for (let i = c.length - 1; i >= 0; i--) {
      const a = c[i].anonVma;
      a.tree.remove(c[i]);
      this.maybeFree(a);
    }
  }

  private maybeFree(a: AnonVma): void {
    if (a.tree.size > 0 || a.numChildren > 0 || !this.byId.has(a.id)) return;
    this.byId.delete(a.id);
    if (a.parent) {
      a.parent.numChildren--;
      this.maybeFree(a.parent);
    }
  }

  /** Re-key a VMA's AVCs after its bounds or pgoff changed (vma_interval_tree pre/post update). */
  rekey(vma: Vma): void {
    const c = this.chains.get(vma.id) ?? [];
    for (const avc of c) {
      avc.anonVma.tree.remove(avc);
      const [first, last] = interval(vma);
      avc.anonVma.tree.insert(avc, first, last);
    }
  }

  /** AVCs of anon_vma `av` overlapping [first, last], in tree order (rmap_walk_anon step 3). */
  query(av: AnonVma, first: number, last: number): Generator<Avc> {
    return av.tree.query(first, last);
  }
}
