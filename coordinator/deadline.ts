// The step deadline: how long a worker may take to answer its training slice
// before it is dropped as a straggler and the slice goes to the others within
// the same step (round.ts). Fixed (cluster.stepDeadline.seconds) or, by
// default, adaptive: `factor` × the median of recent slice times, never below
// `minSeconds`, so it follows the model and hardware without tuning.
//
// The clock runs from when the step was written to the worker until its
// StepDone; a worker holding several slices (after a reassignment) gets a
// fresh deadline per slice. A worker's first slice after joining gets
// `joinSeconds` instead (it is still building the model and filling its
// example cache); its time still counts among the recent ones, which can only
// make the next deadlines more lenient, and gives a first measure of a big
// model's step before the floor alone would judge it. Evaluations have no
// deadline (a lost worker's share is still reassigned).

export interface DeadlinePolicy {
  seconds: number | null;
  factor: number;
  minSeconds: number;
  window: number;
  joinSeconds: number;
}

/** The deadline for the next slice, given recent slice times in seconds (pure). */
export function deadlineSeconds(policy: DeadlinePolicy, recent: number[]): number {
  if (policy.seconds !== null) return policy.seconds;
  return Math.max(policy.minSeconds, policy.factor * median(recent));
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export class StepDeadlines {
  private readonly recent: number[] = [];
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();

  constructor(private readonly policy: DeadlinePolicy, private readonly expired: (worker: string, seconds: number) => void) {}

  /** A slice was written to `worker`; `joining`: its first slice since it joined. */
  arm(worker: string, joining: boolean): void {
    if (this.timers.has(worker)) return; // the clock of its oldest slice is running
    const seconds = joining ? this.policy.joinSeconds : deadlineSeconds(this.policy, this.recent);
    const timer = setTimeout(() => { this.timers.delete(worker); this.expired(worker, seconds); }, seconds * 1000);
    this.timers.set(worker, { at: performance.now(), timer });
  }

  /** `worker` answered its oldest slice; `more`: it still holds another (its clock restarts). */
  answered(worker: string, more: boolean): void {
    const t = this.timers.get(worker);
    if (!t) return;
    this.clear(worker);
    this.recent.push((performance.now() - t.at) / 1000);
    if (this.recent.length > this.policy.window) this.recent.shift();
    if (more) this.arm(worker, false);
  }

  clear(worker: string): void {
    const t = this.timers.get(worker);
    if (t) clearTimeout(t.timer);
    this.timers.delete(worker);
  }

  clearAll(): void {
    for (const w of [...this.timers.keys()]) this.clear(w);
  }
}
