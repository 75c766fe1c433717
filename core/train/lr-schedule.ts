// Learning-rate policies, as pure functions of the iteration (0-based).
// Caffe's names and meanings: fixed; step (lr·gamma^floor(it/stepSize));
// multistep (lr·gamma^(number of milestones ≤ it)); plus cosine annealing from
// lr to minLr over the job's iterations. An optional linear warm-up scales the
// policy's rate by a factor rising from startFactor to 1 over its iterations
// (Goyal et al., "Accurate, Large Minibatch SGD").

export type LrPolicy =
  | { type: 'fixed' }
  | { type: 'step'; gamma: number; stepSize: number }
  | { type: 'multistep'; gamma: number; steps: number[] }
  | { type: 'cosine'; minLr: number };

export interface Warmup {
  iterations: number;
  startFactor: number;
}

export interface Schedule {
  lr: number;
  policy: LrPolicy;
  warmup: Warmup;
  totalIterations: number;
}

function policyRate(s: Schedule, it: number): number {
  const p = s.policy;
  switch (p.type) {
    case 'fixed': return s.lr;
    case 'step': return s.lr * p.gamma ** Math.floor(it / p.stepSize);
    case 'multistep': return s.lr * p.gamma ** p.steps.filter((m) => m <= it).length;
    case 'cosine': {
      const t = Math.min(it / Math.max(s.totalIterations, 1), 1);
      return p.minLr + (s.lr - p.minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
    }
  }
}

export function learningRate(s: Schedule, it: number): number {
  const base = policyRate(s, it);
  if (it >= s.warmup.iterations) return base;
  const f = s.warmup.startFactor + (1 - s.warmup.startFactor) * (it / s.warmup.iterations);
  return base * f;
}
