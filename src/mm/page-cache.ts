import type { FolioId } from '../model/folio.js';

/**
 * Files and their page caches (kernel-operations.md §5.7, §12.1): a file is a map (file id, page index) →
 * content tag for pages not in the page cache (absent = ZERO, a hole), and its page cache maps index → folio.
 */
export class PageCache {
  private readonly cache = new Map<number, Map<number, FolioId>>();
  private readonly content = new Map<number, Map<number, number>>();

  /** The page-cache folio holding page `index` of `file`, if cached (its head index ≤ index < head + pages). */
  lookup(file: number, index: number): FolioId | undefined {
    return this.cache.get(file)?.get(index);
  }

  /** Record a cached folio of `nrPages` pages from `index`. */
  insert(file: number, index: number, nrPages: number, folio: FolioId): void {
    let m = this.cache.get(file);
    if (!m) this.cache.set(file, (m = new Map()));
    for (let i = 0; i < nrPages; i++) m.set(index + i, folio);
  }

  remove(file: number, index: number, nrPages: number): void {
    const m = this.cache.get(file);
    for (let i = 0; i < nrPages; i++) m?.delete(index + i);
  }

  /** The on-disk content tag of a file page (D8; 0 = ZERO for holes). */
  fileTag(file: number, index: number): number {
    return this.content.get(file)?.get(index) ?? 0;
  }

  setFileTag(file: number, index: number, tag: number): void {
    let m = this.content.get(file);
    if (!m) this.content.set(file, (m = new Map()));
    m.set(index, tag);
  }
}
