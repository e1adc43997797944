import type { Engine } from '../model/engine.js';
import type { FolioId } from '../model/folio.js';

/** PG_idle / PG_young of every folio of one engine (absent = clear). */
export class FolioAge {
  private readonly idle = new Set<FolioId>();
  private readonly young = new Set<FolioId>();

  isIdle(id: FolioId): boolean {
    return this.idle.has(id);
  }

  setIdle(id: FolioId, on = true): void {
    if (on) this.idle.add(id);
    else this.idle.delete(id);
  }

  isYoung(id: FolioId): boolean {
    return this.young.has(id);
  }

  setYoung(id: FolioId, on = true): void {
    if (on) this.young.add(id);
    else this.young.delete(id);
  }

  /** folio_test_clear_young. */
  testClearYoung(id: FolioId): boolean {
    return this.young.delete(id);
  }

  /** Drop both flags (the folio was freed). */
  forget(id: FolioId): void {
    this.idle.delete(id);
    this.young.delete(id);
  }
}

const ages = new WeakMap<Engine, FolioAge>();

/** The PG_idle / PG_young flags of an engine's folios, made on first use. */
export function folioAge(engine: Engine): FolioAge {
  let a = ages.get(engine);
  if (!a) ages.set(engine, (a = new FolioAge()));
  return a;
}
