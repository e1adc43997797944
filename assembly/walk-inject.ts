// D4 race injection (decisions.md D4): a walk meets a concurrent change at the points where the kernel
// re-checks. The host names the point, the change and which arrival (nth); when the walk (walk.ts) gets there,
// the change is made to the tables (split.ts), and the walk then takes the kernel's branch.

import { pmdSplit, pteTableFree, pteTableReplace } from './split';

// --- D4 race injection -----------------------------------------------------------------------------------

export const INJ_HUGE_READ: u32 = 1;
export const INJ_DEVICE_READ: u32 = 2;
export const INJ_MAP_PTE: u32 = 3;
export const INJ_MAP_PTE_LOCK: u32 = 4;
export const INJ_NEXT_PTE_LOCK: u32 = 5;
export const CHG_SPLIT_PMD: u32 = 1;
export const CHG_FREE_PTE_TABLE: u32 = 2;
export const CHG_REPLACE_PTE_TABLE: u32 = 3;
const MAX_INJ: u32 = 8;
const injPoint = memory.data(4 * 8);
const injChange = memory.data(4 * 8);
const injNth = memory.data(4 * 8);
const arrivals = memory.data(4 * 8);
let nInj: u32 = 0;

export function injectClear(): void {
  nInj = 0;
}
export function injectAdd(point: u32, change: u32, nth: u32): bool {
  if (nInj >= MAX_INJ) return false;
  store<u32>(injPoint + (nInj << 2), point);
  store<u32>(injChange + (nInj << 2), change);
  store<u32>(injNth + (nInj << 2), nth);
  nInj++;
  return true;
}

/** Forget the arrivals of the previous walk (a new walk counts from 1). */
export function injectReset(): void {
  memory.fill(arrivals, 0, 4 * 8);
}

/** The walk reaches an injection point at va: apply the changes due at this arrival (the engine mutation). */
export function arrive(point: u32, wRoot: usize, address: u64): void {
  if (nInj == 0) return;
  const a = arrivals + (<usize>point << 2);
  const n = load<u32>(a) + 1;
  store<u32>(a, n);
  for (let i: u32 = 0; i < nInj; i++) {
    if (load<u32>(injPoint + (i << 2)) != point || load<u32>(injNth + (i << 2)) != n) continue;
    const c = load<u32>(injChange + (i << 2));
    if (c == CHG_SPLIT_PMD) pmdSplit(wRoot, address);
    else if (c == CHG_FREE_PTE_TABLE) pteTableFree(wRoot, address);
    else if (c == CHG_REPLACE_PTE_TABLE) pteTableReplace(wRoot, address);
  }
}
