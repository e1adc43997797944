// KSM (kernel-operations.md §8: 8.1 objects, 8.2 scan step, 8.3 merging one mapping, 8.4 rmap_walk_ksm) with
// contents as tags (§12.2: checksum = tag, identical = equal tags, ZERO + use_zero_pages → the zero page).
import { describe, expect, it } from 'vitest';
import { Engine, type FolioId, type Mm, type Vma } from '../src/index.js';
import { dupMmap } from '../src/mm/fork.js';
import { ksmScan, ksmUnmerge } from '../src/mm/ksm.js';
import { madvise } from '../src/mm/madvise.js';
import { leavesIn, zeroPages } from '../src/mm/leaf.js';
import { newAnonRmap } from '../src/mm/rmap-primitives.js';
import { opsState, setOpsPolicy } from '../src/mm/state.js';
import { rmapCandidates, rmapWalk, type WalkInterface } from '../src/rmap/rmap-walk.js';
import { expectClean } from './ops-helpers.js';

const P = 4096;
const BASE = 0x7f0000000000;
const END = BASE + 16 * P;

function engine(ramPages = 1 << 16): Engine {
  return new Engine({ ramPages });
}

function mergeableVma(mm: Mm, start = BASE, end = END): Vma {
  return mm.addVma({ start, end, flags: { mergeable: true } });
}

/** An order-0 anon page written at `addr` (as after a write fault): writable, dirty, exclusive, tagged. */
function page(e: Engine, mm: Mm, addr: number, tag: number): FolioId {
  const vma = mm.vmas.find(addr)!;
  const id = opsState(e).alloc.alloc({ order: 0 })!;
  newAnonRmap(e, id, vma, addr, true);
  e.folios.setTag(id, 0, 1, tag);
  mm.map(addr, { entry: { kind: 'present', number: e.folio(id).number, write: true, dirty: true, young: true } });
  return id;
}

/** Two mms, each with one mergeable VMA and a page of `tags[i]` at BASE. */
function pair(tags: [number, number]) {
  const e = engine();
  const a = e.createMm();
  const b = e.createMm();
  const va = mergeableVma(a);
  const vb = mergeableVma(b);
  const fa = page(e, a, BASE, tags[0]);
  const fb = page(e, b, BASE, tags[1]);
  expectClean(e);
  return { e, a, b, va, vb, fa, fb };
}

function pte(mm: Mm, addr: number) {
  const l = mm.entryAt(addr);
  return { number: l.entry.number, write: l.entry.bits.write, dirty: l.entry.bits.dirty, special: l.entry.present?.special ?? false };
}

describe('§8.2/§8.3 merging', () => {
  it('§8.2 two mms with equal tags merge after two scans into one read-only KSM folio; the other folio is freed', () => {
    const { e, a, b, va, vb, fa, fb } = pair([0xa1, 0xa1]);
    const r1 = ksmScan(e);
    expect(r1).toMatchObject({ scanned: 2, volatile: 2, merged: 0 }); // step 2: first checksum only
    expect(pte(a, BASE).write).toBe(true);
    expect(e.folio(fa).flags.ksm).toBe(false);
    expectClean(e);

    const r2 = ksmScan(e);
    expect(r2).toMatchObject({ scanned: 2, volatile: 0, merged: 2 });
    // Step 5: the page being scanned (b's) becomes the KSM page; a's mapping is replaced by it.
    expect(e.folios.exists(fa)).toBe(false);
    const k = e.folio(fb);
    expect(k.flags.ksm).toBe(true);
    expect(k.flags.dirty).toBe(true);
    expect(k.mapcount).toBe(2);
    expect(e.page('pfn', k.number)!).toMatchObject({ anonExclusive: false, tag: 0xa1, mapcount: 2 });
    for (const mm of [a, b]) expect(pte(mm, BASE)).toEqual({ number: k.number, write: false, dirty: false, special: false });
    // §8.1: folio mapping = stable node; the node names the folio and holds both rmap_items with their VMA's anon_vma.
    const node = e.rmap.ksm.get(k.anonVma!)!;
    expect(node.folio).toBe(fb);
    expect(node.items.map((i) => [i.mm, i.address, i.anonVma])).toEqual([
      [a.id, BASE, e.rmap.anon.of(va)],
      [b.id, BASE, e.rmap.anon.of(vb)],
    ]);
    expect(e.folioCensus().ksm).toBe(1);
    expectClean(e);

    const r3 = ksmScan(e); // step 1: already merged, nothing changes
    expect(r3).toMatchObject({ merged: 0, volatile: 0 });
    expect(e.folio(fb).mapcount).toBe(2);
    expectClean(e);
  });

  it('§8.2 two pages of one mm with equal tags merge; the later page is kept', () => {
    const e = engine();
    const a = e.createMm();
    mergeableVma(a);
    const f1 = page(e, a, BASE, 7);
    const f2 = page(e, a, BASE + 3 * P, 7);
    ksmScan(e, { rounds: 2 });
    expect(e.folios.exists(f1)).toBe(false);
    expect(e.folio(f2)).toMatchObject({ mapcount: 2 });
    expect(e.folio(f2).flags.ksm).toBe(true);
    expect(pte(a, BASE).number).toBe(e.folio(f2).number);
    expect(rmapCandidates(e, f2).map((c) => [c.mm.id, c.address])).toEqual([[a.id, BASE], [a.id, BASE + 3 * P]]);
    expectClean(e);
  });

  it('§12.2 unequal tags never merge', () => {
    const { e, a, b, fa, fb } = pair([1, 2]);
    const before = [a.entryAt(BASE).raw, b.entryAt(BASE).raw];
    const r = ksmScan(e, { rounds: 4 });
    expect(r.merged).toBe(0);
    expect([a.entryAt(BASE).raw, b.entryAt(BASE).raw]).toEqual(before);
    expect([e.folio(fa).flags.ksm, e.folio(fb).flags.ksm]).toEqual([false, false]);
    expect(e.rmap.ksm.all().next().done).toBe(true);
    expectClean(e);
  });

  it('§8.2 step 2 a page whose tag changed between scans is volatile: it merges only after two stable scans', () => {
    const { e, a, b, fb } = pair([5, 6]);
    ksmScan(e);
    e.folios.setTag(fb, 0, 1, 5); // b now writes the same content as a
    const r2 = ksmScan(e);
    expect(r2).toMatchObject({ volatile: 1, merged: 0 });
    expect(pte(b, BASE).write).toBe(true);
    expectClean(e);
    const r3 = ksmScan(e);
    expect(r3.merged).toBe(2);
    expect(pte(a, BASE).number).toBe(pte(b, BASE).number);
    expectClean(e);
  });

  it('§8.3 step 2 a pinned page refuses to merge and nothing changes', () => {
    const { e, a, b, fa, fb } = pair([9, 9]);
    opsState(e).pins.set(fb, 1); // b's page is scanned second: it is the page write_protect_page refuses
    ksmScan(e);
    const before = JSON.stringify([a.entryAt(BASE).raw, b.entryAt(BASE).raw, e.folio(fa), e.folio(fb), e.page('pfn', e.folio(fb).number)]);
    const r = ksmScan(e, { rounds: 2 });
    expect(r.merged).toBe(0);
    expect(r.refused).toBe(2);
    expect(JSON.stringify([a.entryAt(BASE).raw, b.entryAt(BASE).raw, e.folio(fa), e.folio(fb), e.page('pfn', e.folio(fb).number)])).toBe(before);
    expectClean(e);
  });

  it('§8.2 step 5 the pair partner pinned: the half-made KSM page is unshared again (break_cow) into a private copy', () => {
    const { e, a, b, fa, fb } = pair([9, 9]);
    opsState(e).pins.set(fa, 1);
    const aBefore = a.entryAt(BASE).raw;
    ksmScan(e, { rounds: 2 });
    expect(a.entryAt(BASE).raw).toEqual(aBefore); // untouched, still writable and exclusive
    expect(e.page('pfn', e.folio(fa).number)!.anonExclusive).toBe(true);
    expect(e.folios.exists(fb)).toBe(false); // the lone KSM page went
    const t = b.translate(BASE);
    expect(t.page).toMatchObject({ tag: 9, anonExclusive: true, mapcount: 1 });
    expect(t.leaf.entry.bits.write).toBe(false); // an unshare leaves the PTE read-only
    expect(e.folio(t.page!.folio).flags.ksm).toBe(false);
    expect(e.folioCensus().ksm).toBe(0);
    expectClean(e);
  });

  it('§8.2 step 4 a third page with the same tag joins the existing stable node', () => {
    const { e, b, fb } = pair([3, 3]);
    ksmScan(e, { rounds: 2 });
    const c = e.createMm();
    mergeableVma(c);
    const fc = page(e, c, BASE + P, 3);
    ksmScan(e, { rounds: 2 });
    expect(e.folios.exists(fc)).toBe(false);
    expect(e.folio(fb).mapcount).toBe(3);
    expect(pte(c, BASE + P).number).toBe(pte(b, BASE).number);
    expect(e.rmap.ksm.get(e.folio(fb).anonVma!)!.items.map((i) => i.mm)).toEqual([1, 2, c.id]);
    expectClean(e);
  });

  it('§8.1 rmap_items of an mm that exited leave the stable node at the next scan', () => {
    const { e, a, b, fb } = pair([0x42, 0x42]);
    ksmScan(e, { rounds: 2 });
    e.freeMm(b.id);
    expect(e.folio(fb).mapcount).toBe(1);
    expectClean(e);
    ksmScan(e);
    expect(e.rmap.ksm.get(e.folio(fb).anonVma!)!.items.map((i) => i.mm)).toEqual([a.id]);
    expect(rmapCandidates(e, fb).map((c) => c.mm.id)).toEqual([a.id]);
    expectClean(e);
  });

  it('§8.3 step 1 a large folio is split (§6.2) when its pages merge: four equal pages become one KSM page', () => {
    const e = engine();
    const a = e.createMm();
    const va = mergeableVma(a);
    const f = e.createFolio({ number: 0x100, order: 2, anonVma: 1, index: va.pgoff });
    e.folios.setTag(f, 0, 4, 4);
    a.map(BASE, { count: 4, entry: { kind: 'present', number: 0x100, write: true, dirty: true } });
    const r = ksmScan(e, { rounds: 3 });
    // Round 1: four checksums; round 2: pages 1 and 0 pair up (the split happens here), 2 and 3 join the node.
    expect(r).toMatchObject({ scanned: 12, volatile: 4, merged: 4, skippedLarge: 0 });
    const k = e.folio(f + 1);
    expect(k).toMatchObject({ order: 0, mapcount: 4 });
    expect(k.flags.ksm).toBe(true);
    for (let i = 0; i < 4; i++) expect(pte(a, BASE + i * P)).toMatchObject({ number: 0x101, write: false });
    for (const i of [0, 2, 3]) expect(e.folios.exists(f + i)).toBe(false);
    expectClean(e);
  });

  it('§8.1 VMAs without VM_MERGEABLE are not scanned', () => {
    const e = engine();
    const a = e.createMm();
    a.addVma({ start: BASE, end: END });
    page(e, a, BASE, 8);
    page(e, a, BASE + P, 8);
    expect(ksmScan(e, { rounds: 3 })).toMatchObject({ scanned: 0, merged: 0 });
    expectClean(e);
  });
});

describe('§8.2 step 3 use_zero_pages', () => {
  it('ZERO-tag pages merge with the zero page (ZP, dirty) when ksmUseZeroPages is on; their folios are freed', () => {
    const { e, a, b, fa, fb } = pair([0, 0]);
    setOpsPolicy(e, { ksmUseZeroPages: true });
    const r = ksmScan(e, { rounds: 2 });
    expect(r.zeroMerged).toBe(2);
    const z = zeroPages(e);
    for (const mm of [a, b]) {
      expect(pte(mm, BASE)).toEqual({ number: z.zeroPfn, write: false, dirty: true, special: true });
      expect(leavesIn(e, mm, BASE, BASE + P)[0].kind).toBe('ZP');
    }
    expect(e.folios.exists(fa) || e.folios.exists(fb)).toBe(false);
    expect(e.folioCensus().ksm).toBe(0);
    expectClean(e);
    expect(ksmScan(e).scanned).toBe(0); // zero pages are not anon pages: not scanned again
    expectClean(e);
  });

  it('without use_zero_pages ZERO-tag pages merge into an ordinary KSM folio', () => {
    const { e, fb } = pair([0, 0]);
    expect(ksmScan(e, { rounds: 2 }).merged).toBe(2);
    expect(e.folio(fb).flags.ksm).toBe(true);
    expect(e.page('pfn', e.folio(fb).number)!.tag).toBe(0);
    expectClean(e);
  });
});

describe('§8.4 rmap_walk_ksm', () => {
  function merged() {
    const s = pair([0x77, 0x77]);
    ksmScan(s.e, { rounds: 2 });
    const k = s.e.folio(s.fb);
    const r = dupMmap(s.e, s.a); // a forks after the merge (§1: the child maps the KSM page read-only too)
    if (!r.ok) throw new Error(r.errno);
    const c = r.child;
    const vc = c.vmas.find(BASE)!;
    expect(pte(c, BASE)).toEqual({ number: k.number, write: false, dirty: false, special: false });
    expectClean(s.e);
    return { ...s, k: s.fb, c, vc };
  }

  for (const iface of ['pfn', 'folio-range', 'folio-identity'] as WalkInterface[]) {
    it(`§8.4 every mapping of the KSM folio is found, including a child forked after the merge (${iface})`, () => {
      const { e, a, b, c, k } = merged();
      expect(e.folio(k).mapcount).toBe(3);
      const seen: [number, number, number][] = [];
      rmapWalk(e, [k], {
        interface: iface,
        rmapOne(cand, matches) {
          for (const m of matches) seen.push([cand.mm.id, m.address, m.level === 'pte' ? 1 : 0]);
          return true;
        },
      });
      expect(seen.sort()).toEqual([[a.id, BASE, 1], [b.id, BASE, 1], [c.id, BASE, 1]].sort());
      expectClean(e);
    });
  }

  // rmap_walk_ksm runs pass 1 over all of the node's items, then pass 2 over all of them again (§8.4). These two
  // tests fail while src/rmap/rmap-walk.ts ksmCandidates runs both passes per item (loops nested the other way).
  it('§8.4 two passes: every item\'s own-mm VMAs first, then VMAs of forked mms', () => {
    const { e, a, b, c, k } = merged();
    // items: [a's, b's]; pass 1 visits a then b (same mm as the item), pass 2 the child (forked from a).
    expect(rmapCandidates(e, k).map((x) => [x.mm.id, x.address])).toEqual([[a.id, BASE], [b.id, BASE], [c.id, BASE]]);
  });

  it('§8.2 step 4 scanning the child adds its rmap_item to the node (KSM fork); the walk then finds it in pass 1', () => {
    const { e, a, b, c, vc, k } = merged();
    const r = ksmScan(e);
    expect(r.forked).toBe(1);
    const node = e.rmap.ksm.get(e.folio(k).anonVma!)!;
    expect(node.items.map((i) => [i.mm, i.anonVma])).toEqual([
      [a.id, node.items[0].anonVma], [b.id, node.items[1].anonVma], [c.id, e.rmap.anon.of(vc)],
    ]);
    // Pass 1 now finds the child through its own item, pass 2 finds it again through a's item.
    const cands = rmapCandidates(e, k).map((x) => x.mm.id);
    expect(cands.slice(0, 3)).toEqual([a.id, b.id, c.id]);
    expect(e.folio(k).mapcount).toBe(3);
    expectClean(e);
  });
});

describe('§8.3 breaking sharing: ksmUnmerge (break_ksm)', () => {
  it('unmerge gives private copies with the same tags; the node loses the items; the last one frees the KSM folio', () => {
    const { e, a, b, va, vb, fb } = pair([0x5a, 0x5a]);
    ksmScan(e, { rounds: 2 });
    const node = e.rmap.ksm.get(e.folio(fb).anonVma!)!;
    expect(ksmUnmerge(e, a, BASE, END)).toEqual({ ok: true, value: 0 });
    const t = a.translate(BASE);
    expect(t.page!.folio).not.toBe(fb);
    expect(t.page).toMatchObject({ tag: 0x5a, anonExclusive: true, mapcount: 1 });
    expect(e.folio(t.page!.folio)).toMatchObject({ anonVma: e.rmap.anon.of(va)!.id, index: va.pgoff, order: 0 });
    expect(e.folio(t.page!.folio).flags.ksm).toBe(false);
    expect(t.leaf.entry.bits.write).toBe(false); // unshare: read-only, exclusive (a write fault will reuse it)
    expect(e.folio(fb).mapcount).toBe(1);
    expect(node.items.map((i) => i.mm)).toEqual([b.id]);
    expectClean(e);

    expect(ksmUnmerge(e, b, BASE, END).ok).toBe(true);
    expect(e.folios.exists(fb)).toBe(false);
    expect(e.rmap.ksm.get(node.id)).toBeUndefined();
    expect(b.translate(BASE).page).toMatchObject({ tag: 0x5a, anonExclusive: true });
    expect(e.folio(b.translate(BASE).page!.folio).anonVma).toBe(e.rmap.anon.of(vb)!.id);
    expectClean(e);
    // The private copies can merge again later.
    expect(ksmScan(e, { rounds: 2 }).merged).toBe(2);
    expectClean(e);
  });

  it('KSM-placed zero pages are unshared into private ZERO pages', () => {
    const { e, a } = pair([0, 0]);
    setOpsPolicy(e, { ksmUseZeroPages: true });
    ksmScan(e, { rounds: 2 });
    expect(ksmUnmerge(e, a, BASE, END).ok).toBe(true);
    const t = a.translate(BASE);
    expect(t.leaf.entry.present?.special).toBe(false);
    expect(t.page).toMatchObject({ tag: 0, anonExclusive: true, mapcount: 1 });
    expectClean(e);
  });

  it('ENOMEM when no copy can be allocated, and nothing changes', () => {
    const e = engine(64);
    const a = e.createMm();
    const b = e.createMm();
    mergeableVma(a);
    mergeableVma(b);
    page(e, a, BASE, 1);
    const fb = page(e, b, BASE, 1);
    ksmScan(e, { rounds: 2 });
    while (opsState(e).alloc.alloc({ order: 0 }) !== null); // fill RAM
    const before = JSON.stringify([a.entryAt(BASE).raw, b.entryAt(BASE).raw, e.folio(fb), [...e.rmap.ksm.all()].map((n) => n.items.length)]);
    expect(ksmUnmerge(e, a, BASE, END)).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(JSON.stringify([a.entryAt(BASE).raw, b.entryAt(BASE).raw, e.folio(fb), [...e.rmap.ksm.all()].map((n) => n.items.length)])).toBe(before);
    expect(e.folio(fb).mapcount).toBe(2);
    expectClean(e);
  });

  it('§7.1 MADV_UNMERGEABLE on part of a VMA unmerges that part, splits the VMA and clears VM_MERGEABLE there', () => {
    const e = engine();
    const a = e.createMm();
    const b = e.createMm();
    mergeableVma(a);
    mergeableVma(b);
    for (const mm of [a, b]) {
      page(e, mm, BASE, 0x10);
      page(e, mm, BASE + 8 * P, 0x20);
    }
    ksmScan(e, { rounds: 2 });
    expect(e.folioCensus().ksm).toBe(2);
    expect(madvise(e, a, BASE + 8 * P, 8 * P, 'MADV_UNMERGEABLE')).toEqual({ ok: true, value: 0 });
    expect(a.vmas.all().map((v) => [v.start, v.end, v.flags.mergeable])).toEqual([[BASE, BASE + 8 * P, true], [BASE + 8 * P, END, false]]);
    expect(e.folio(a.translate(BASE + 8 * P).page!.folio).flags.ksm).toBe(false);
    expect(e.folio(a.translate(BASE).page!.folio).flags.ksm).toBe(true);
    expectClean(e);
    // Merging it back joins the VMAs again.
    expect(madvise(e, a, BASE + 8 * P, 8 * P, 'MADV_MERGEABLE').ok).toBe(true);
    expect(a.vmas.all().map((v) => [v.start, v.end, v.flags.mergeable])).toEqual([[BASE, END, true]]);
    expectClean(e);
  });

  it('§7.1 MADV_MERGEABLE: shared VMAs stay unmergeable, a hole gives ENOMEM after the mapped parts, an unaligned start EINVAL', () => {
    const e = engine();
    const a = e.createMm();
    a.addVma({ start: BASE, end: BASE + 4 * P });
    a.addVma({ start: BASE + 4 * P, end: BASE + 8 * P, flags: { shared: true } });
    a.addVma({ start: BASE + 10 * P, end: BASE + 12 * P });
    expect(madvise(e, a, BASE + 1, P, 'MADV_MERGEABLE')).toEqual({ ok: false, errno: 'EINVAL' });
    expect(madvise(e, a, BASE, 12 * P, 'MADV_MERGEABLE')).toEqual({ ok: false, errno: 'ENOMEM' });
    expect(a.vmas.all().map((v) => v.flags.mergeable)).toEqual([true, false, true]);
    expect(madvise(e, a, BASE, 0, 'MADV_UNMERGEABLE')).toEqual({ ok: true, value: 0 });
    expectClean(e);
  });
});
