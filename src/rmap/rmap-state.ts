import { AnonVmas } from './anon-vma.js';
import { IMmap } from './i-mmap.js';
import { StableNodes } from './stable-node.js';

/** The reverse-map structures of one engine (spec §6.1): anon_vmas with their AVC trees, i_mmap, KSM nodes. */
export class RmapState {
  readonly anon = new AnonVmas();
  readonly iMmap = new IMmap();
  readonly ksm = new StableNodes();
}
