// Frame allocator: 4 KiB frames in WebAssembly linear memory, for page tables (one frame each), content-tag
// chunks (one frame) and memmap sections (SECTION_FRAMES frames). Memory grows on demand; growth past the
// ceiling the host set (the imported memory's maximum) fails and is reported, never trapped, so callers can
// reserve what an operation needs before changing anything (issue: "fails before it changes anything").

export const FRAME_SHIFT: u32 = 12;
export const FRAME_SIZE: u32 = 4096;
const WASM_PAGE: u32 = 65536;

/** Per-frame count of non-zero entries (u16), used to free emptied page tables. 2^20 frames = 4 GiB. */
let countBase: usize = 0;
/** First frame address handed out; frames are allocated upward from here. */
let frameBase: usize = 0;
let frameTop: usize = 0;
/** Free single frames, linked through their first 4 bytes. */
let freeHead: usize = 0;
let freeCount: u32 = 0;
/** Frames in use by purpose (statistics, memory budget). */
export let tagFrames: u32 = 0;
export let sectionFrames: u32 = 0;

export function framesInit(): bool {
  // The u16 count table sits right after the static data, then the frames.
  countBase = (__heap_base + 4095) & ~<usize>4095;
  frameBase = countBase + (<usize>1 << 21); // 2^20 frames × 2 bytes
  frameTop = frameBase;
  freeHead = 0;
  freeCount = 0;
  tagFrames = 0;
  sectionFrames = 0;
  return ensureBytes(<u64>frameBase);
}

/**
 * Grow memory so that [0, end) is addressable. Returns false (memory unchanged) if the ceiling forbids it.
 * Sizes are u64: a request near or past 4 GiB must fail, never wrap around.
 */
function ensureBytes(end: u64): bool {
  if (end > (<u64>1 << 32)) return false;
  const have = <u64>memory.size() * <u64>WASM_PAGE;
  if (end <= have) return true;
  const need = <i32>((end - have + WASM_PAGE - 1) / WASM_PAGE);
  // Grow by at least 1/8 of the current size to amortise, falling back to the exact need near the ceiling.
  const generous = max(need, <i32>(have / WASM_PAGE / 8));
  if (memory.grow(generous) >= 0) return true;
  return memory.grow(need) >= 0;
}

/** Ensure `n` single frames can be allocated without failing. */
export function reserveFrames(n: u32): bool {
  if (n <= freeCount) return true;
  return ensureBytes(<u64>frameTop + <u64>(n - freeCount) * FRAME_SIZE);
}

/** Ensure a block of `n` contiguous frames can be allocated. */
export function reserveBlock(n: u32): bool {
  return ensureBytes(<u64>frameTop + <u64>n * FRAME_SIZE);
}

/** A zeroed frame, or 0 if memory cannot grow. */
export function allocFrame(): usize {
  if (freeHead != 0) {
    const f = freeHead;
    freeHead = <usize>load<u32>(f);
    store<u32>(f, 0);
    freeCount--;
    return f;
  }
  if (!ensureBytes(<u64>frameTop + FRAME_SIZE)) return 0;
  const f = frameTop;
  frameTop += FRAME_SIZE;
  return f;
}

/** Return a frame that is all zero (an emptied table, a cleared tag chunk) to the free list. */
export function freeFrame(f: usize): void {
  store<u32>(f, <u32>freeHead);
  freeHead = f;
  freeCount++;
}

/** A zeroed block of `n` contiguous frames, or 0. Blocks are never split; freed ones are reused whole. */
export function allocBlock(n: u32): usize {
  if (!ensureBytes(<u64>frameTop + <u64>n * FRAME_SIZE)) return 0;
  const f = frameTop;
  frameTop += <usize>n * FRAME_SIZE;
  return f;
}

// Entry counts of table frames.
@inline export function countOf(frame: usize): u32 {
  return <u32>load<u16>(countBase + ((frame >> FRAME_SHIFT) << 1));
}
@inline export function countAdd(frame: usize, delta: i32): u32 {
  const p = countBase + ((frame >> FRAME_SHIFT) << 1);
  const c = <u32>(<i32>load<u16>(p) + delta);
  store<u16>(p, <u16>c);
  return c;
}

export function memoryBytes(): f64 {
  return <f64>memory.size() * <f64>WASM_PAGE;
}
export function framesTop(): f64 {
  return <f64>frameTop;
}
export function framesFree(): u32 {
  return freeCount;
}
export function framesBase(): f64 {
  return <f64>frameBase;
}

/** A zeroed buffer of `frames` frames for the host (walk jobs and results), or 0. */
export function bufferAlloc(frames: u32): usize {
  return allocBlock(frames);
}
