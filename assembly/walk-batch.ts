// Driving walks (walk.ts): job records in, match and counter records out. walkBatch runs many walks in one
// call; walkBegin/walkNext/walkRestart/walkEnd drive one walk a call at a time for callers that act between
// matches. src/wasm/walkbuf.ts writes and reads these records.

import { walkInit, walkAddress, walkStep, walkEnd, writeMatch, writeCounters } from './walk';
import { setKey, KEY_PFN } from './walk-match';
import { folioOf } from './memmap';
import { E_NOFOLIO, fail, setResult } from './status';

/**
 * Job records (JOB_BYTES each), written by the host (src/walk/pvmw.ts):
 *   0 u32 root · 4 u32 key mode | hugetlb height << 8 | stop after the first match << 16 · 8 u32 flags
 *   16 f64 VMA start · 24 f64 VMA end · 32 f64 VMA pgoff
 *   40 f64 number (pfn key) or folio id (folio keys) · 48 f64 nr_pages (pfn key) or page index, −1 for none
 *   56 f64 pgoff (pfn key) · 64 f64 start address, −1 for vma_address
 * Match records (MATCH_BYTES): 0 u32 job · 4 u32 height | lock kind << 8 · 8 u32 flags · 12 u32 lock table
 *   16 f64 address · 24 u64 entry.
 * Counter records (COUNTER_BYTES): u32 reads at heights 0..4, memmap lookups, restarts, tables crossed,
 *   matches, status (0 walked, 1 -EFAULT: the key lies outside the VMA, no walk) · 40 f64 start address.
 */
/** Set up the walk of the job record at `job`. False: -EFAULT (the key lies outside the VMA). */
function setup(job: usize): bool {
  const info = load<u32>(job + 4);
  setKey(info & 0xff, load<f64>(job + 40), load<f64>(job + 48), load<f64>(job + 56));
  return walkInit(<usize>load<u32>(job), <u64>load<f64>(job + 16), <u64>load<f64>(job + 24), <u64>load<f64>(job + 32), (info >> 8) & 0xff, load<u32>(job + 8), load<f64>(job + 64));
}

export const JOB_BYTES: u32 = 80;
export const MATCH_BYTES: u32 = 32;
export const COUNTER_BYTES: u32 = 48;

// --- one walk, step by step (callers that act between matches, like try_to_unmap_one) ------------------

/** Start the walk of the job at `job` (the host checked it); its start address goes to `counters` + 40.
 *  False: -EFAULT, the key lies outside the VMA. */
export function walkBegin(job: usize, counters: usize): bool {
  const walked = setup(job);
  store<f64>(counters + 40, walked ? walkAddress() : -1);
  return walked;
}

/** One call of page_vma_mapped_walk; on true the match is written at `out` (a match record, job 0). */
export function walkNext(out: usize): bool {
  if (!walkStep()) return false;
  writeMatch(out, 0);
  return true;
}

/** The counters of the step-wise walk, written as a counter record at `out`. */
export function walkCounters(out: usize): void {
  writeCounters(out);
}

/**
 * Run jobs [0, nJobs) at `jobs`, writing every match at `out` (room for `cap`) and each job's counters at
 * `counters`. Returns the number of jobs completed: fewer than nJobs when the next job's matches did not fit
 * (its partial matches are dropped; run it again with fresh room). The total matches written go to the result
 * register. Folio keys must name folios (the host checks); E_NOFOLIO otherwise.
 */
export function walkBatch(jobs: usize, nJobs: u32, out: usize, cap: u32, counters: usize): i32 {
  let n: u32 = 0;
  for (let j: u32 = 0; j < nJobs; j++) {
    const job = jobs + <usize>j * JOB_BYTES;
    const mode = load<u32>(job + 4) & 0xff;
    if (mode != KEY_PFN && folioOf(load<f64>(job + 40)) != load<f64>(job + 40)) return fail(E_NOFOLIO, load<f64>(job + 40));
    const c = counters + <usize>j * COUNTER_BYTES;
    const stopFirst = (load<u32>(job + 4) & (1 << 16)) != 0;
    let found: u32 = 0;
    const walked = setup(job);
    store<f64>(c + 40, walked ? walkAddress() : -1);
    if (walked) {
      while (walkStep()) {
        if (n + found >= cap) {
          walkEnd();
          setResult(<u64>n);
          return <i32>j;
        }
        writeMatch(out + <usize>(n + found) * MATCH_BYTES, j);
        found++;
        if (stopFirst) {
          walkEnd();
          break;
        }
      }
      store<u32>(c + 36, 0);
    } else {
      store<u32>(c + 36, 1);
    }
    writeCounters(c);
    store<u32>(c + 32, found);
    n += found;
  }
  setResult(<u64>n);
  return <i32>nJobs;
}
