// A pure-JS renderer for exactly the kustomize features deploy/k8s uses
// (resources, labels, generatorOptions, configMapGenerator with files and
// labels, images, inline JSON 6902 patches, replacements of one field into
// another by dotted path with [name=…] list selectors). The deploy tests use
// `kubectl kustomize` where kubectl is installed, this otherwise, and check
// that the two agree when both are there.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function pointer(path: string): string[] {
  return path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyOp(doc: Obj, op: { op: string; path: string; value?: unknown }): void {
  const parts = pointer(op.path);
  const last = parts.pop()!;
  const parent = parts.reduce((o, k) => o[k], doc);
  if (op.op === 'test') {
    if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new Error(`patch test failed at ${op.path}: ${JSON.stringify(parent[last])}`);
  } else if (op.op === 'remove') delete parent[last];
  else if (op.op === 'add' && Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, op.value);
  else parent[last] = op.value;
}

export function renderKustomization(dir: string): Obj[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'));
  let objects: Obj[] = [];
  for (const r of k.resources ?? []) {
    const path = join(dir, r);
    if (statSync(path).isDirectory()) objects.push(...renderKustomization(path));
    else objects.push(...parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJSON()).filter(Boolean));
  }
  for (const g of k.configMapGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const f of g.files ?? []) {
      const [key, file] = f.includes('=') ? f.split('=') : [f, f];
      data[key] = readFileSync(join(dir, file), 'utf8');
    }
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, ...(g.options?.labels ? { labels: { ...g.options.labels } } : {}) }, data });
  }
  for (const l of k.labels ?? []) for (const o of objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
  for (const img of k.images ?? []) {
    for (const o of objects) {
      const pod = o.spec?.template?.spec;
      for (const c of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
        if (c.image.split(':')[0] === img.name) c.image = `${img.newName ?? img.name}${img.newTag ? `:${img.newTag}` : ''}`;
      }
    }
  }
  for (const p of k.patches ?? []) {
    const ops = parse(p.patch);
    for (const o of objects) if (o.kind === p.target.kind && o.metadata.name === p.target.name) for (const op of ops) applyOp(o, op);
  }
  const named = (sel: { kind: string; name: string }) => objects.find((o) => o.kind === sel.kind && o.metadata.name === sel.name)!;
  for (const r of k.replacements ?? []) {
    const value = fieldPath(r.source.fieldPath).reduce((o, step) => step(o), named(r.source));
    for (const t of r.targets) {
      for (const path of t.fieldPaths) {
        const steps = fieldPath(path);
        const last = path.split('.').pop()!;
        const parent = steps.slice(0, -1).reduce((o, step) => step(o), named(t.select));
        parent[last] = typeof parent[last] === 'string' ? String(value) : value; // as kustomize: a string field takes the value as a string
      }
    }
  }
  return objects;
}

/** `spec.template.spec.containers.[name=coordinator].args.5` as steps into an object. */
function fieldPath(path: string): ((o: Obj) => Obj)[] {
  return path.split('.').map((part) => {
    const sel = /^\[(\w+)=(.*)\]$/.exec(part);
    return sel ? (o: Obj) => o.find((x: Obj) => String(x[sel[1]]) === sel[2]) : (o: Obj) => o[part];
  });
}

export function hasKubectl(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, 'kubectl')));
}
