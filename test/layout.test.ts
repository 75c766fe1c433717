// layout – the import graph of the source tree: no module imports itself
// back through others (a circle), core/ depends on no command's folder, and
// a shard loads only core/ (and the generated wire code), never the
// coordinator's or the worker's modules. Type-only imports count too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const root = join(__dirname, '..', '..');
const FOLDERS = ['core', 'coordinator', 'worker', 'shard', 'cli', 'bench', 'test'];

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

/** Each source file's relative imports of other source files (proto/gen excluded: generated, it imports nothing of ours). */
function importGraph(): Map<string, string[]> {
  const files = new Set(FOLDERS.flatMap(sources));
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8');
    const deps = [...text.matchAll(/^import [^;]*?from '(\.[^']*)';/gms)].map((m) => normalize(join(dirname(f), m[1])) + '.ts');
    graph.set(f, deps.filter((d) => files.has(d)));
  }
  return graph;
}

/** One circle in `graph`, as the path that closes it, or null. */
function findCircle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (f: string): string[] | null => {
    if (state.get(f) === 'done') return null;
    if (state.get(f) === 'open') return [...path.slice(path.indexOf(f)), f];
    state.set(f, 'open');
    path.push(f);
    for (const d of graph.get(f)!) { const found = visit(d); if (found) return found; }
    path.pop();
    state.set(f, 'done');
    return null;
  };
  for (const f of graph.keys()) { const found = visit(f); if (found) return found; }
  return null;
}

test('layout – the import graph has no circle', () => {
  const graph = importGraph();
  assert.ok(graph.size > 100, `read ${graph.size} files`);
  assert.equal(findCircle(graph)?.join(' → ') ?? null, null);
  assert.deepEqual(findCircle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), ['a', 'b', 'c', 'a'], 'the check finds one');
});

test('layout – core/ imports no command\'s folder; shard/ imports only core/', () => {
  const graph = importGraph();
  const outside = (from: string, allowed: string[]) => [...graph].filter(([f]) => f.startsWith(from))
    .flatMap(([f, deps]) => deps.filter((d) => !allowed.some((a) => d.startsWith(a))).map((d) => `${f} → ${relative('.', d)}`));
  assert.deepEqual(outside('core/', ['core/']), []);
  assert.deepEqual(outside('shard/', ['core/', 'shard/']), []);
});
