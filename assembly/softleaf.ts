// The softleaf classification table (spec §3.4): swap type value → kind code. The host computes it from the
// kernel configuration and semantics (src/model/softleaf.ts) and hands it over once, so the numbering lives
// in one place.

const codes = memory.data(32);

export function setSoftleafCode(type: u32, code: u32): void {
  store<u8>(codes + (type & 31), <u8>code);
}

@inline export function softleafCode(type: u32): u32 {
  return <u32>load<u8>(codes + (type & 31));
}

// Classification codes (src/model/softleaf.ts SOFTLEAF_CODE), and the predicates the engine needs.
export const SL_MIG_READ: u32 = 3;
export const SL_MIG_WRITE: u32 = 5;
export const SL_DP_WRITE: u32 = 6;
export const SL_DP_READ: u32 = 7;
export const SL_DEV_EXCL: u32 = 8;
export const SL_MIG_DP_READ: u32 = 9;
export const SL_MIG_DP_WRITE: u32 = 11;

/** Ordinary migration entries (read, read-exclusive, write): their number is a pfn. */
@inline export function isRamMigrationCode(c: u32): bool {
  return c >= SL_MIG_READ && c <= SL_MIG_WRITE;
}
/** Any migration entry, including the series' device-private migration entries (their is-a semantics). */
@inline export function isMigrationCode(c: u32): bool {
  return isRamMigrationCode(c) || (c >= SL_MIG_DP_READ && c <= SL_MIG_DP_WRITE);
}
/** Entries whose number names a device-private page: device-private read/write and device-private migration. */
@inline export function isDevicePrivateCode(c: u32): bool {
  return c == SL_DP_WRITE || c == SL_DP_READ || (c >= SL_MIG_DP_READ && c <= SL_MIG_DP_WRITE);
}
