// The ledger: which training examples each step consumed, and on which
// worker. It proves the sampling policy: within an epoch every example is
// used exactly once. Entries are recorded when a slice's gradient has been
// accepted, so a slice reassigned after a worker was lost appears once, under
// the worker that finally computed it.
import { LedgerReport } from '../proto/gen/tunefleet/v1/tunefleet';

interface Entry {
  step: number;
  workerId: string;
  indices: Uint32Array;
  epochs: Uint32Array;
}

export class Ledger {
  private readonly entries: Entry[] = [];

  constructor(readonly datasetSize: number) {}

  record(step: number, workerId: string, indices: Uint32Array, epochs: Uint32Array): void {
    this.entries.push({ step, workerId, indices: indices.slice(), epochs: epochs.slice() });
  }

  report(epoch: number): LedgerReport {
    const uses = new Uint32Array(this.datasetSize);
    const entries: LedgerReport['entries'] = [];
    let used = 0;
    for (const e of this.entries) {
      const mine = Array.from(e.indices).filter((_, i) => e.epochs[i] === epoch);
      if (mine.length === 0) continue;
      for (const i of mine) uses[i]++;
      used += mine.length;
      entries.push({ step: e.step, workerId: e.workerId, indices: mine });
    }
    const distinct = uses.reduce((a, u) => a + (u > 0 ? 1 : 0), 0);
    return { epoch, datasetSize: this.datasetSize, examplesUsed: used, distinct, complete: used === this.datasetSize && distinct === this.datasetSize, entries };
  }
}
