// pvmw WebAssembly engine: the exports the TypeScript loader (src/wasm/loader.ts) binds.

import { framesInit } from './frames';
import { memmapInit } from './memmap';
import { setLevels } from './pagetable';

/** Reset an instance to an empty machine with the given number of paging levels. False: no memory. */
export function init(levels: u32): bool {
  setLevels(levels);
  return framesInit() && memmapInit();
}

/** A scratch area of 256 bytes for results the host reads through a memory view (traces, statistics). */
const scratch = memory.data(256);
export function scratchPtr(): usize {
  return scratch;
}

export { memoryBytes, framesTop, framesFree, framesBase } from './frames';
export { errorAt, errorHeight, resultLo, resultHi, resultHeight } from './status';
export { ptAllocRoot, ptFreeRoot, ptLookup, ptSetRange, ptClearRange, ptAccountRange, ptStats, tablesInUse } from './pagetable';
export { rangeAdd, rangeStart, indexOf } from './ranges';
export { tagSet, tagGet, tagChunkCount } from './tags';
export {
  folioCreateRange, folioFree, folioOf, isFolio, folioOrder, folioFlags, folioMapping, folioIndex, entireMapcount,
  folioMapcount, pageMapcount, pageFlags, folioSetFlags, pageSetFlags, pageMapcountAdd, entireMapcountAdd, folioCount,
  folioSetMapping, sectionCount, sectionBytes, recordBytes, memmapFixedBytes, folioStats, nextFolio,
} from './memmap';
export { folioSplit } from './folio-split';
export { setSoftleafCode } from './softleaf';
export { setRmapConfig, entryMappedIndex, firstUnfitPage, firstOtherAnonVma } from './mapcount';
export { ptScan, ptSetBatch } from './pte-batch';
export { codecLeaf, codecLeafPfn, codecSwp, codecSwpType, codecSwpOffset, codecClassify } from './codec';
export { ptSplitPmd, ptFreePteTable, ptReplacePteTable } from './split';
export { bufferAlloc } from './frames';
export { walkRestart, walkEnd } from './walk';
export { setWalkSemantics } from './walk-match';
export { injectClear, injectAdd } from './walk-inject';
export { walkBatch, walkBegin, walkNext, walkCounters } from './walk-batch';
