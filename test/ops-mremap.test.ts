// mremap (kernel-operations.md §4.1 the argument/error rows a simulator has, in kernel order; §4.2 shrink and
// grow in place or by a move): entries, mapcounts, rmap reachability, invariants; rejected calls change nothing.
// Moves themselves (§4.2 move_vma, §4.3 per entry kind) are in ops-mremap-move.test.ts.
import { describe, expect, it } from 'vitest';
import { PMD_SIZE, PUD_SIZE } from '../src/index.js';
import { leavesIn } from '../src/mm/leaf.js';
import { MMAP_BASE } from '../src/mm/mmap.js';
import { mremap, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE } from '../src/mm/mremap.js';
import { expectPvmwError } from './helpers.js';
import { engineSnapshot, expectClean, leafAtOrThrow as at, rmapFinds } from './ops-helpers.js';
import { A, B, END, MOVE, P, anon, setup, vmas } from './ops-mremap-helpers.js';

describe('§4.1 arguments and errors', () => {
  function space() {
    const s = setup();
    anon(s.e, s.vma, A, 0x1000);
    s.mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    const h = s.mm.addVma({ start: 4 * PUD_SIZE, end: 4 * PUD_SIZE + 2 * PMD_SIZE, flags: { hugetlb: '2M' } });
    const sh = s.mm.addVma({ start: 6 * PUD_SIZE, end: 6 * PUD_SIZE + 4 * P, file: 9, flags: { shared: true } });
    const far = s.mm.addVma({ start: 8 * PUD_SIZE, end: 8 * PUD_SIZE + 4 * P, file: 10, pgoff: 2 ** 52 - 100 });
    s.mm.addVma({ start: END, end: END + P }); // a neighbour: growing in place is impossible
    return { ...s, h, sh, far };
  }

  it('§4.1 every rejected row returns its errno, in kernel order, and changes nothing', () => {
    const { e, mm, h, far } = space();
    const T = e.geometry.taskSize;
    const H = h.start;
    const before = engineSnapshot(e);
    const cases: [number, number, number, object, string, string][] = [
      [A + 1, P, P, { flags: 8 }, 'EINVAL', 'flags other than MAYMOVE/FIXED/DONTUNMAP (before alignment)'],
      [A + 1, P, P, {}, 'EINVAL', 'old_address not page aligned'],
      [A, P, 0, {}, 'EINVAL', 'new_len 0'],
      [A, P, T + P, {}, 'EINVAL', 'new_len > TASK_SIZE'],
      [A, P, P, { ...MOVE, newAddr: T }, 'EINVAL', 'FIXED: new_address > TASK_SIZE − new_len'],
      [A, P, P, { ...MOVE, newAddr: B + 1 }, 'EINVAL', 'FIXED: new_address not aligned'],
      [A, P, P, { fixed: true, newAddr: B }, 'EINVAL', 'FIXED without MAYMOVE'],
      [A, P, P, { dontunmap: true, newAddr: B }, 'EINVAL', 'DONTUNMAP without MAYMOVE'],
      [A, P, 2 * P, { maymove: true, dontunmap: true, newAddr: B }, 'EINVAL', 'DONTUNMAP with old_len != new_len'],
      [A, 4 * P, 4 * P, { ...MOVE, newAddr: A + 2 * P }, 'EINVAL', 'FIXED: old and new ranges overlap'],
      [A, 4 * P, 2 * P, { ...MOVE, newAddr: A - P }, 'EINVAL', 'overlap at the low end'],
      [A, P, P, { ...MOVE, maxMapCount: 10 }, 'ENOMEM', 'FIXED: map_count + 2 ≥ max_map_count − 3 (5 VMAs)'],
      [B, P, 2 * P, { maymove: true }, 'EFAULT', 'no VMA contains old_address'],
      [B, P, P, { ...MOVE, newAddr: 2 * B }, 'EFAULT', 'pure move: no VMA in the range'],
      [A - P, 2 * P, 2 * P, { ...MOVE, newAddr: 2 * B }, 'EFAULT', 'pure move: a gap at the very start'],
      [H + P, P, P, {}, 'EINVAL', 'hugetlb: old_address not huge-page aligned'],
      [H, PMD_SIZE, 2 * PMD_SIZE, { maymove: true }, 'EINVAL', 'hugetlb: growing'],
      [H, PMD_SIZE, PMD_SIZE, { newAddr: P }, 'EINVAL', 'hugetlb: new_address (even unused) not aligned'],
      [H, PMD_SIZE, PMD_SIZE, { maymove: true, dontunmap: true, newAddr: B }, 'EINVAL', 'DONTUNMAP on a VM_DONTEXPAND (hugetlb) VMA'],
      [H, 2 * PMD_SIZE, PMD_SIZE, { ...MOVE }, 'EFAULT', 'resizing move of a VM_DONTEXPAND (hugetlb) VMA'],
      [A, 0, P, { maymove: true }, 'EINVAL', 'old_len 0 on a private mapping'],
      [END - P, 2 * P, 4 * P, { maymove: true }, 'EFAULT', 'old range past the VMA end (not a shrink)'],
      [far.start, 4 * P, 200 * P, { maymove: true }, 'EINVAL', 'growing: pgoff overflow'],
      [END - 4 * P, 4 * P, 8 * P, {}, 'ENOMEM', 'growing, not in place (a neighbour), no MAYMOVE'],
      [A, 4 * P, 8 * P, {}, 'ENOMEM', 'growing a range that does not end at vm_end, no MAYMOVE'],
      [A, 4 * P, 8 * P, { maymove: true, maxMapCount: 8 }, 'ENOMEM', 'moving: map_count ≥ max_map_count − 3'],
    ];
    for (const [addr, oldLen, newLen, opts, errno, what] of cases) {
      expect(mremap(e, mm, addr, oldLen, newLen, opts), what).toEqual({ ok: false, errno });
      expect(engineSnapshot(e), what).toBe(before);
    }
    expectClean(e);
  });

  it('§4.1 flags may be given as kernel bits', () => {
    const { e, mm } = space();
    expect(mremap(e, mm, A, P, P, { flags: MREMAP_MAYMOVE | MREMAP_FIXED, newAddr: B })).toEqual({ ok: true, value: B });
    expect(mremap(e, mm, B, P, P, { flags: MREMAP_MAYMOVE | MREMAP_DONTUNMAP | 0x10, newAddr: 2 * B })).toEqual({ ok: false, errno: 'EINVAL' });
    expectClean(e);
  });

  it('§4.1 input the syscall could never see is a PvmwError, nothing changed', () => {
    const { e, mm } = space();
    const before = engineSnapshot(e);
    expectPvmwError(() => mremap(e, mm, 'a' as never, P, P), 'BAD_ADDRESS', 'a');
    expectPvmwError(() => mremap(e, mm, A, 1.5, P), 'BAD_RANGE', '1.5');
    expectPvmwError(() => mremap(e, mm, A, P, P, { mayMove: true } as never), 'BAD_SETTING', 'mayMove');
    expectPvmwError(() => mremap(e, mm, A, P, P, { fixed: 1 } as never), 'BAD_SETTING', 'fixed');
    expectPvmwError(() => mremap(e, mm, A, P, P, { flags: -1 }), 'BAD_SETTING', '-1');
    expect(engineSnapshot(e)).toBe(before);
  });

  it('§4.1 same size without a new address: nothing happens, the address is returned', () => {
    const { e, mm } = space();
    const before = engineSnapshot(e);
    expect(mremap(e, mm, A, 4 * P, 4 * P)).toEqual({ ok: true, value: A });
    expect(engineSnapshot(e)).toBe(before);
  });
});

describe('§4.2 shrink and grow', () => {
  it('§4.2 shrink = unmap of the tail: its pages are unmapped (and freed), the head stays', () => {
    const { e, mm, vma } = setup({}, { end: A + 8 * P });
    const f0 = anon(e, vma, A, 0x1000);
    const f1 = anon(e, vma, A + 6 * P, 0x1001);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.map(A + 6 * P, { entry: { kind: 'present', number: 0x1001, write: true } });
    expect(mremap(e, mm, A, 8 * P, 4 * P)).toEqual({ ok: true, value: A });
    expect(vmas(mm)).toEqual([[A, A + 4 * P, A / P]]);
    expect(leavesIn(e, mm, A, A + 8 * P).map((l) => l.va)).toEqual([A]);
    expect(e.folios.exists(f1)).toBe(false);
    expect(e.folio(f0).mapcount).toBe(1);
    expectClean(e);
  });

  it('§4.2 grow in place: the VMA is extended (same pgoff, same anon_vma), entries untouched; it merges with a compatible neighbour', () => {
    const { e, mm, vma } = setup({}, { end: A + 4 * P });
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.addVma({ start: A + 8 * P, end: A + 12 * P, flags: { thp: true } }); // pgoff continues: mergeable, unfaulted
    const av = e.rmap.anon.of(vma);
    const raw = at(e, mm, A).raw;
    expect(mremap(e, mm, A, 4 * P, 8 * P)).toEqual({ ok: true, value: A });
    expect(vmas(mm)).toEqual([[A, A + 12 * P, A / P]]);
    expect(e.rmap.anon.of(mm.vmas.find(A)!)).toBe(av);
    expect(at(e, mm, A).raw).toEqual(raw);
    expect(rmapFinds(e, f)).toEqual([A]);
    expectClean(e);
  });

  it('§4.2 grow that cannot stay in place, with MAYMOVE: moved to a free area found top-down below the mmap base', () => {
    const { e, mm, vma } = setup({}, { end: A + 4 * P });
    const f = anon(e, vma, A, 0x1000);
    mm.map(A, { entry: { kind: 'present', number: 0x1000, write: true } });
    mm.addVma({ start: A + 4 * P, end: A + 8 * P, flags: { exec: true } });
    const r = mremap(e, mm, A, 4 * P, 8 * P, { maymove: true });
    const to = MMAP_BASE - 8 * P;
    expect(r).toEqual({ ok: true, value: to });
    expect(vmas(mm)).toEqual([[A + 4 * P, A + 8 * P, A / P + 4], [to, to + 8 * P, A / P]]);
    expect(at(e, mm, to).entry.number).toBe(0x1000);
    expect(e.folio(f)).toMatchObject({ index: A / P, mapcount: 1 });
    expect(rmapFinds(e, f)).toEqual([to]);
    expectClean(e);
  });
});
