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
