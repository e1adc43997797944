// pvmw public API (DESIGN.md §2): the Engine, its model types, entry codecs and the error type.
export { Engine, type MmId, type MemoryUsage } from './model/engine.js';
export { Mm, type MapSpec, type EntrySpec, type PresentSpec, type Translation, type TraceStep } from './model/mm.js';
export { type FolioId, type FolioSpec, type FolioInfo, type PageInfo, type HugetlbSize, FOLIO_FLAG } from './model/folio.js';
export { type MemoryRange, type RangeKind } from './model/physmem.js';
export { type Vma, type VmaSpec, type VmaFlags, vmaAddress, vmaAddressEnd, linearPageIndex, thpVmaSuitableOrder, EFAULT } from './model/vma.js';
export { geometry, type Geometry, type LevelName, type LeafLevel, PAGE_SIZE, PMD_SIZE, PUD_SIZE } from './model/geometry.js';
export { resolveSettings, DEFAULT_SETTINGS, type EngineOptions, type EngineSettings, type Semantics, type DeviceModel, type KernelConfig } from './model/settings.js';
export { softleafTable, type SoftleafKind, type SoftleafTable } from './model/softleaf.js';
export {
  encodePresent, decodePresent, encodeSwap, decodeSwap, encodeSoftleaf, decodeSoftleaf, rawFromBigInt, rawToBigInt, rawHex,
  type RawEntry, type PresentBits, type SoftleafSpec,
} from './model/entry.js';
export { decodeEntry, type DecodedEntry, type Namespace } from './model/decode.js';
export { checkInvariants, type InvariantReport, type InvariantProblem } from './model/invariants.js';
export { PvmwError, type PvmwErrorCode } from './errors.js';
export {
  pageVmaMappedWalk, pageMappedInVma, walkBatch, prepareBatch, runBatch, openWalk,
  type Walker, type WalkRequest, type BatchResult, type PreparedBatch,
} from './walk/pvmw.js';
export { referenceWalk, referencePageMappedInVma, openReferenceWalk, type ReferenceWalker } from './walk/reference.js';
export {
  PVMW_SYNC, PVMW_MIGRATION, PVMW_DEVICE_PRIVATE, PVMW_PGTABLE_CROSSED,
  type WalkKey, type WalkMatch, type WalkLock, type LockKind, type WalkCounters, type WalkResult, type Injection,
} from './walk/types.js';
