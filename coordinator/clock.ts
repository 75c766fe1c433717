// Time, as the coordinator's step sees it. Deadlines and step timings read
// this instead of performance.now()/setTimeout, so tests drive time with a
// fake clock instead of sleeping.

export interface Clock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Call `fn` after `ms` milliseconds; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    timer.unref(); // a deadline or a ping alone does not keep the process up: its server does
    return () => clearTimeout(timer);
  },
};
