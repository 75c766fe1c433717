// Where a distributed step's time went, from the coordinator's clock and the
// workers' reported compute times: broadcast (until every assignment was
// written), compute and upload (slowest worker), wait_slowest (first to last
// result). Exported per step as tunefleet_step_phase_seconds.
import { Phase } from '../core/observe/metrics';
import { Clock } from './clock';

export class StepTimer {
  private readonly start: number;
  private lastDispatch: number;
  private readonly dispatchedAt = new Map<string, number>();
  private readonly finished: { at: number; upload: number; compute: number }[] = [];

  constructor(private readonly clock: Clock) {
    this.start = this.lastDispatch = clock.now();
  }

  dispatched(worker: string): void {
    this.lastDispatch = this.clock.now();
    this.dispatchedAt.set(worker, this.lastDispatch);
  }

  done(worker: string, computeSeconds: number): void {
    const at = this.clock.now();
    const since = (at - (this.dispatchedAt.get(worker) ?? this.start)) / 1000;
    this.finished.push({ at, compute: computeSeconds, upload: Math.max(0, since - computeSeconds) });
  }

  phases(): Partial<Record<Phase, number>> {
    const f = this.finished;
    if (f.length === 0) return {};
    return {
      broadcast: (this.lastDispatch - this.start) / 1000,
      compute: Math.max(...f.map((x) => x.compute)),
      upload: Math.max(...f.map((x) => x.upload)),
      wait_slowest: (Math.max(...f.map((x) => x.at)) - Math.min(...f.map((x) => x.at))) / 1000,
    };
  }
}
