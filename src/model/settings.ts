import { PvmwError } from '../errors.js';

/** Kernel semantics to simulate (decisions.md D1). */
export type Semantics = 'newest' | 'series' | 'v6.14';
/** How device-private pages are named (D1): pfns in a ZONE_DEVICE range, or offsets in their own space. */
export type DeviceModel = 'pfn' | 'offset';
/** Paging levels (spec §3.1): 4-level, or 5-level (LA57). */
export type PagingLevels = 4 | 5;

/** Build options that move swap type numbers (spec §3.4, D5). All on by default. */
export interface KernelConfig {
  devicePrivate: boolean;
  migration: boolean;
  memoryFailure: boolean;
}

export interface EngineSettings {
  paging: PagingLevels;
  semantics: Semantics;
  deviceModel: DeviceModel;
  config: KernelConfig;
  /** Pages of system RAM (pfns 0 … ramPages-1). */
  ramPages: number;
  /** Device-private memory chunk size in pages (lib/test_hmm.c: 256 MiB = 65536 pages; spec §7.1). */
  deviceChunkPages: number;
  /** Ceiling of the engine's WebAssembly memory in bytes (at most 4 GiB, the wasm32 limit). */
  maxMemoryBytes: number;
}

export const SEMANTICS: readonly Semantics[] = ['newest', 'series', 'v6.14'];
export const DEVICE_MODELS: readonly DeviceModel[] = ['pfn', 'offset'];
export const WASM32_MAX_BYTES = 4 * 1024 * 1024 * 1024;

export const DEFAULT_SETTINGS: EngineSettings = {
  paging: 4,
  semantics: 'newest',
  deviceModel: 'pfn',
  config: { devicePrivate: true, migration: true, memoryFailure: true },
  ramPages: 1 << 22, // 16 GiB
  deviceChunkPages: 1 << 16,
  maxMemoryBytes: WASM32_MAX_BYTES,
};

export type EngineOptions = Partial<Omit<EngineSettings, 'config'>> & { config?: Partial<KernelConfig> };

const KNOWN_KEYS = new Set(['paging', 'semantics', 'deviceModel', 'config', 'ramPages', 'deviceChunkPages', 'maxMemoryBytes']);
const CONFIG_KEYS = new Set(['devicePrivate', 'migration', 'memoryFailure']);

function positiveInt(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new PvmwError('BAD_SETTING', `${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Validate engine options against D1/D5 and fill in defaults. Unknown names are errors, never ignored. */
export function resolveSettings(opts: EngineOptions = {}): EngineSettings {
  for (const k of Object.keys(opts)) {
    if (!KNOWN_KEYS.has(k)) throw new PvmwError('BAD_SETTING', `unknown setting ${JSON.stringify(k)}`);
  }
  // An option given as undefined takes its default, as if it were absent.
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as EngineOptions;
  const s: EngineSettings = { ...DEFAULT_SETTINGS, ...given, config: { ...DEFAULT_SETTINGS.config } } as EngineSettings;
  if (given.config !== undefined) {
    if (typeof given.config !== 'object' || given.config === null) {
      throw new PvmwError('BAD_SETTING', `config must be an object, got ${JSON.stringify(given.config)}`);
    }
    for (const [k, v] of Object.entries(given.config)) {
      if (!CONFIG_KEYS.has(k)) throw new PvmwError('BAD_SETTING', `unknown kernel config option ${JSON.stringify(k)}`);
      if (v === undefined) continue;
      if (typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `config.${k} must be true or false, got ${JSON.stringify(v)}`);
      (s.config as unknown as Record<string, boolean>)[k] = v;
    }
  }
  if (s.paging !== 4 && s.paging !== 5) throw new PvmwError('BAD_SETTING', `paging must be 4 or 5, got ${JSON.stringify(s.paging)}`);
  if (!SEMANTICS.includes(s.semantics)) {
    throw new PvmwError('BAD_SETTING', `semantics must be one of ${SEMANTICS.join(', ')}, got ${JSON.stringify(s.semantics)}`);
  }
  if (!DEVICE_MODELS.includes(s.deviceModel)) {
    throw new PvmwError('BAD_SETTING', `deviceModel must be one of ${DEVICE_MODELS.join(', ')}, got ${JSON.stringify(s.deviceModel)}`);
  }
  positiveInt('ramPages', s.ramPages, 2 ** 32 - 1); // the engine's page index is a u32
  positiveInt('deviceChunkPages', s.deviceChunkPages, 2 ** 24);
  if (s.deviceChunkPages % 512 !== 0) {
    throw new PvmwError('BAD_SETTING', `deviceChunkPages must be a multiple of 512 (device THPs), got ${s.deviceChunkPages}`);
  }
  positiveInt('maxMemoryBytes', s.maxMemoryBytes, WASM32_MAX_BYTES);
  return s;
}
