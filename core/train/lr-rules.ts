// Per-layer learning-rate and weight-decay multipliers (Caffe's lr_mult and
// decay_mult), chosen for each variable by the first matching rule in an
// ordered list of globs on stable variable names such as `conv1/kernel` or
// `head/bias`. `*` matches any run of characters (slashes included), `?` one
// character. A variable no rule matches gets multipliers 1 and 1.
// lrMult 0 freezes a variable: its gradient is never computed or sent.

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

export function multipliersFor(name: string, rules: LayerRule[]): Multipliers {
  const rule = rules.find((r) => globToRegExp(r.match).test(name));
  return { lrMult: rule?.lrMult ?? 1, decayMult: rule?.decayMult ?? 1 };
}

/** Multipliers for every variable, by name. */
export function resolveMultipliers(names: string[], rules: LayerRule[]): Map<string, Multipliers> {
  return new Map(names.map((n) => [n, multipliersFor(n, rules)]));
}

/**
 * The effective rate of each layer group at base rate `lr`: a group is the
 * rule that matched (named by its glob), or `default` for unmatched variables.
 */
export function groupRates(names: string[], rules: LayerRule[], lr: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of names) {
    const rule = rules.find((r) => globToRegExp(r.match).test(n));
    out.set(rule?.match ?? 'default', lr * (rule?.lrMult ?? 1));
  }
  return out;
}

export function isFrozen(m: Multipliers): boolean {
  return m.lrMult === 0;
}
