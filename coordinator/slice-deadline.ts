// The slice deadline: how long a worker may take to answer a slice of a
// training step or of an evaluation before it is dropped as a straggler and
// the slice goes to the others within the same round (round.ts). Adaptive by default: `factor` × the median time per
// example of recent training slices × the slice's examples, never below
// `minSeconds` — so it follows the model, the hardware and the slice size (a
// worker's share grows when others leave) without tuning. Or fixed
// (cluster.sliceDeadline.seconds) per training slice.
//
// The clock runs from when the slice was written to the worker until its
// answer; a worker holding several slices (after a reassignment) gets a fresh
// deadline per slice. A worker's first slice after joining gets `joinSeconds`
// instead (it is still building the model and filling its example cache); its
// time still counts among the recent ones, which can only make the next
// deadlines more lenient, and gives a first measure of a big model's step
// before the floor alone would judge it.
//
// Evaluation slices (the validation set split across workers) get the same
// rule, so a hung worker cannot stall an evaluation forever. Forward passes
// cost about a third of a training step per example, so that leaves room for a
// slow one; with a fixed deadline they get it scaled by their size over the
// median training slice's. Their times are not recorded: they would shrink the
// step deadline.

import { median } from '../core/util/numbers';
import { Clock, systemClock } from './clock';

export interface DeadlinePolicy {
  seconds: number | null;
  factor: number;
  minSeconds: number;
  window: number;
  joinSeconds: number;
}

export type SliceKind = 'step' | 'evaluation';

/** What a worker was given: a training or evaluation slice of `examples`; `joining`: its first since it joined. */
export interface Slice {
  kind: SliceKind;
  examples: number;
  joining: boolean;
}

export interface SliceTime {
  seconds: number;
  examples: number;
}

/** The deadline for `slice`, given recent training slices (pure). */
export function deadlineSeconds(policy: DeadlinePolicy, recent: SliceTime[], slice: Slice): number {
  if (slice.joining) return policy.joinSeconds;
  if (policy.seconds !== null) {
    const typical = median(recent.map((r) => r.examples));
    return slice.kind === 'evaluation' && typical > 0 ? policy.seconds * Math.max(1, slice.examples / typical) : policy.seconds;
  }
  const perExample = median(recent.map((r) => r.seconds / r.examples));
  return Math.max(policy.minSeconds, policy.factor * perExample * slice.examples);
}

export class Deadlines {
  private readonly recent: SliceTime[] = [];
  private readonly timers = new Map<string, { at: number; slice: Slice; cancel: () => void }>();

  constructor(
    private readonly policy: DeadlinePolicy,
    private readonly expired: (worker: string, seconds: number, kind: SliceKind) => void,
    private readonly clock: Clock = systemClock,
  ) {}

  /** A slice was written to `worker`. */
  arm(worker: string, slice: Slice): void {
    if (this.timers.has(worker)) return; // the clock of its oldest slice is running
    const seconds = deadlineSeconds(this.policy, this.recent, slice);
    const cancel = this.clock.after(seconds * 1000, () => { this.timers.delete(worker); this.expired(worker, seconds, slice.kind); });
    this.timers.set(worker, { at: this.clock.now(), slice, cancel });
  }

  /**
   * `worker` answered its oldest slice; `next`: the slice it still holds,
   * whose clock starts now. Returns how long the answered slice took, from
   * being written to its answer (null if its clock was not running).
   */
  answered(worker: string, next?: Slice): (SliceTime & { kind: SliceKind }) | null {
    const t = this.timers.get(worker);
    if (!t) return null;
    this.clear(worker);
    const took = { kind: t.slice.kind, seconds: (this.clock.now() - t.at) / 1000, examples: t.slice.examples };
    if (took.kind === 'step') {
      this.recent.push(took);
      if (this.recent.length > this.policy.window) this.recent.shift();
    }
    if (next) this.arm(worker, next);
    return took;
  }

  clear(worker: string): void {
    this.timers.get(worker)?.cancel();
    this.timers.delete(worker);
  }

  clearAll(): void {
    for (const w of [...this.timers.keys()]) this.clear(w);
  }
}
