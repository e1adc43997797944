import { PvmwError } from '../errors.js';
import type { Engine } from '../model/engine.js';
import type { RawEntry } from '../model/entry.js';
import type { FolioId, FolioInfo } from '../model/folio.js';
import { PAGE_SIZE } from '../model/geometry.js';
import type { Mm } from '../model/mm.js';
import type { Leaf } from '../model/pte-batch.js';
import type { Vma } from '../model/vma.js';
import type { RmapItem, StableNode } from '../rmap/stable-node.js';
import { err, ok, type SysResult } from './errno.js';
import { leavesIn, presentRaw, putFolio, vmaPageProt, writeLeaves, zeroPages, type LeafView } from './leaf.js';
import { newAnonRmap, tryShareAnon } from './rmap-primitives.js';
import { opsState } from './state.js';
import { splitFolio } from './split-folio.js';

/**
 * KSM (kernel-operations.md §8, contents as tags §12.2). ksmScan runs full scans of every VM_MERGEABLE VMA of
 * every mm, page by page in address order (mms in id order: the "scan order" decision of §13), doing
 * cmp_and_merge_page (§8.2) for each order-0 anon page; merges are try_to_merge_one_page (§8.3). Content
 * compare is tag equality and the checksum is the tag (§12.2). ksmUnmerge is break_ksm over a range.
 *
 * Choices (§13 / §14): an rmap_item starts with no checksum, so every page needs two scans before it can merge
 * (§8.2 step 2); every page of a large folio (PL, or each of a PMD's 512 pages) is an item of its own with its
 * page's tag as checksum, and the folio is split to order 0 (§6.2, split-folio.ts) only when one of its pages is
 * about to merge (§8.3 step 1: a failed split refuses the merge); the round's leaves of a split folio are read
 * again. max_page_sharing chains are not modelled (one stable node per tag); transient references
 * are none, so write_protect_page's refcount check fails exactly for pinned folios. Per round the leaves of a
 * VMA are read in one call and all PTE changes are written once at the round's end, then replaced folios are put.
 */

/** The scanner's rmap_item (§8.1): (mm, address), the previous scan's checksum, and its stable-node link. */
interface ScanItem {
  mm: Mm;
  address: number;
  oldchecksum: number | null;
  node: StableNode | null;
  rmap: RmapItem | null;
}

/** Per engine: rmap_items by mm id and address. */
interface KsmState {
  items: Map<number, Map<number, ScanItem>>;
}

const states = new WeakMap<Engine, KsmState>();
function ksmState(engine: Engine): KsmState {
  let s = states.get(engine);
  if (!s) states.set(engine, (s = { items: new Map() }));
  return s;
}

export interface KsmScanReport {
  rounds: number;
  /** Pages looked at (order-0 anon pages in mergeable VMAs). */
  scanned: number;
  /** rmap_items added to stable nodes (a merged pair counts 2). */
  merged: number;
  /** Mappings of a KSM page inherited by fork whose rmap_item joined the stable node (§8.2 step 4, page == kpage). */
  forked: number;
  /** Pages replaced by the zero page (use_zero_pages, §8.2 step 3). */
  zeroMerged: number;
  /** Pages whose checksum changed since the previous scan, or was new (§8.2 step 2). */
  volatile: number;
  /** Merges refused by write_protect_page (pinned folio, §8.3 step 2). */
  refused: number;
  /** Merges refused because the page's large folio could not be split (§8.3 step 1, e.g. pinned → EAGAIN). */
  skippedLarge: number;
}

/**
 * One page the scanner looks at: the leaf mapping it as read this round (a PTE, or the PMD of a THP) and the
 * page's number inside the leaf's folio. The leaf is stale once that (large) folio was split this round.
 */
interface ScanPage {
  leaf: LeafView;
  va: number;
  page: number;
}

/** An unstable-tree entry: the item, its VMA and the page as it was when inserted this round. */
interface Unstable {
  item: ScanItem;
  vma: Vma;
  sp: ScanPage;
}

/** PTE writes of a round (last value per address) and the folios to put once they are written. */
class Pending {
  private readonly writes = new Map<Mm, Map<number, Leaf>>();
  private readonly puts = new Set<FolioId>();

  set(mm: Mm, va: number, raw: RawEntry): void {
    let m = this.writes.get(mm);
    if (!m) this.writes.set(mm, (m = new Map()));
    m.set(va, { va, level: 'pte', raw });
  }

  put(id: FolioId): void {
    this.puts.add(id);
  }

  flush(engine: Engine): void {
    for (const [mm, m] of this.writes) writeLeaves(engine, mm, [...m.values()]);
    for (const id of this.puts) putFolio(engine, id);
    this.writes.clear();
    this.puts.clear();
  }
}

/** vma_ksm_compatible, as far as pvmw models VMA kinds: not shared, not hugetlb. */
export function vmaKsmCompatible(vma: Vma): boolean {
  return !vma.flags.shared && vma.flags.hugetlb === null;
}

function tagOf(engine: Engine, f: FolioInfo): number {
  return engine.page(f.namespace, f.number)!.tag;
}

/** The content tag of a scanned page (its checksum, §12.2). */
function pageTag(engine: Engine, sp: ScanPage): number {
  const f = sp.leaf.folio!;
  return engine.page(f.namespace, f.number + sp.page)!.tag;
}

/** The PTE leaf now at `va` if it maps an order-0 anon page (a page of a folio split this round), else null. */
function smallPageAt(engine: Engine, mm: Mm, va: number): LeafView | null {
  const l = leavesIn(engine, mm, va, va + PAGE_SIZE).find((x) => x.va === va && x.level === 'pte');
  return l && (l.kind === 'P' || l.kind === 'PN') && l.folio?.anon && l.folio.order === 0 ? l : null;
}

/** The stable node a KSM folio's mapping names, if it still exists. */
function nodeOf(engine: Engine, f: FolioInfo): StableNode | undefined {
  return f.flags.ksm && f.anonVma ? engine.rmap.ksm.get(f.anonVma) : undefined;
}

/** remove_rmap_item_from_tree for the stable tree: the item leaves its node (the unstable tree is per round). */
function removeFromStable(item: ScanItem): void {
  if (item.node && item.rmap) {
    const i = item.node.items.indexOf(item.rmap);
    if (i >= 0) item.node.items.splice(i, 1);
  }
  item.node = null;
  item.rmap = null;
}

/** stable_tree_append (§8.2 step 4/5, §8.3 step 5): the item joins the node with the VMA's anon_vma. */
function stableTreeAppend(engine: Engine, item: ScanItem, vma: Vma, node: StableNode): void {
  removeFromStable(item);
  const rmap: RmapItem = { mm: item.mm.id, address: item.address, anonVma: engine.rmap.anon.prepare(vma) };
  node.items.push(rmap);
  item.node = node;
  item.rmap = rmap;
}

/**
 * write_protect_page (§8.3 step 2): a writable or dirty PTE, or an AnonExclusive page, is made read-only and
 * clean after the refcount check (refused for a pinned folio) and try-share; the folio takes the dirty bit.
 * Returns the PTE now in place, or null if refused.
 */
function writeProtectPage(engine: Engine, pending: Pending, mm: Mm, leaf: LeafView): RawEntry | null {
  const f = leaf.folio!;
  const bits = leaf.entry.present!;
  const exclusive = engine.folios.anonExclusive(f.id, 0);
  if (!bits.write && !leaf.entry.bits.dirty && !exclusive) return leaf.raw;
  if (opsState(engine).pinned(f.id)) return null; // refcount ≠ mapcount + 1
  if (exclusive && !tryShareAnon(engine, f, 0, 1)) return null;
  if (leaf.entry.bits.dirty) engine.folios.setFlags(f.id, { dirty: true });
  const raw = presentRaw('pte', f.number, { ...bits, write: false, dirty: false, savedDirty: false });
  pending.set(mm, leaf.va, raw);
  return raw;
}

/**
 * replace_page (§8.3 step 4): the PTE maps the KSM page (or the zero page: special and dirty) with the VMA's
 * protection, accessed (x86 vm_page_prot carries it); the old folio loses the mapping and is put.
 */
function replacePage(engine: Engine, pending: Pending, mm: Mm, vma: Vma, leaf: LeafView, kpage: FolioInfo | 'zero'): void {
  const prot = { ...vmaPageProt(vma), young: true };
  const raw = kpage === 'zero'
    ? presentRaw('pte', zeroPages(engine).zeroPfn, { ...prot, special: true, dirty: true })
    : presentRaw('pte', kpage.number, prot);
  pending.set(mm, leaf.va, raw);
  pending.put(leaf.folio!.id);
}

/**
 * try_to_merge_one_page (§8.3): a page of a large folio first has its folio split to order 0 (step 1; a failed
 * split refuses); kpage null = the first page of a pair becomes the KSM page (no node yet, dirty); else,
 * contents (tags) equal, replace_page. page == kpage (a KSM page inherited by fork) is success. Returns the
 * (order-0) page's leaf as merged, or null if refused.
 */
function tryToMergeOnePage(engine: Engine, r: Round, mm: Mm, vma: Vma, sp: ScanPage, kpage: FolioInfo | 'zero' | null): LeafView | null {
  let leaf = sp.leaf;
  let f = leaf.folio!;
  if (kpage !== null && kpage !== 'zero' && kpage.id === f.id && f.order === 0) return leaf;
  if (!f.anon || f.devicePrivate) return null;
  if (f.order > 0) {
    if (!r.split.has(f.id)) {
      if (!splitFolio(engine, f.id, 0).ok) {
        r.report.skippedLarge++;
        return null;
      }
      r.split.add(f.id);
    }
    const small = smallPageAt(engine, mm, sp.va); // a ZERO page became ZP: nothing left to merge
    if (!small) return null;
    leaf = small;
    f = small.folio!;
  }
  if (writeProtectPage(engine, r.pending, mm, leaf) === null) return null;
  if (kpage === null) {
    engine.folios.setFlags(f.id, { ksm: true, dirty: true });
    engine.folios.setMapping(f.id, 0, f.index);
    return leaf;
  }
  const ktag = kpage === 'zero' ? 0 : tagOf(engine, kpage);
  if (tagOf(engine, f) !== ktag) return null; // pages_identical
  replacePage(engine, r.pending, mm, vma, leaf, kpage);
  return leaf;
}

/** One full scan's trees: stable (tag → node, from the engine's nodes) and unstable (tag → item, rebuilt). */
interface Round {
  stable: Map<number, StableNode>;
  /** Large folios split this round (their ids are now their first order-0 piece's). */
  split: Set<FolioId>;
  unstable: Map<number, Unstable>;
  pending: Pending;
  report: KsmScanReport;
}

/** cmp_and_merge_page (§8.2) for the item at an anon page (of an order-0 or a large folio). */
function cmpAndMergePage(engine: Engine, r: Round, item: ScanItem, vma: Vma, sp: ScanPage): void {
  const f = sp.leaf.folio!;
  const rep = r.report;
  rep.scanned++;
  if (f.flags.ksm) {
    const node = nodeOf(engine, f);
    if (node && item.node === node) return; // step 1
    if (!node) return; // a KSM page with no node: only between the two merges of a pair
    // The stable tree finds this very page (a mapping inherited by fork): the item joins its node.
    stableTreeAppend(engine, item, vma, node);
    rep.forked++;
    return;
  }
  removeFromStable(item);
  const checksum = pageTag(engine, sp);
  if (item.oldchecksum !== checksum) { // step 2
    item.oldchecksum = checksum;
    rep.volatile++;
    return;
  }
  if (opsState(engine).policy.ksmUseZeroPages && checksum === 0) { // step 3
    if (tryToMergeOnePage(engine, r, item.mm, vma, sp, 'zero')) {
      rep.zeroMerged++;
      return;
    }
  }
  const node = r.stable.get(checksum);
  if (node) { // step 4
    if (tryToMergeOnePage(engine, r, item.mm, vma, sp, engine.folio(node.folio))) {
      stableTreeAppend(engine, item, vma, node);
      rep.merged++;
    } else rep.refused++;
    return;
  }
  const q = r.unstable.get(checksum); // step 5
  if (!q) {
    r.unstable.set(checksum, { item, vma, sp });
    return;
  }
  const qf = q.sp.leaf.folio!;
  if (qf.number + q.sp.page === f.number + sp.page) return; // the same page mapped twice: no match, not inserted
  const leaf = tryToMergeOnePage(engine, r, item.mm, vma, sp, null);
  if (!leaf) {
    rep.refused++;
    return;
  }
  const kpage = engine.folio(leaf.folio!.id);
  if (!tryToMergeOnePage(engine, r, q.item.mm, q.vma, q.sp, kpage)) {
    // break_cow: the lone KSM page is unshared again.
    unshareKsmPage(engine, r.pending, item.mm, vma, leaf, kpage);
    rep.refused++;
    return;
  }
  r.unstable.delete(checksum);
  const created = engine.rmap.ksm.create(kpage.id);
  engine.folios.setMapping(kpage.id, created.id, kpage.index);
  r.stable.set(checksum, created);
  stableTreeAppend(engine, q.item, q.vma, created);
  stableTreeAppend(engine, item, vma, created);
  rep.merged += 2;
}

/** Every live KSM folio's node by tag (the stable tree; first node of a tag wins). */
function stableTree(engine: Engine): Map<number, StableNode> {
  const out = new Map<number, StableNode>();
  for (const node of engine.rmap.ksm.all()) {
    if (!engine.folios.exists(node.folio)) continue;
    const f = engine.folio(node.folio);
    if (!f.flags.ksm || f.anonVma !== node.id) continue;
    const tag = tagOf(engine, f);
    if (!out.has(tag)) out.set(tag, node);
  }
  return out;
}

/**
 * ksmScan (§8.2): `rounds` full scans (default 1). Each scans the mergeable VMAs of every mm in address order;
 * rmap_items of addresses no longer holding an order-0 anon page in a mergeable VMA, and of freed mms, are
 * removed (and leave their stable nodes).
 */
export function ksmScan(engine: Engine, options: { rounds?: number } = {}): KsmScanReport {
  const rounds = options.rounds ?? 1;
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new PvmwError('BAD_SETTING', `rounds must be a whole number from 1, got ${JSON.stringify(options.rounds)}`);
  }
  const s = ksmState(engine);
  const report: KsmScanReport = { rounds, scanned: 0, merged: 0, forked: 0, zeroMerged: 0, volatile: 0, refused: 0, skippedLarge: 0 };
  for (let n = 0; n < rounds; n++) {
    const r: Round = { stable: stableTree(engine), split: new Set(), unstable: new Map(), pending: new Pending(), report };
    const live = engine.allMms();
    for (const [id, items] of s.items) {
      if (live.some((m) => m.id === id)) continue;
      for (const it of items.values()) removeFromStable(it);
      s.items.delete(id);
    }
    for (const mm of live) {
      let items = s.items.get(mm.id);
      if (!items) s.items.set(mm.id, (items = new Map()));
      const seen = new Set<number>();
      for (const vma of mm.vmas.all()) {
        if (!vma.flags.mergeable || !vmaKsmCompatible(vma) || !engine.rmap.anon.of(vma)) continue;
        for (const leaf of leavesIn(engine, mm, vma.start, vma.end)) {
          const f = leaf.folio;
          if ((leaf.kind !== 'P' && leaf.kind !== 'PN' && leaf.kind !== 'PL' && leaf.kind !== 'PMD') || !f || !f.anon) continue;
          const pages = leaf.level === 'pte' ? 1 : f.nrPages;
          for (let k = 0; k < pages; k++) {
            let sp: ScanPage = { leaf, va: leaf.va + k * PAGE_SIZE, page: leaf.page + k };
            if (f.order > 0 && r.split.has(f.id)) {
              const small = smallPageAt(engine, mm, sp.va); // the folio was split after this leaf was read
              if (!small) continue;
              sp = { leaf: small, va: sp.va, page: 0 };
            }
            let item = items.get(sp.va);
            if (!item) items.set(sp.va, (item = { mm, address: sp.va, oldchecksum: null, node: null, rmap: null }));
            seen.add(sp.va);
            cmpAndMergePage(engine, r, item, vma, sp);
          }
        }
      }
      for (const [va, it] of items) {
        if (seen.has(va)) continue;
        removeFromStable(it);
        items.delete(va);
      }
    }
    r.pending.flush(engine);
  }
  return report;
}

/**
 * break_ksm's unshare fault on one KSM page (§8.3 "breaking sharing", §5.6 step 4 with unshare): a new order-0
 * folio with the same tag (§12.2), new-anon-rmap exclusive, mapped read-only with the VMA's protection, young,
 * soft-dirty and uffd-wp kept. The KSM page (or KSM zero page) loses the mapping and is put. Returns false on
 * OOM (nothing changed).
 */
function unshareKsmPage(engine: Engine, pending: Pending, mm: Mm, vma: Vma, leaf: LeafView, kpage: FolioInfo, fresh?: FolioId): boolean {
  const id = fresh ?? opsState(engine).alloc.alloc({ order: 0 });
  if (id === null) return false;
  engine.folios.setTag(id, 0, 1, tagOf(engine, kpage));
  newAnonRmap(engine, id, vma, leaf.va, true);
  const old = leaf.entry.present!;
  pending.set(mm, leaf.va, presentRaw('pte', engine.folio(id).number, {
    ...vmaPageProt(vma), young: true, softDirty: old.softDirty, uffdWp: old.uffdWp,
  }));
  pending.put(kpage.id);
  return true;
}

/**
 * ksmUnmerge (break_ksm over [start, end) of `mm`, as MADV_UNMERGEABLE (§8.3) and mremap (§4.2 step 1) use it):
 * every KSM page mapped there, and every KSM-placed zero page (a dirty ZP, §8.2 step 3), is replaced by a
 * private copy with the same tag; the page's stable node loses that (mm, address) item; a KSM folio left
 * unmapped is freed (putFolio removes its node). All copies are allocated first: ENOMEM changes nothing.
 */
export function ksmUnmerge(engine: Engine, mm: Mm, start: number, end: number): SysResult {
  const todo: { vma: Vma; leaf: LeafView }[] = [];
  for (const leaf of leavesIn(engine, mm, start, end)) {
    const ksmPage = (leaf.kind === 'P' || leaf.kind === 'PN') && leaf.folio?.flags.ksm === true;
    const ksmZero = leaf.kind === 'ZP' && leaf.entry.bits.dirty;
    const vma = mm.vmas.find(leaf.va);
    if ((ksmPage || ksmZero) && vma?.anon) todo.push({ vma, leaf });
  }
  const alloc = opsState(engine).alloc;
  const fresh: FolioId[] = [];
  for (let i = 0; i < todo.length; i++) {
    const id = alloc.alloc({ order: 0 });
    if (id === null) {
      for (const f of fresh) alloc.free(f);
      return err('ENOMEM');
    }
    fresh.push(id);
  }
  const pending = new Pending();
  const items = ksmState(engine).items.get(mm.id);
  todo.forEach(({ vma, leaf }, i) => {
    const kpage = leaf.folio!;
    unshareKsmPage(engine, pending, mm, vma, leaf, kpage, fresh[i]);
    const node = nodeOf(engine, kpage);
    const item = items?.get(leaf.va);
    if (item && item.node === node) removeFromStable(item);
    else if (node) node.items = node.items.filter((it) => it.mm !== mm.id || it.address !== leaf.va);
  });
  pending.flush(engine);
  return ok();
}
