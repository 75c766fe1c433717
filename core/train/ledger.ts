// The ledger: which training examples each step consumed, and on which
// worker. It proves the sampling policy: within an epoch every example is
// used exactly once. Entries are recorded when a slice's gradient has been
// accepted, so a slice reassigned after a worker was lost appears once, under
// the worker that finally computed it.
//
// It keeps the current and the previous epoch (older entries are dropped, so
// a long job's ledger does not grow without bound) and travels in every
// checkpoint: a restarted coordinator resumes it at the checkpoint's step and
// records the steps it redoes once, as if it had never stopped.
import { LedgerReport } from '../../proto/gen/tunefleet/v1/tunefleet';

export interface LedgerEntry {
  step: number;
  workerId: string;
  indices: number[];
  epochs: number[];
}

export class Ledger {
  private entries: LedgerEntry[] = [];

  constructor(readonly datasetSize: number, restored: LedgerEntry[] = []) {
    this.restore(restored);
  }

  record(step: number, workerId: string, indices: Uint32Array, epochs: Uint32Array): void {
    this.entries.push({ step, workerId, indices: Array.from(indices), epochs: Array.from(epochs) });
    const keepFrom = epochs[epochs.length - 1] - 1;
    if (this.entries[0].epochs[this.entries[0].epochs.length - 1] < keepFrom) {
      this.entries = this.entries.filter((e) => e.epochs[e.epochs.length - 1] >= keepFrom);
    }
  }

  /** Back to a checkpoint's entries (the coordinator went back to it). */
  restore(entries: LedgerEntry[]): void {
    this.entries = entries.slice();
  }

  /** The entries, for a checkpoint. */
  snapshot(): LedgerEntry[] {
    return this.entries;
  }

  report(epoch: number): LedgerReport {
    const uses = new Uint32Array(this.datasetSize);
    const entries: LedgerReport['entries'] = [];
    let used = 0;
    for (const e of this.entries) {
      const mine = e.indices.filter((_, i) => e.epochs[i] === epoch);
      if (mine.length === 0) continue;
      for (const i of mine) uses[i]++;
      used += mine.length;
      entries.push({ step: e.step, workerId: e.workerId, indices: mine });
    }
    const distinct = uses.reduce((a, u) => a + (u > 0 ? 1 : 0), 0);
    // Entries of the newest epoch are never dropped, so the newest one recorded is still among them.
    const newest = this.entries.reduce((m, e) => Math.max(m, e.epochs[e.epochs.length - 1]), 0);
    const kept = epoch >= newest - 1;
    return { epoch, datasetSize: this.datasetSize, examplesUsed: used, distinct, complete: kept && used === this.datasetSize && distinct === this.datasetSize, entries, kept };
  }
}
