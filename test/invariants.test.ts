// The invariant checker (issue 4 item 4): it recomputes every mapping from the page tables, never from the
// counters it checks. Clean spaces pass; each kind of corruption, made behind the model's back through the
// engine's raw WebAssembly exports, is found and named.
import { describe, expect, it } from 'vitest';
import { Engine, linearPageIndex, encodePresent } from '../src/index.js';
import { buildSpace } from './gen/space.js';
import { combos } from './walk-diff.js';

function small() {
  const e = new Engine({ ramPages: 1 << 16 });
  const mm = e.createMm();
  const vma = mm.addVma({ start: 0x200000, end: 0x800000, flags: { thp: true } });
  const f = e.createFolio({ number: 0x40, order: 2, index: linearPageIndex(vma, 0x200000) });
  mm.map(0x200000, { count: 4, entry: { kind: 'present', number: 0x40, write: true } });
  const thp = e.createFolio({ number: 0x200, order: 9, index: linearPageIndex(vma, 0x400000) });
  mm.map(0x400000, { level: 'pmd', entry: { kind: 'present', number: 0x200 } });
  return { e, mm, vma, f, thp, x: e.wasmInstance().exports };
}

describe('issue 4 item 4: the invariant checker', () => {
  for (const paging of [4, 5] as const) {
    for (const combo of combos(paging)) {
      it(`a generated space passes (${paging}-level, ${combo.deviceModel}, ${combo.semantics})`, () => {
        const { engine } = buildSpace({ ...combo, seed: 21, scale: 'small' });
        const r = engine.checkInvariants();
        expect(r.problems).toEqual([]);
        expect(r.ok).toBe(true);
        expect(r.checked.mappings).toBeGreaterThan(1000);
        expect(r.checked.folios).toBeGreaterThan(100);
      });
    }
  }

  it('passes after splits, frees and replacements of tables, which keep mapcounts exact', () => {
    const { e, mm } = small();
    mm.splitPmd(0x400000);
    mm.replacePteTable(0x400000);
    mm.freePteTable(0x200000);
    expect(e.checkInvariants().problems).toEqual([]);
  });

  it('finds a page mapcount that does not match the tables (MAPCOUNT)', () => {
    const { e, f, x } = small();
    x.pageMapcountAdd(f + 1, 1, 1);
    const r = e.checkInvariants();
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.code)).toContain('MAPCOUNT');
    expect(r.problems.map((p) => p.message).join('\n')).toContain(`folio 0x${f.toString(16)} page 1: mapcount 2, but 1 PTE mappings`);
  });

  it('finds an entire mapcount that does not match (MAPCOUNT)', () => {
    const { e, thp, x } = small();
    x.entireMapcountAdd(thp, -1);
    expect(e.checkInvariants().problems.map((p) => p.message).join('\n')).toContain('entire mapcount 0, but 1 PMD/PUD mappings');
  });

  it('finds an entry outside every VMA (OUTSIDE_VMA) and one beyond memory (OUTSIDE_MEMORY)', () => {
    const { e, mm, x } = small();
    const beyond = encodePresent('pte', (1 << 16) + 5, {});
    x.ptSetRange(mm.root, 0x900000, 0, 1, beyond.lo, beyond.hi, 0, 0, 1); // no VMA there, pfn beyond RAM
    x.ptSetRange(mm.root, 0x300000, 0, 1, beyond.lo, beyond.hi, 0, 0, 1); // in the VMA, pfn beyond RAM
    const codes = e.checkInvariants().problems.map((p) => p.code);
    expect(codes).toContain('OUTSIDE_VMA');
    expect(codes).toContain('OUTSIDE_MEMORY');
  });

  it('finds a mapping rmap cannot reach (UNREACHABLE) and one of no folio (NOT_A_FOLIO)', () => {
    const { e, mm, f, x } = small();
    const p = encodePresent('pte', 0x41, {}); // folio page 1, mapped at a page whose linear index is not its own
    x.ptSetRange(mm.root, 0x380000, 0, 1, p.lo, p.hi, 0, 0, 1);
    x.pageMapcountAdd(f + 1, 1, 1); // keep the counter in step, so only reachability is wrong
    const free = encodePresent('pte', 0x1000, {});
    x.ptSetRange(mm.root, 0x381000, 0, 1, free.lo, free.hi, 0, 0, 1);
    const r = e.checkInvariants();
    expect(r.problems.map((q) => q.code).sort()).toEqual(['NOT_A_FOLIO', 'UNREACHABLE']);
    expect(r.problemCount).toBe(2);
  });

  it('migration entries are not mappings: a folio under migration has mapcount 0 and passes', () => {
    const { e, mm, vma } = small();
    const g = e.createFolio({ number: 0x80, index: linearPageIndex(vma, 0x600000) });
    mm.map(0x600000, { entry: { kind: 'migration-write', number: 0x80 } });
    expect(e.folio(g).mapcount).toBe(0);
    expect(e.checkInvariants().ok).toBe(true);
  });

  it('spec §6.1: a mapping whose VMA is not linked to the folio\'s anon_vma, or whose file VMA left i_mmap, is UNREACHABLE', () => {
    const { e, mm, vma } = small();
    expect(e.rmap.anon.chain(vma).map((c) => c.anonVma.id)).toEqual([0]); // hand placement linked anon_vma 0
    e.rmap.anon.unlink(vma); // behind the model's back
    const r = e.checkInvariants();
    expect(r.problems.every((q) => q.code === 'UNREACHABLE' && /anon_vma 0/.test(q.message))).toBe(true);
    expect(r.problemCount).toBe(5); // four PTEs of the order-2 folio and the PMD

    const e2 = new Engine({ ramPages: 1 << 16 });
    const m2 = e2.createMm();
    const fv = m2.addVma({ start: 0x200000, end: 0x400000, file: 3, pgoff: 0 });
    e2.createFolio({ number: 0x10, file: 3, index: 0 });
    m2.map(0x200000, { entry: { kind: 'present', number: 0x10 } });
    expect(e2.checkInvariants().ok).toBe(true);
    e2.rmap.iMmap.remove(fv);
    expect(e2.checkInvariants().problems.map((q) => q.message)).toEqual([expect.stringMatching(/i_mmap tree lacks VMA 0x200000-0x400000/)]);
  });
});
