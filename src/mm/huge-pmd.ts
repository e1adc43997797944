import type { Engine } from '../model/engine.js';
import { PMD_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Vma } from '../model/vma.js';
import { leavesIn, NONE_RAW, presentRaw, softleafRaw, vmaPageProt, writeLeaves, zeroPages, type LeafView } from './leaf.js';
import { migEntryKind, tryShareAnon } from './rmap-primitives.js';
import type { Leaf } from '../model/pte-batch.js';

/**
 * __split_huge_pmd (kernel-operations.md §6.1): split the PMD-level leaf of the 2 MiB block holding `addr`.
 * - file VMA: the PMD is cleared (the mapping goes; dirty passes to the folio); nothing else is made;
 * - HZP in an anon VMA: 512 ZP PTEs;
 * - present anon THP, PMD migration entry, device-private PMD, without freeze: 512 PTEs of the same pages
 *   (assembly/split.ts via Mm.splitPmd), AnonExclusive of the head carried to every page, the NUMA-hint
 *   PROTNONE state not carried in an accessible VMA;
 * - present anon THP with `freeze` (try_to_migrate): 512 PTE migration entries of mig-entry type, the mapping
 *   removed; a pinned exclusive head cannot be shared, so the split then proceeds without freeze.
 * Nothing happens if there is no PMD leaf there. Returns the PMD leaf it split (or undefined).
 */
export function splitHugePmd(engine: Engine, mm: Mm, vma: Vma, addr: number, freeze = false): LeafView | undefined {
  const block = addr - (addr % PMD_SIZE);
  const pmd = leavesIn(engine, mm, block, block + PMD_SIZE).find((l) => l.level === 'pmd' && l.va === block);
  if (!pmd || pmd.kind === 'HT') return undefined;
  if (!vma.anon) {
    if (pmd.kind === 'PMD' && pmd.entry.present?.dirty && pmd.folio) engine.folios.setFlags(pmd.folio.id, { dirty: true });
    writeLeaves(engine, mm, [{ va: block, level: 'pmd', raw: NONE_RAW }]);
    return pmd;
  }
  const bits = pmd.entry.present;
  if (pmd.kind === 'HZP') {
    const zero = presentRaw('pte', zeroPages(engine).zeroPfn, { ...vmaPageProt(vma), special: true, uffdWp: bits?.uffdWp ?? false });
    writeLeaves(engine, mm, [{ va: block, level: 'pmd', raw: NONE_RAW }]);
    writeLeaves(engine, mm, ptes(block, () => zero));
    return pmd;
  }
  const f = pmd.folio;
  if (freeze && (pmd.kind === 'PMD' || pmd.kind === 'PN') && f && bits) {
    const exclusive = engine.folios.anonExclusive(f.id, 0);
    const kind = migEntryKind(engine, f, 0, bits.write);
    if (!exclusive || tryShareAnon(engine, f, 0, f.nrPages)) {
      if (bits.dirty) engine.folios.setFlags(f.id, { dirty: true }); // step 5: the PMD's dirty goes to the folio
      const flags = { softDirty: bits.softDirty, uffdWp: bits.uffdWp };
      writeLeaves(engine, mm, [{ va: block, level: 'pmd', raw: NONE_RAW }]);
      writeLeaves(engine, mm, ptes(block, (i) => softleafRaw(engine, { kind, number: f.number + i, young: bits.young, dirty: bits.dirty, flags })));
      return pmd;
    }
  }
  const headExclusive = f ? engine.folios.anonExclusive(f.id, 0) : false;
  mm.splitPmd(block);
  if (f && headExclusive) engine.folios.setAnonExclusive(f.id, 0, f.nrPages, true);
  const accessible = vma.flags.read || vma.flags.write || vma.flags.exec;
  if (pmd.kind === 'PN' && accessible && bits && f) {
    const prot = { ...bits, ...vmaPageProt(vma), write: bits.write, protnone: false };
    writeLeaves(engine, mm, ptes(block, (i) => presentRaw('pte', f.number + i, prot)));
  }
  return pmd;
}

function ptes(block: number, raw: (i: number) => Leaf['raw']): Leaf[] {
  const out: Leaf[] = [];
  for (let i = 0; i < 512; i++) out.push({ va: block + i * 4096, level: 'pte', raw: raw(i) });
  return out;
}
