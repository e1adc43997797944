// Fixtures of the munmap and zap tests (ops-munmap.test.ts, ops-zap.test.ts; kernel-operations.md §2): one mm
// with an anon VMA (THP allowed) and a shared file VMA of file 7.
import { Engine } from '../src/index.js';
import { zeroPages } from '../src/mm/leaf.js';

export const P = 4096;
export const M2 = 0x200000;
export const ANON = 0x400000; // anon VMA [4 MiB, 12 MiB), THP allowed
export const FILE = 0x1000000; // shared file VMA of file 7, [16 MiB, 20 MiB), pgoff 0

export function space() {
  const e = new Engine({ ramPages: 1 << 16, deviceChunkPages: 4096 });
  zeroPages(e);
  const mm = e.createMm();
  mm.addVma({ start: ANON, end: ANON + 4 * M2, flags: { thp: true } });
  mm.addVma({ start: FILE, end: FILE + 2 * M2, file: 7, flags: { shared: true, thp: true } });
  return { e, mm };
}
