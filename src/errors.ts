/**
 * The one error class of pvmw. Every rejected input or exhausted resource raises a PvmwError with a stable
 * `code`; the message names the bad value (and, for files, its JSON path). A rejected operation leaves the
 * engine exactly as it was (DESIGN.md §3 "Errors"; decisions.md D7).
 */
export type PvmwErrorCode =
  | 'BAD_SETTING' // unknown setting name or value (D1, D5)
  | 'BAD_ADDRESS' // misaligned, or beyond the paging mode's user space (spec §3.1)
  | 'BAD_ORDER' // a folio order or hugetlb size that does not exist
  | 'BAD_RANGE' // empty, wrapped or otherwise malformed range
  | 'VMA_OVERLAP' // a VMA overlaps an existing one
  | 'NO_VMA' // an entry or lookup outside any VMA
  | 'PFN_RANGE' // a pfn beyond physical memory, or an offset beyond device memory
  | 'FOLIO_BUSY' // pages already belong to another folio
  | 'NO_FOLIO' // a folio id or number that names no folio
  | 'BAD_ENTRY' // an entry value that is not valid at that level
  | 'ENTRY_CONFLICT' // a leaf where a table is, a PTE under a huge leaf, or a range that splits a huge leaf
  | 'MM_FREED' // an mm that was freed (or never existed)
  | 'MEMORY_LIMIT' // the engine's wasm32 memory ceiling would be passed
  | 'INTERNAL'; // a WebAssembly trap: a pvmw bug

export class PvmwError extends Error {
  readonly code: PvmwErrorCode;
  /** JSON path of the bad value, for file input (e.g. "$.processes[2].vmas[0].start"). */
  readonly path?: string;

  constructor(code: PvmwErrorCode, message: string, path?: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'PvmwError';
    this.code = code;
    this.path = path;
  }
}

/** Format a number as the kernel would print an address or pfn. */
export function hex(n: number | bigint): string {
  return '0x' + n.toString(16);
}
