import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { Mm } from '../model/mm.js';
import type { FaultOutcome } from './errno.js';
import { handleMmFault } from './fault.js';
import { presentRaw, writeLeaves, type LeafView } from './leaf.js';
import { opsState } from './state.js';
import { faultLeafAt, pageAt } from './wp-fault.js';

/**
 * A CPU access to one address, the way scenarios touch memory (kernel-operations.md §5.8, §12.2; D8): the
 * hardware walks the tables; if the entry allows the access it sets accessed (and dirty on a write) and the
 * access happens; otherwise the fault handler runs (handle_mm_fault, §5) and the access retries — a bounded
 * number of times, so an entry that stays under migration reports 'retry'. A read returns the content tag of
 * the page mapped (ZERO for the zero pages); a write gives that page — the one mapped after any COW or reuse —
 * a new tag: the caller's, or the next of opsState(engine).nextTag.
 */
export type CpuAccessKind = 'read' | 'write' | 'exec';

export interface CpuAccessOptions {
  /** Tag a write stores (default: opsState(engine).nextTag++). */
  tag?: number;
  /** Folio order for a new anon folio (handleMmFault's `order`). */
  order?: number;
}

export interface CpuAccessResult {
  outcome: FaultOutcome;
  /** Read / exec: the tag read. Write: the tag written. Absent when the access did not happen. */
  tag?: number;
}

/** Faults one access may take before it gives up with 'retry' (a migration that does not end). */
export const CPU_ACCESS_TRIES = 4;

const ACCESS = new Set(['read', 'write', 'exec']);

function checkAccessInput(addr: unknown, access: unknown, o: CpuAccessOptions): void {
  if (typeof addr !== 'number' || !Number.isInteger(addr) || addr < 0) {
    throw new PvmwError('BAD_ADDRESS', `access address ${String(addr)} is not a non-negative whole number`);
  }
  if (typeof access !== 'string' || !ACCESS.has(access)) throw new PvmwError('BAD_SETTING', `access must be read, write or exec, got ${JSON.stringify(access)}`);
  if (typeof o !== 'object' || o === null) throw new PvmwError('BAD_SETTING', `access options must be an object, got ${JSON.stringify(o)}`);
  for (const k of Object.keys(o)) if (k !== 'tag' && k !== 'order') throw new PvmwError('BAD_SETTING', `unknown access option ${JSON.stringify(k)}`);
  if (o.tag !== undefined && (!Number.isInteger(o.tag) || o.tag < 0 || o.tag >= 2 ** 32)) {
    throw new PvmwError('BAD_SETTING', `tag must be a whole number from 0 to 0xffffffff, got ${JSON.stringify(o.tag)}`);
  }
}

/** Does the present entry let the hardware do this access (no fault)? */
function permits(v: LeafView, access: CpuAccessKind): boolean {
  const p = v.entry.present;
  if (v.entry.kind !== 'present' || !p || p.protnone) return false;
  if (access === 'write') return p.write;
  if (access === 'exec') return !p.nx;
  return true;
}

/** cpuAccess: see the file comment. */
export function cpuAccess(engine: Engine, mm: Mm, addr: number, access: CpuAccessKind, opts: CpuAccessOptions = {}): CpuAccessResult {
  checkAccessInput(addr, access, opts);
  const write = access === 'write';
  for (let tries = 0; ; tries++) {
    const v = mm.vmas.find(addr) ? faultLeafAt(engine, mm, addr) : undefined;
    if (v && permits(v, access)) return accessPage(engine, mm, v, addr, write, opts.tag);
    if (tries === CPU_ACCESS_TRIES) return { outcome: 'retry' };
    const r = handleMmFault(engine, mm, addr, { write, exec: access === 'exec', order: opts.order });
    if (r !== 'ok' && r !== 'retry') return { outcome: r };
  }
}

/**
 * The access itself (§12.2): accessed (+ dirty) set by the hardware; a hwpoisoned page is SIGBUS; a read gives
 * the page's tag (ZERO for ZP/HZP and pages of no folio), a write sets it.
 */
function accessPage(engine: Engine, mm: Mm, v: LeafView, addr: number, write: boolean, tag?: number): CpuAccessResult {
  const p = v.entry.present!;
  if (!p.young || (write && !p.dirty)) {
    writeLeaves(engine, mm, [{ va: v.va, level: v.level, raw: presentRaw(v.level, v.entry.number!, { ...p, young: true, dirty: p.dirty || write }) }]);
  }
  const f = v.folio;
  if (!f || v.kind === 'ZP' || v.kind === 'HZP') return write ? { outcome: 'ok' } : { outcome: 'ok', tag: 0 }; // no page to tag
  const page = pageAt(v, addr);
  const info = engine.page(f.namespace, f.number + page)!;
  if (info.hwpoison) return { outcome: 'SIGBUS' };
  if (!write) return { outcome: 'ok', tag: info.tag };
  const value = tag ?? opsState(engine).nextTag++;
  engine.folios.setTag(f.id, page, 1, value);
  return { outcome: 'ok', tag: value };
}
