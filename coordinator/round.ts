// A round hands slices of work (a training step's global batch, or the
// validation set) to workers and collects one result per slice.
//
// Failure policy of a round:
// - Every live worker gets a slice (sizes differ by at most one) and the round
//   waits until a result for every slice is in. A worker that misses its
//   slice's deadline (slice-deadline.ts) is dropped by the cluster, and so is lost here.
// - A worker whose stream ends before its result arrived is excluded from the
//   round; each of its outstanding slices is handed, within the same round, to
//   the live worker with the fewest outstanding slices. A step's gradient is
//   therefore still the mean over exactly the global batch, and the ledger
//   records each slice once, under the worker that computed it.
// - With no live worker left, orphaned slices wait for the next worker to join.
// - A slice whose gradient is NaN/Inf is blamed on its worker once (its
//   session ends, the slice goes to another); the same slice non-finite a
//   second time means the model diverged, and the round is aborted (step.ts).
// - Results are weighted by example count by whoever consumes them, so the
//   outcome does not depend on how slices were split or reassigned.
// - A worker processes its slices in the order sent, so a result always
//   belongs to the oldest outstanding slice of that worker.

export interface Task {
  indices: Uint32Array;
  epochs?: Uint32Array;
}

export type Dispatch = (workerId: string, task: Task) => Promise<void>;

export class Round<R> {
  private readonly queues = new Map<string, Task[]>();
  private readonly orphans: Task[] = [];
  private remaining: number;
  private resolve!: () => void;
  private reject!: (err: Error) => void;
  private aborted = false;
  readonly done: Promise<void>;

  constructor(private readonly dispatch: Dispatch, private readonly accept: (workerId: string, task: Task, result: R) => void) {
    this.remaining = 0;
    this.done = new Promise((resolve, reject) => { this.resolve = resolve; this.reject = reject; });
  }

  /** End the round without a result (the job cannot go on): `done` rejects with `err`; later results are refused. */
  abort(err: Error): void {
    this.aborted = true;
    this.reject(err);
  }

  /** Start the round: slice i goes to workers[i]. */
  start(workers: string[], tasks: Task[]): void {
    this.remaining = tasks.length;
    if (this.remaining === 0) this.resolve();
    tasks.forEach((t, i) => this.assign(workers[i], t));
  }

  private assign(workerId: string, task: Task): void {
    const q = this.queues.get(workerId) ?? [];
    q.push(task);
    this.queues.set(workerId, q);
    void this.dispatch(workerId, task);
  }

  /**
   * A worker reported the result of its oldest outstanding slice. False: it
   * had none (stale or unexpected). If `accept` throws, the slice stays the
   * worker's, so it is reassigned when the caller ends that worker's session.
   */
  complete(workerId: string, result: R): boolean {
    const queue = this.queues.get(workerId);
    if (!queue?.length || this.aborted) return false;
    this.accept(workerId, queue[0], result);
    queue.shift();
    if (--this.remaining === 0) this.resolve();
    return true;
  }

  /** The worker is gone: hand its outstanding slices to the least-loaded live worker, or keep them for the next to join. */
  workerLost(workerId: string, live: string[]): void {
    const lost = this.queues.get(workerId) ?? [];
    this.queues.delete(workerId);
    for (const task of lost) {
      const target = live.filter((w) => w !== workerId).sort((a, b) => (this.queues.get(a)?.length ?? 0) - (this.queues.get(b)?.length ?? 0))[0];
      if (target) this.assign(target, task);
      else this.orphans.push(task);
    }
  }

  workerJoined(workerId: string): void {
    for (const task of this.orphans.splice(0)) this.assign(workerId, task);
  }

  /** The worker's oldest outstanding slice, or the `k`-th oldest. */
  outstanding(workerId: string, k = 0): Task | undefined {
    return this.queues.get(workerId)?.[k];
  }
}
