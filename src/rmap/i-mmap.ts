import { vmaPages, type Vma } from '../model/vma.js';
import { PgoffTree } from './interval-tree.js';

/** The i_mmap trees of spec §6.1: per file, its VMAs keyed by [vm_pgoff, vm_pgoff + pages − 1]. */
export class IMmap {
  private readonly files = new Map<number, PgoffTree<Vma>>();

  insert(vma: Vma): void {
    if (vma.file === null) return;
    let t = this.files.get(vma.file);
    if (!t) this.files.set(vma.file, (t = new PgoffTree()));
    t.insert(vma, vma.pgoff, vma.pgoff + vmaPages(vma) - 1);
  }

  remove(vma: Vma): void {
    if (vma.file === null) return;
    const t = this.files.get(vma.file);
    if (t?.remove(vma) && t.size === 0) this.files.delete(vma.file);
  }

  /** Is the VMA in its file's tree? */
  has(vma: Vma): boolean {
    if (vma.file === null) return false;
    for (const v of this.query(vma.file, vma.pgoff, vma.pgoff)) if (v === vma) return true;
    return false;
  }

  /** VMAs of `file` overlapping [first, last], in tree order (rmap_walk_file step 2). */
  *query(file: number, first: number, last: number): Generator<Vma> {
    const t = this.files.get(file);
    if (t) yield* t.query(first, last);
  }
}
