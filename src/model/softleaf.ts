import type { KernelConfig, Semantics } from './settings.js';

/**
 * The softleaf (swap entry) type table of spec §3.4, computed from the kernel configuration (D5) and the
 * semantics (D1): `series` has six device types (SWP_DEVICE_NUM = 6: device-private migration types), the
 * others three. Reserved types are carved from the top of the 32 type values.
 */
export type SoftleafKind =
  | 'swap'
  | 'hwpoison'
  | 'migration-read'
  | 'migration-read-exclusive'
  | 'migration-write'
  | 'device-private-write'
  | 'device-private-read'
  | 'device-exclusive'
  | 'migration-device-private-read'
  | 'migration-device-private-read-exclusive'
  | 'migration-device-private-write'
  | 'marker';

/** Classification codes shared with the WebAssembly engine (assembly/softleaf.ts reads this table). */
export const SOFTLEAF_CODE: Record<SoftleafKind | 'none', number> = {
  none: 0,
  swap: 1,
  hwpoison: 2,
  'migration-read': 3,
  'migration-read-exclusive': 4,
  'migration-write': 5,
  'device-private-write': 6,
  'device-private-read': 7,
  'device-exclusive': 8,
  'migration-device-private-read': 9,
  'migration-device-private-read-exclusive': 10,
  'migration-device-private-write': 11,
  marker: 12,
};

export const MAX_SWAPFILES_SHIFT = 5;
export const SWP_TYPE_COUNT = 1 << MAX_SWAPFILES_SHIFT;

export interface SoftleafTable {
  /** MAX_SWAPFILES: types 0 … maxSwapfiles-1 are real swap files. */
  maxSwapfiles: number;
  /** Type number of each special kind present in this configuration. */
  typeOf: Partial<Record<Exclude<SoftleafKind, 'swap'>, number>>;
  /** Kind of each of the 32 type values ('swap' below maxSwapfiles; undefined for none of these). */
  kindOf: (SoftleafKind | undefined)[];
}

/** Compute the table for a configuration (spec §3.4: HWPOISON, MIGRATION, DEVICE, MARKER in that order). */
export function softleafTable(config: KernelConfig, semantics: Semantics): SoftleafTable {
  const hwpoisonNum = config.memoryFailure ? 1 : 0;
  const migrationNum = config.migration ? 3 : 0;
  const deviceNum = config.devicePrivate ? (semantics === 'series' ? 6 : 3) : 0;
  const markerNum = 1;
  const maxSwapfiles = SWP_TYPE_COUNT - deviceNum - migrationNum - hwpoisonNum - markerNum;
  const typeOf: SoftleafTable['typeOf'] = {};
  let t = maxSwapfiles;
  if (hwpoisonNum) typeOf.hwpoison = t++;
  if (migrationNum) {
    typeOf['migration-read'] = t++;
    typeOf['migration-read-exclusive'] = t++;
    typeOf['migration-write'] = t++;
  }
  if (deviceNum) {
    typeOf['device-private-write'] = t++;
    typeOf['device-private-read'] = t++;
    typeOf['device-exclusive'] = t++;
    if (deviceNum === 6) {
      typeOf['migration-device-private-read'] = t++;
      typeOf['migration-device-private-read-exclusive'] = t++;
      typeOf['migration-device-private-write'] = t++;
    }
  }
  typeOf.marker = t++;
  const kindOf: (SoftleafKind | undefined)[] = new Array(SWP_TYPE_COUNT).fill(undefined);
  for (let i = 0; i < maxSwapfiles; i++) kindOf[i] = 'swap';
  for (const [k, v] of Object.entries(typeOf)) kindOf[v as number] = k as SoftleafKind;
  return { maxSwapfiles, typeOf, kindOf };
}

/** Softleaves whose offset carries a pfn (or a device-private offset): softleaf_has_pfn (spec §0 terms). */
export function softleafHasPfn(kind: SoftleafKind): boolean {
  return kind !== 'swap' && kind !== 'marker';
}

export function isMigration(kind: SoftleafKind): boolean {
  return kind.startsWith('migration-');
}

/** Entries whose number is a device-private offset when the series names device pages by offset (§4.4). */
export function isDevicePrivateKind(kind: SoftleafKind): boolean {
  return kind === 'device-private-read' || kind === 'device-private-write' || kind.startsWith('migration-device-private');
}

/** The classification array handed to WebAssembly: 32 bytes, type value → SOFTLEAF_CODE. */
export function softleafCodes(table: SoftleafTable): Uint8Array {
  const out = new Uint8Array(SWP_TYPE_COUNT);
  table.kindOf.forEach((k, i) => (out[i] = k ? SOFTLEAF_CODE[k] : SOFTLEAF_CODE.none));
  return out;
}
