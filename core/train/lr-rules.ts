// Per-layer learning-rate and weight-decay multipliers (Caffe's lr_mult and
// decay_mult), chosen for each variable by the first matching rule in an
// ordered list of globs on stable variable names such as `conv1/kernel` or
// `head/bias`. `*` matches any run of characters (slashes included), `?` one
// character. A variable no rule matches gets multipliers 1 and 1.
// With optimizer.layerDecay γ < 1 a variable's lr_mult is then multiplied by
// γ^depth, depth counted in layers from the last one that has variables (the
// head: depth 0) down the model's layer order, as in BERT/ViT fine-tuning.
// lrMult 0 freezes a variable: its gradient is never computed or sent.
// A rule that decides no variable (a typo, or every match taken by an earlier
// rule) is a configuration error (ruleProblems), never a silent fallback.
// BatchNorm's moving statistics (`<layer>/moving_mean`, `/moving_variance`)
// are never trained by SGD: they resolve to lr_mult 0 whatever the rule, and
// the rule's `freezeStats` says whether they keep their (pretrained) values,
// the layer normalising with them in training too, or are estimated from
// training batches before every evaluation and checkpoint (batch-norm.ts).
// The rules are resolved once per job (core/job/setup.ts): the optimizer, the
// shards (sent in their Welcome) and the learning-rate metric all read that
// one resolution.

export interface LayerRule {
  match: string;
  lrMult: number;
  decayMult?: number;
  freezeStats?: boolean;
}

export interface Multipliers {
  lrMult: number;
  decayMult: number;
}

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * A variable's multipliers and its layer group: the glob of the rule that
 * matched it, or `default`; for BatchNorm statistics, whether they are
 * frozen or estimated.
 */
export interface Resolved extends Multipliers {
  group: string;
  statistics?: 'frozen' | 'estimated';
}

/** Is `name` a BatchNorm moving statistic (tfjs names them `<layer>/moving_mean`, `<layer>/moving_variance`)? */
export function isStatistic(name: string): boolean {
  return /\/moving_(mean|variance)$/.test(name);
}

export function multipliersFor(name: string, rules: LayerRule[]): Resolved {
  const rule = rules.find((r) => globToRegExp(r.match).test(name));
  const group = rule?.match ?? 'default';
  if (isStatistic(name)) return { lrMult: 0, decayMult: 0, group, statistics: rule?.freezeStats ? 'frozen' : 'estimated' };
  return { lrMult: rule?.lrMult ?? 1, decayMult: rule?.decayMult ?? 1, group };
}

/** The BatchNorm layers whose statistics `resolved` freezes. */
export function frozenStatisticsLayers(resolved: Map<string, Resolved>): string[] {
  return [...new Set([...resolved].filter(([, m]) => m.statistics === 'frozen').map(([n]) => layerOf(n)))];
}

/** A variable's layer: its name up to the last slash (`conv1/kernel` → `conv1`). */
export function layerOf(name: string): string {
  const cut = name.lastIndexOf('/');
  return cut < 0 ? name : name.slice(0, cut);
}

/** Each variable's depth: 0 for the last layer with variables, 1 for the one before it, … in the order of `names`. */
export function layerDepths(names: string[]): Map<string, number> {
  const layers = [...new Set(names.map(layerOf))];
  return new Map(names.map((n) => [n, layers.length - 1 - layers.indexOf(layerOf(n))]));
}

/**
 * Multipliers for every variable, by name (`names` in the model's layer
 * order). With `layerDecay` γ ≠ 1 each layer's lr_mult is its rule's × γ^depth
 * and each layer is its own group (their rates differ).
 */
export function resolveMultipliers(names: string[], rules: LayerRule[], layerDecay = 1): Map<string, Resolved> {
  const depths = layerDepths(names);
  return new Map(names.map((n) => {
    const m = multipliersFor(n, rules);
    return [n, layerDecay === 1 || m.statistics ? m : { ...m, lrMult: m.lrMult * layerDecay ** depths.get(n)!, group: layerOf(n) }];
  }));
}

/**
 * What is wrong with `rules` for a model with variables `names`, one line
 * each: a rule that matches no variable (with the nearest names, since that is
 * usually a typo), or one whose every match an earlier rule already took.
 */
export function ruleProblems(names: string[], rules: LayerRule[], at = 'optimizer.layers'): string[] {
  const problems: string[] = [];
  const globs = rules.map((r) => globToRegExp(r.match));
  rules.forEach((rule, i) => {
    const matches = names.filter((n) => globs[i].test(n));
    if (matches.length === 0) {
      problems.push(`${at}[${i}] match "${rule.match}" matches no variable of the model; nearest: ${nearest(rule.match, names).join(', ')}`);
      return;
    }
    const takenBy = matches.map((n) => globs.findIndex((g) => g.test(n)));
    if (takenBy.every((j) => j < i)) {
      const j = takenBy[0];
      problems.push(`${at}[${i}] match "${rule.match}" decides no variable: ${matches.slice(0, 3).join(', ')}${matches.length > 3 ? ', …' : ''} already matched ${at}[${j}] "${rules[j].match}" (the first match wins: put the narrower rule first)`);
    } else if (rule.freezeStats && !matches.some((n, k) => takenBy[k] === i && isStatistic(n))) {
      const layers = [...new Set(names.filter(isStatistic).map(layerOf))];
      problems.push(`${at}[${i}] match "${rule.match}" has freezeStats but decides no BatchNorm statistics (<layer>/moving_mean); ${layers.length ? `BatchNorm layers: ${layers.slice(0, 5).join(', ')}${layers.length > 5 ? ', …' : ''}` : 'the model has no BatchNorm layer (a zoo model gets them with model.batchNorm: true)'}`);
    }
  });
  return problems;
}

/**
 * A resolution (`resolved`, from resolveMultipliers over `rules`) as a table,
 * one row per variable: [variable, rule, depth, lr_mult, decay_mult, frozen]
 * (`releases`: frozen until, unfreeze.ts).
 */
export function multiplierRows(resolved: Map<string, Resolved>, rules: LayerRule[], releases = new Map<string, number>()): string[][] {
  const names = [...resolved.keys()];
  const depths = layerDepths(names);
  const globs = rules.map((r) => globToRegExp(r.match));
  return names.map((n) => {
    const m = resolved.get(n)!;
    const i = globs.findIndex((g) => g.test(n));
    const until = releases.get(n) ?? 0;
    const frozen = m.statistics ? `statistics ${m.statistics}` : isFrozen(m) ? 'frozen' : until > 0 ? `until ${until}` : '';
    return [n, i < 0 ? '(none: ×1)' : `[${i}] ${rules[i].match}`, String(depths.get(n)), String(+m.lrMult.toPrecision(6)), String(m.decayMult), frozen];
  });
}

export const MULTIPLIER_COLUMNS = ['variable', 'rule', 'depth', 'lr_mult', 'decay_mult', 'frozen'];

/** The three variable names (or `layer/*` globs) closest to `glob` by edit distance. */
function nearest(glob: string, names: string[]): string[] {
  const literal = glob.replace(/[*?]/g, '');
  const candidates = [...new Set([...names.map((n) => `${layerOf(n)}/*`), ...names])];
  const score = (c: string) => Math.min(editDistance(literal, c.replace(/[*?]/g, '')), editDistance(literal, c.slice(0, literal.length)));
  return candidates.map((c) => [c, score(c)] as const).sort((a, b) => a[1] - b[1]).slice(0, 3).map(([c]) => c);
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/** The effective rate of each layer group at base rate `lr` (BatchNorm statistics have none). */
export function groupRates(resolved: Map<string, Resolved>, lr: number): Map<string, number> {
  return new Map([...resolved.values()].filter((m) => !m.statistics).map((m) => [m.group, lr * m.lrMult]));
}

export function isFrozen(m: Multipliers): boolean {
  return m.lrMult === 0;
}
