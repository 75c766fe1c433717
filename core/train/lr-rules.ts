// Per-layer learning-rate and weight-decay multipliers (Caffe's lr_mult and
// decay_mult), chosen for each variable by the first matching rule in an
// ordered list of globs on stable variable names such as `conv1/kernel` or
// `head/bias`. `*` matches any run of characters (slashes included), `?` one
// character. A variable no rule matches gets multipliers 1 and 1.
// lrMult 0 freezes a variable: its gradient is never computed or sent.
// The rules are resolved once per job (core/job/setup.ts): the optimizer, the
// shards (sent in their Welcome) and the learning-rate metric all read that
// one resolution.

export interface LayerRule {
  match: string;
  lrMult: number;
  decayMult?: number;
}

export interface Multipliers {
  lrMult: number;
  decayMult: number;
}

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** A variable's multipliers and its layer group: the glob of the rule that matched it, or `default`. */
export interface Resolved extends Multipliers {
  group: string;
}

export function multipliersFor(name: string, rules: LayerRule[]): Resolved {
  const rule = rules.find((r) => globToRegExp(r.match).test(name));
  return { lrMult: rule?.lrMult ?? 1, decayMult: rule?.decayMult ?? 1, group: rule?.match ?? 'default' };
}

/** Multipliers for every variable, by name. */
export function resolveMultipliers(names: string[], rules: LayerRule[]): Map<string, Resolved> {
  return new Map(names.map((n) => [n, multipliersFor(n, rules)]));
}

/** The effective rate of each layer group at base rate `lr`. */
export function groupRates(resolved: Map<string, Resolved>, lr: number): Map<string, number> {
  return new Map([...resolved.values()].map((m) => [m.group, lr * m.lrMult]));
}

export function isFrozen(m: Multipliers): boolean {
  return m.lrMult === 0;
}
