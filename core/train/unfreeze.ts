// Gradual unfreezing (ULMFiT) and a head warm-up: variables that stay frozen
// until an iteration, then train with the multipliers optimizer.layers and
// layerDecay give them. `optimizer.unfreeze` lists entries, each naming
// variables by a glob (`match`) or by depth (`minDepth`: every layer at that
// depth or deeper, the head being depth 0) and the iteration `at` which they
// are released; a variable several entries name is released at the latest of
// their iterations, so the order of the entries does not matter.
// `optimizer.headWarmup: N` is `{minDepth: 1, at: N}`: the head alone first.
//
// Until released a variable is frozen exactly as lrMult 0 freezes it: no
// gradient computed, no bytes sent, no momentum. The job runs in stages, one
// per release: at a release iteration it writes a checkpoint and continues
// from it with the new trainable set, just as a resume would (so a run resumed
// in the middle of the schedule ends as an uninterrupted one). Pure.
import { globToRegExp, layerDepths, Resolved } from './lr-rules';

export interface UnfreezeEntry {
  match?: string | null;
  minDepth?: number | null;
  at: number;
}

/** The entries of `unfreeze` plus the head warm-up, as one list. */
export function schedule(unfreeze: UnfreezeEntry[], headWarmup: number): UnfreezeEntry[] {
  return headWarmup > 0 ? [...unfreeze, { minDepth: 1, at: headWarmup }] : unfreeze;
}

/** Does `entry` name the variable `name` at `depth`? */
function namesVariable(entry: UnfreezeEntry, name: string, depth: number): boolean {
  return entry.match ? globToRegExp(entry.match).test(name) : depth >= (entry.minDepth ?? 0);
}

/** The iteration each variable is released at (0: trains from the start). */
export function releaseIterations(variables: string[], entries: UnfreezeEntry[]): Map<string, number> {
  const depths = layerDepths(variables);
  return new Map(variables.map((n) => [n, Math.max(0, ...entries.filter((e) => namesVariable(e, n, depths.get(n)!)).map((e) => e.at))]));
}

/**
 * `resolved` as it holds at `iteration`: a variable not released yet has
 * lr_mult 0 (frozen), in a group of its own (`<group> until <at>`), so the
 * learning-rate metric shows the released part of a group at its rate.
 */
export function atIteration(resolved: Map<string, Resolved>, releases: Map<string, number>, iteration: number): Map<string, Resolved> {
  return new Map([...resolved].map(([n, m]) => {
    const at = releases.get(n)!;
    return [n, at > iteration ? { ...m, lrMult: 0, group: `${m.group} until ${at}` } : m];
  }));
}

/** The next release after `iteration` (the next stage's first iteration), or null when none is left. */
export function nextRelease(releases: Map<string, number>, iteration: number): number | null {
  const later = [...releases.values()].filter((at) => at > iteration);
  return later.length ? Math.min(...later) : null;
}

/** Entries that name no variable: like a layer rule, a typo is an error (lr-rules.ts ruleProblems). */
export function unfreezeProblems(variables: string[], entries: UnfreezeEntry[]): string[] {
  const depths = layerDepths(variables);
  return entries.flatMap((e, i) => (variables.some((n) => namesVariable(e, n, depths.get(n)!))
    ? []
    : [`optimizer.unfreeze[${i}] (${e.match ? `match "${e.match}"` : `minDepth ${e.minDepth}`}) names no variable of the model (depths 0–${Math.max(...depths.values())})`]));
}
