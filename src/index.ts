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

// Operations (kernel-operations.md) and the reverse map (spec §5, §6): issue 4.
export { type Errno, type SysResult, type FaultOutcome } from './mm/errno.js';
export { opsState, setOpsPolicy, type OpsPolicy } from './mm/state.js';
export { leavesIn, viewLeaf, zeroPages, type LeafView, type EntryKindName } from './mm/leaf.js';
export { mmap, type MmapRequest } from './mm/mmap.js';
export { munmap, exitMmap } from './mm/munmap.js';
export { zapPageRange } from './mm/zap.js';
export { handleMmFault, type FaultOptions } from './mm/fault.js';
export { cpuAccess, type CpuAccessKind, type CpuAccessResult } from './mm/access.js';
export { dupMmap, type DupMmapResult } from './mm/fork.js';
export { mprotect, type Prot } from './mm/mprotect.js';
export { mremap, MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP, type MremapOptions } from './mm/mremap.js';
export { madvise, type MadviseAdvice } from './mm/madvise.js';
export { splitHugePmd } from './mm/huge-pmd.js';
export { splitFolio } from './mm/split-folio.js';
export { ksmScan, ksmUnmerge, type KsmScanReport } from './mm/ksm.js';
export { migrateFolio } from './mm/migrate-folio.js';
export { tryToUnmap, TTU_SPLIT_HUGE_PMD, TTU_IGNORE_MLOCK, TTU_SYNC, type TryToUnmapOptions } from './mm/try-to-unmap.js';
export { folioReferenced, type FolioReferencedResult } from './mm/folio-referenced.js';
export { folioMkclean, pfnMkcleanRange, mappingWrprotectRange } from './mm/mkclean.js';
export { pageIdleClearPteRefs, pageIdleMark, pageIdleRead, damonFolioMkold, damonFolioYoung } from './mm/page-idle.js';
export { rmapWalk, rmapCandidates, folioWalkKey, type RmapWalkControl, type RmapCandidate, type WalkInterface } from './rmap/rmap-walk.js';
export { type AnonVma, type Avc } from './rmap/anon-vma.js';
export { runRmapSelftest, RMAP_SELFTEST_VARIANTS, type RmapSelftestVariant, type RmapSelftestReport } from './scenario/rmap-selftest.js';

// Scenario files (issue 5 item 1: explicit content).
export { scenarioJsonSchema, validateScenario, SCENARIO_VERSION, type Scenario, type ScenarioEngine, type U64 } from './scenario/schema.js';
export { loadScenario, loadScenarioFile, type LoadedScenario } from './scenario/load.js';
