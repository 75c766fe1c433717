// A small seeded PRNG (mulberry32) so that shuffles, subsets and splits are
// identical on every machine and every run with the same seed. Math.random is
// never used for anything that affects training.

export type Rng = () => number; // uniform in [0, 1)

export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded Fisher–Yates permutation of 0..n-1. */
export function permutation(n: number, seed: number): Uint32Array {
  const r = rng(seed);
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = p[i]; p[i] = p[j]; p[j] = t;
  }
  return p;
}
