import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { FolioId } from '../model/folio.js';
import type { WalkInterface } from '../rmap/rmap-walk.js';
import { FolioAllocator } from './folio-alloc.js';
import { PageCache } from './page-cache.js';
import { SwapSpace } from './swap.js';

/**
 * What the operations layer keeps beside the engine's page tables and memmap: the page allocator, files and
 * their page caches, swap, GUP pins, and the policy choices of kernel-operations.md §13. One per engine.
 */
export interface OpsPolicy {
  /** Walk interface of the reclaim-side callers (issue 4 item 3; D2). */
  walkInterface: WalkInterface;
  /** use_zero_page: read faults map the (huge) zero page. */
  useZeroPage: boolean;
  /** KSM use_zero_pages (default off). */
  ksmUseZeroPages: boolean;
}

export class OpsState {
  readonly alloc: FolioAllocator;
  readonly pageCache = new PageCache();
  readonly swap = new SwapSpace();
  /** GUP pins per folio (maybe-DMA-pinned when > 0). */
  readonly pins = new Map<FolioId, number>();
  /** mms that have ever pinned (MMF_HAS_PINNED). */
  readonly everPinned = new Set<number>();
  readonly policy: OpsPolicy = { walkInterface: 'pfn', useZeroPage: true, ksmUseZeroPages: false };
  /** Next content tag handed out for a write without an explicit tag (D8). */
  nextTag = 0x1000;

  constructor(engine: Engine) {
    this.alloc = new FolioAllocator(engine);
  }

  pinned(folio: FolioId): boolean {
    return (this.pins.get(folio) ?? 0) > 0;
  }
}

const states = new WeakMap<Engine, OpsState>();

/** The operations state of an engine, made on first use. */
export function opsState(engine: Engine): OpsState {
  let s = states.get(engine);
  if (!s) states.set(engine, (s = new OpsState(engine)));
  return s;
}

/** Set the policy choices (unknown names or values are BAD_SETTING; nothing changes then). */
export function setOpsPolicy(engine: Engine, p: Partial<OpsPolicy>): void {
  const s = opsState(engine);
  const next = { ...s.policy };
  for (const [k, v] of Object.entries(p)) {
    if (k === 'walkInterface') {
      if (v !== 'pfn' && v !== 'folio-range' && v !== 'folio-identity') throw new PvmwError('BAD_SETTING', `walkInterface must be pfn, folio-range or folio-identity, got ${JSON.stringify(v)}`);
      next.walkInterface = v;
    } else if (k === 'useZeroPage' || k === 'ksmUseZeroPages') {
      if (typeof v !== 'boolean') throw new PvmwError('BAD_SETTING', `${k} must be true or false, got ${JSON.stringify(v)}`);
      next[k] = v;
    } else throw new PvmwError('BAD_SETTING', `unknown policy ${JSON.stringify(k)}`);
  }
  Object.assign(s.policy, next);
}
