import type { PfnSoftleafKind } from '../model/entry.js';
import { SETTABLE_FOLIO_FLAGS } from '../model/folio.js';
import { SOFTLEAF_CODE } from '../model/softleaf.js';
import { VMA_BOOL_FLAGS } from '../model/vma.js';

/** The scenario format's vocabulary (names of kinds, bits and flags, taken from the model) and its JSON Schema (draft 2020-12). */

/** Softleaf kinds that carry a number (every kind but swap and marker), in the engine's code order. */
export const SOFTLEAF_PFN_KINDS = (Object.keys(SOFTLEAF_CODE) as (keyof typeof SOFTLEAF_CODE)[]).filter(
  (k): k is PfnSoftleafKind => k !== 'none' && k !== 'swap' && k !== 'marker',
);
export const ENTRY_KINDS = ['present', 'swap', 'marker', ...SOFTLEAF_PFN_KINDS] as const;
export const PRESENT_BOOL_BITS = ['write', 'user', 'pwt', 'pcd', 'young', 'dirty', 'global', 'pat', 'special', 'uffdWp', 'softDirty', 'savedDirty', 'nx', 'protnone'] as const;
export const SWAP_FLAGS = ['softDirty', 'uffdWp', 'exclusive'] as const;
export { VMA_BOOL_FLAGS };
export const FOLIO_FLAGS = SETTABLE_FOLIO_FLAGS;

// --- JSON Schema ----------------------------------------------------------------------------------------

const bools = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, { type: 'boolean' }]));
const swapFlagsSchema = { type: 'object', additionalProperties: false, properties: bools(SWAP_FLAGS) };

export const scenarioJsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://pvmw.invalid/schema/scenario.schema.json',
  title: 'pvmw scenario (version 1, explicit content)',
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    $schema: { type: 'string' },
    version: { const: 1 },
    engine: {
      type: 'object',
      additionalProperties: false,
      properties: {
        paging: { enum: [4, 5] },
        semantics: { enum: ['newest', 'series', 'v6.14'] },
        deviceModel: { enum: ['pfn', 'offset'] },
        ramPages: { $ref: '#/$defs/u64' },
        deviceChunkPages: { $ref: '#/$defs/u64' },
        deviceChunks: { type: 'integer', minimum: 0, maximum: 64 },
      },
    },
    folios: { type: 'array', items: { $ref: '#/$defs/folio' } },
    processes: { type: 'array', items: { $ref: '#/$defs/process' } },
  },
  $defs: {
    u64: {
      description: 'A whole number below 2^53, as a JSON number or a "0x…" hex string',
      oneOf: [
        { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        { type: 'string', pattern: '^0[xX][0-9a-fA-F]{1,14}$' },
      ],
    },
    folio: {
      type: 'object',
      additionalProperties: false,
      required: ['number'],
      properties: {
        number: { $ref: '#/$defs/u64' },
        namespace: { enum: ['pfn', 'device-private'] },
        order: { type: 'integer', minimum: 0, maximum: 9 },
        hugetlb: { enum: ['2M', '1G'] },
        file: { type: 'integer', minimum: 0, maximum: 2 ** 32 - 1 },
        anonVma: { type: 'integer', minimum: 0, maximum: 2 ** 32 - 1 },
        index: { $ref: '#/$defs/u64' },
        flags: { type: 'object', additionalProperties: false, properties: bools(FOLIO_FLAGS) },
        count: { type: 'integer', minimum: 1, maximum: 2 ** 32 - 1 },
        tags: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['page', 'tag'],
            properties: {
              page: { type: 'integer', minimum: 0 },
              count: { type: 'integer', minimum: 1 },
              tag: { type: 'integer', minimum: 0, maximum: 2 ** 32 - 1 },
            },
          },
        },
      },
    },
    process: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: {
        id: { type: 'string', minLength: 1 },
        parent: { type: 'string', minLength: 1, description: 'id of an earlier process; this one is its fork child' },
        vmas: { type: 'array', items: { $ref: '#/$defs/vma' } },
        entries: { type: 'array', items: { $ref: '#/$defs/entries' } },
      },
    },
    vma: {
      type: 'object',
      additionalProperties: false,
      required: ['start', 'end'],
      properties: {
        start: { $ref: '#/$defs/u64' },
        end: { $ref: '#/$defs/u64' },
        pgoff: { $ref: '#/$defs/u64' },
        file: { type: 'integer', minimum: 0, maximum: 2 ** 32 - 1 },
        flags: {
          type: 'object',
          additionalProperties: false,
          properties: { ...bools(VMA_BOOL_FLAGS), hugetlb: { enum: [null, '2M', '1G'] } },
        },
      },
    },
    entries: {
      type: 'object',
      additionalProperties: false,
      required: ['addr', 'entry'],
      properties: {
        addr: { $ref: '#/$defs/u64' },
        level: { enum: ['pte', 'pmd', 'pud'] },
        count: { type: 'integer', minimum: 1, maximum: 2 ** 32 - 1 },
        entry: { $ref: '#/$defs/entry' },
      },
    },
    entry: {
      type: 'object',
      required: ['kind'],
      properties: { kind: { enum: [...ENTRY_KINDS] } },
      oneOf: [
        {
          additionalProperties: false,
          required: ['kind', 'number'],
          properties: {
            kind: { const: 'present' },
            number: { $ref: '#/$defs/u64' },
            ...bools(PRESENT_BOOL_BITS),
            pkey: { type: 'integer', minimum: 0, maximum: 15 },
          },
        },
        {
          additionalProperties: false,
          required: ['kind', 'swapType', 'offset'],
          properties: {
            kind: { const: 'swap' },
            swapType: { type: 'integer', minimum: 0, maximum: 31 },
            offset: { $ref: '#/$defs/u64' },
            flags: swapFlagsSchema,
          },
        },
        {
          additionalProperties: false,
          required: ['kind'],
          properties: { kind: { const: 'marker' }, ...bools(['uffdWp', 'poisoned', 'guard']), flags: swapFlagsSchema },
        },
        {
          additionalProperties: false,
          required: ['kind', 'number'],
          properties: {
            kind: { enum: [...SOFTLEAF_PFN_KINDS] },
            number: { $ref: '#/$defs/u64' },
            ...bools(['young', 'dirty']),
            flags: swapFlagsSchema,
          },
        },
      ],
    },
  },
} as const;
