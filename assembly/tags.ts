// Content tags (D8): one u32 per page in 4 KiB chunks, created on the first non-zero tag of their 1024
// pages; each 2^15 pages have a directory frame of their 32 chunk pointers, created with their first chunk.
// A page without a chunk has tag 0, ZERO. The caller checks that tagged pages belong to folios.

import { allocBlock, allocFrame, reserveFrames } from './frames';
import { OK, E_NOMEM, fail } from './status';

const DIR_SHIFT: u32 = 15;
const DIR_PAGES: u32 = 1 << DIR_SHIFT;
const DIR_TABLE_FRAMES: u32 = (4 << 17) >> 12; // one directory pointer per 2^15 pages of the u32 index space
const TAG_SHIFT: u32 = 10; // 1024 u32 tags per 4 KiB chunk

let tagDirs: usize = 0;
let nTagFrames: u32 = 0;

export function tagsInit(): bool {
  tagDirs = allocBlock(DIR_TABLE_FRAMES);
  nTagFrames = 0;
  return tagDirs != 0;
}
export function tagsFixedBytes(): u32 {
  return DIR_TABLE_FRAMES << 12;
}
/** Tag chunks and directories, 4 KiB each. */
export function tagChunkCount(): u32 {
  return nTagFrames;
}

@inline function tagDirOf(g: u64): usize {
  return <usize>load<u32>(tagDirs + (<usize>(g >> DIR_SHIFT) << 2));
}
@inline function tagChunkSlot(dir: usize, g: u64): usize {
  return dir + (<usize>((g & (DIR_PAGES - 1)) >> TAG_SHIFT) << 2);
}
@inline function tagOffset(g: u64): usize {
  return <usize>(g & ((1 << TAG_SHIFT) - 1)) << 2;
}

export function tagClear(g: u64, n: u64): void {
  for (let i: u64 = 0; i < n; i++) {
    const dir = tagDirOf(g + i);
    if (dir == 0) continue;
    const c = <usize>load<u32>(tagChunkSlot(dir, g + i));
    if (c != 0) store<u32>(c + tagOffset(g + i), 0);
  }
}

/** Set the tag of n pages from g (the caller checked they belong to folios). E_NOMEM if chunks cannot be
 *  created; nothing changes then. */
export function tagSet(gf: f64, n: u32, tag: u32): i32 {
  const g = <u64>gf;
  const end = g + <u64>n;
  if (tag != 0) {
    let need: u32 = 0;
    for (let c = g >> TAG_SHIFT; c <= (end - 1) >> TAG_SHIFT; c++) {
      const dir = tagDirOf(c << TAG_SHIFT);
      if (dir == 0) need++;
      if (dir == 0 || load<u32>(tagChunkSlot(dir, c << TAG_SHIFT)) == 0) need++;
    }
    if (need > 0 && !reserveFrames(need)) return fail(E_NOMEM, gf);
  }
  for (let p = g; p < end; p++) {
    let dir = tagDirOf(p);
    if (dir == 0) {
      if (tag == 0) continue;
      dir = allocFrame();
      store<u32>(tagDirs + (<usize>(p >> DIR_SHIFT) << 2), <u32>dir);
      nTagFrames++;
    }
    const slot = tagChunkSlot(dir, p);
    let c = <usize>load<u32>(slot);
    if (c == 0) {
      if (tag == 0) continue;
      c = allocFrame();
      store<u32>(slot, <u32>c);
      nTagFrames++;
    }
    store<u32>(c + tagOffset(p), tag);
  }
  return OK;
}
export function tagGet(gf: f64): u32 {
  const g = <u64>gf;
  const dir = tagDirOf(g);
  if (dir == 0) return 0;
  const c = <usize>load<u32>(tagChunkSlot(dir, g));
  return c == 0 ? 0 : load<u32>(c + tagOffset(g));
}
