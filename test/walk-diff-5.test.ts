// page_vma_mapped_walk, WebAssembly vs TypeScript reference, 5-level paging (issue 3 item 4). One file per
// paging mode so that vitest runs the two on both cores; the suite is test/walk-diff.ts.
import { walkDiffSuite } from './walk-diff.js';

walkDiffSuite(5);
