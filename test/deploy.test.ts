// deploy – every overlay renders; every object validates against the
// Kubernetes schemas; cross-references hold (selectors and labels, ports,
// probe paths, env names, flags, ConfigMaps, the embedded job config, the
// dashboard); the Dockerfile builds from the lock file as a non-root user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { dataPortOf, parseJob } from '../core/job/config';
import { FLAGS } from '../cli/main';
import { NVIDIA_ICD_FALLBACK } from '../core/backend/vulkan';
import { hasKubectl, renderKustomization } from './kustomize-lite';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const root = join(__dirname, '..', '..');
const k8s = join(root, 'deploy', 'k8s');
const OVERLAYS = ['gpu', 'gpu-multi', 'webgpu', 'cpu'];

function render(overlay: string): Obj[] {
  const dir = join(k8s, 'overlays', overlay);
  if (!hasKubectl()) return renderKustomization(dir);
  return parseAllDocuments(execFileSync('kubectl', ['kustomize', dir]).toString()).map((d) => d.toJSON());
}

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const named = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;
const workloads = (objs: Obj[]) => objs.filter((o) => ['Deployment', 'Job'].includes(o.kind));
const containers = (w: Obj): Obj[] => w.spec.template.spec.containers;

async function validate(o: Obj): Promise<void> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const mod = group === 'monitoring.coreos.com'
    ? await import(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${o.kind}`)
    : await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`);
  new mod[o.kind](o).validate();
}

for (const overlay of OVERLAYS) {
  test(`deploy – overlay ${overlay} renders and every object validates against its schema`, async () => {
    const objs = render(overlay);
    // No Secret: applying the manifests must never overwrite the token or certificates the user created.
    assert.deepEqual([...new Set(objs.map((o) => o.kind))].sort(), ['ConfigMap', 'Deployment', 'Job', 'PersistentVolumeClaim', 'PodMonitor', 'Service']);
    for (const o of objs) await validate(o);
    const bad = { ...named(objs, 'Job', 'tunefleet-coordinator') };
    bad.spec = { ...bad.spec, parallelism: 'one' };
    await assert.rejects(validate(bad), 'the validator rejects a bad object');
  });

  test(`deploy – overlay ${overlay}: cross-references hold`, () => {
    const objs = render(overlay);
    // Services select pods that exist, on ports those pods name.
    for (const svc of byKind(objs, 'Service')) {
      const pods = workloads(objs).filter((w) => Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      assert.equal(pods.length, 1, `service ${svc.metadata.name} selects one workload`);
      const names = containers(pods[0]).flatMap((c) => (c.ports ?? []).map((p: Obj) => p.name));
      for (const p of svc.spec.ports) assert.ok(names.includes(p.targetPort), `${svc.metadata.name}: port ${p.targetPort}`);
    }
    // Workload selectors match their own pod labels; the PodMonitor selects both tunefleet workloads.
    for (const w of workloads(objs)) for (const [k, v] of Object.entries(w.spec.selector?.matchLabels ?? {})) assert.equal(w.spec.template.metadata.labels[k], v); // a Job's selector is generated
    const pm = byKind(objs, 'PodMonitor')[0];
    assert.ok(pm.metadata.labels.release, 'the label kube-prometheus-stack selects PodMonitors by (docs/deploy.md)');
    const workerPod = named(objs, 'Job', 'tunefleet-worker').spec.template.spec;
    assert.equal(workerPod.containers[0].startupProbe.httpGet.path, '/livez', 'liveness waits for a slow first compile');
    const onGpus = overlay !== 'cpu';
    if (onGpus) assert.deepEqual(workerPod.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    if (onGpus) assert.deepEqual(workerPod.nodeSelector, {}, 'a nodeSelector knob to fill in');
    assert.deepEqual(pm.spec.selector.matchExpressions[0].values, ['tunefleet-coordinator', 'tunefleet-worker', 'tunefleet-shard']);
    // Probes use paths the code serves, on named ports.
    const httpServer = readFileSync(join(root, 'core', 'observe', 'http-server.ts'), 'utf8');
    const tunefleet = workloads(objs).filter((w) => w.metadata.name !== 'tunefleet-nats');
    for (const w of tunefleet) {
      const c = containers(w)[0];
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        assert.ok(httpServer.includes(`'${probe.httpGet.path}'`), `${w.metadata.name}: ${probe.httpGet.path} is served`);
        assert.ok(c.ports.some((p: Obj) => p.name === probe.httpGet.port));
      }
      // Every flag is one the command accepts; every TUNEFLEET_ env var is one the code reads.
      const [command, ...args] = c.args;
      for (const a of args.filter((x: string) => x.startsWith('--'))) assert.ok(a.slice(2) in FLAGS[command], `${command} ${a}`);
      for (const e of c.env.filter((x: Obj) => x.name.startsWith('TUNEFLEET_'))) {
        const readers = ['core/backend/backends.ts', 'core/data/resolve.ts', 'core/observe/log.ts', 'core/wire/security.ts'].map((f) => readFileSync(join(root, f), 'utf8')).join('');
        assert.ok(readers.includes(`process.env.${e.name}`), `${e.name} is read by the code`);
      }
      // Workers run the overlay's image; the coordinator and shards the wasm one (no GPU, no native TensorFlow).
      const workerImage = { gpu: 'tunefleet:gpu', 'gpu-multi': 'tunefleet:gpu', webgpu: 'tunefleet:webgpu', cpu: 'tunefleet:cpu' }[overlay];
      assert.equal(c.image, w.metadata.name === 'tunefleet-worker' ? workerImage : 'tunefleet:wasm', w.metadata.name);
      assert.ok(w.spec.template.spec.terminationGracePeriodSeconds >= 30 || w.metadata.name === 'tunefleet-shard', `${w.metadata.name}: time for a graceful stop`);
    }
    // The coordinator: a Job of one pod that completes with exit 0, fails at once on a configuration error (exit 2),
    // does not count evictions, waits for its data in an initContainer; the job ConfigMap mounted where --config points.
    const coord = named(objs, 'Job', 'tunefleet-coordinator');
    assert.equal(coord.spec.parallelism ?? 1, 1);
    assert.equal(coord.spec.template.spec.restartPolicy, 'Never');
    assertJobPolicy(coord);
    const c = containers(coord)[0];
    const init = coord.spec.template.spec.initContainers[0];
    assert.match(init.command.join(' '), new RegExp(`doctor --config ${c.args[c.args.indexOf('--config') + 1]}`), 'the wait checks the job the coordinator runs');
    assert.deepEqual(init.volumeMounts.map((m: Obj) => m.mountPath).sort(), c.volumeMounts.map((m: Obj) => m.mountPath).sort());
    const mount = c.volumeMounts.find((m: Obj) => m.name === 'job');
    const vol = coord.spec.template.spec.volumes.find((v: Obj) => v.name === 'job');
    const cm = named(objs, 'ConfigMap', vol.configMap.name);
    const configPath = c.args[c.args.indexOf('--config') + 1];
    assert.equal(configPath, `${mount.mountPath}/job.yaml`);
    assert.ok('job.yaml' in cm.data);
    assert.equal(named(objs, 'PersistentVolumeClaim', coord.spec.template.spec.volumes.find((v: Obj) => v.name === 'data').persistentVolumeClaim.claimName).kind, 'PersistentVolumeClaim');
    // The embedded job passes the schema and agrees with the Services.
    const job = parseJob(parse(cm.data['job.yaml']), 'ConfigMap tunefleet-job');
    const coordSvc = named(objs, 'Service', 'tunefleet-coordinator');
    assert.equal(job.cluster.port, coordSvc.spec.ports.find((p: Obj) => p.name === 'grpc').port);
    assert.equal(job.cluster.dataPlane, 'tcp');
    assert.equal(dataPortOf(job), coordSvc.spec.ports.find((p: Obj) => p.name === 'data').port, 'workers reach the data plane through the Service');
    assert.equal(job.metrics.port, coordSvc.spec.ports.find((p: Obj) => p.name === 'metrics').port);
    assert.equal(job.metrics.nats, `nats://tunefleet-nats:${named(objs, 'Service', 'tunefleet-nats').spec.ports[0].port}`);
    assert.equal(String(job.metrics.port), coord.spec.template.metadata.annotations['prometheus.io/port']);
    // Workers: one GPU per pod on gpu, a node's GPUs and one process each (--gpus all) on gpu-multi, none on cpu;
    // they dial the coordinator's Service; their metrics ports match (9401 + i) and are all scraped.
    const worker = named(objs, 'Job', 'tunefleet-worker');
    const wc = containers(worker)[0];
    const gpus = { gpu: 1, 'gpu-multi': 4, webgpu: 1, cpu: undefined }[overlay];
    assert.equal(wc.resources.limits['nvidia.com/gpu'], gpus);
    const env = (name: string) => wc.env.find((e: Obj) => e.name === name)?.value;
    assert.equal(env('TUNEFLEET_BACKEND'), { gpu: 'tensorflow-gpu', 'gpu-multi': 'tensorflow-gpu', webgpu: 'webgpu', cpu: 'wasm' }[overlay]);
    // Vulkan in a pod needs the toolkit's graphics capability (the image sets it too; the overlay says so where it matters).
    if (overlay === 'webgpu') assert.ok(env('NVIDIA_DRIVER_CAPABILITIES').split(',').includes('graphics'));
    assert.equal(wc.args.includes('--gpus'), overlay === 'gpu-multi');
    const scraped = byKind(objs, 'PodMonitor')[0].spec.podMetricsEndpoints.map((e: Obj) => e.port);
    const metricsPorts = wc.ports.filter((p: Obj) => p.name.startsWith('metrics'));
    assert.deepEqual(metricsPorts.map((p: Obj) => p.containerPort), metricsPorts.map((_: Obj, i: number) => 9401 + i));
    for (const p of metricsPorts) assert.ok(scraped.includes(p.name), `${p.name} is scraped`);
    assert.equal(wc.args[wc.args.indexOf('--coordinator') + 1], `${coordSvc.metadata.name}:${job.cluster.port}`);
    const metricsPort = wc.args[wc.args.indexOf('--metrics-port') + 1];
    assert.equal(String(wc.ports.find((p: Obj) => p.name === 'metrics').containerPort), metricsPort);
    assert.equal(worker.spec.template.metadata.annotations['prometheus.io/port'], metricsPort);
    assert.ok(worker.spec.template.spec.affinity.podAntiAffinity);
    // Shards: as many pods as the coordinator's --shards, on CPU, dialling the coordinator's Service, spread over nodes.
    const shard = named(objs, 'Job', 'tunefleet-shard');
    const sc = containers(shard)[0];
    const shards = Number(c.args[c.args.indexOf('--shards') + 1]);
    assert.equal(shard.spec.parallelism, shards, 'shard pods = coordinator --shards');
    assert.equal(parseJob({ ...job, cluster: { ...job.cluster, shards } }).cluster.shards, shards, 'the job accepts that many shards');
    assert.equal(sc.resources.limits['nvidia.com/gpu'], undefined);
    assert.equal(sc.args[sc.args.indexOf('--coordinator') + 1], `${coordSvc.metadata.name}:${job.cluster.port}`);
    assert.equal(String(sc.ports.find((p: Obj) => p.name === 'metrics').containerPort), sc.args[sc.args.indexOf('--metrics-port') + 1]);
    assert.equal(String(sc.ports.find((p: Obj) => p.name === 'data').containerPort), sc.args[sc.args.indexOf('--data-port') + 1]);
    assert.ok(shard.spec.template.spec.affinity.podAntiAffinity);
    // Every side takes the token from the user's Secret (docs/deploy.md step 2) — required, so a missing one stops the pod
    // rather than running open; the TLS Secret, optional, is mounted on every side (shards too: docs/deploy.md, Access).
    for (const w of [coord, worker, shard]) {
      const env = containers(w)[0].env.find((e: Obj) => e.name === 'TUNEFLEET_TOKEN');
      assert.deepEqual(env.valueFrom.secretKeyRef, { name: 'tunefleet-token', key: 'token' });
    }
    assert.match(readFileSync(join(root, 'docs', 'deploy.md'), 'utf8'), /kubectl create secret generic tunefleet-token --from-literal=token=/);
    for (const w of [coord, worker, shard]) {
      const tls = w.spec.template.spec.volumes.find((v: Obj) => v.name === 'tls');
      assert.deepEqual(tls.secret, { secretName: 'tunefleet-tls', optional: true });
      assert.ok(containers(w)[0].volumeMounts.some((m: Obj) => m.name === 'tls' && m.mountPath === '/etc/tunefleet-tls'));
    }
    // Workers and shards end with the job: elastic Indexed Jobs (completions = parallelism), each pod exits 0 when told
    // the job is over; a crash is retried per index, a configuration error fails the Job, an eviction does not count.
    for (const w of [worker, shard]) {
      assert.equal(w.spec.completionMode, 'Indexed', w.metadata.name);
      assert.equal(w.spec.completions, w.spec.parallelism, `${w.metadata.name}: completions = parallelism`);
      assert.ok(w.spec.backoffLimitPerIndex > 0);
      assertJobPolicy(w);
    }
    // With TLS a shard advertises tunefleet-shard-<index>.tunefleet-shard: its pods take that hostname in the
    // headless Service (subdomain), which publishes names before readiness.
    const shardSvc = named(objs, 'Service', 'tunefleet-shard');
    assert.equal(shardSvc.spec.clusterIP, 'None');
    assert.equal(shardSvc.spec.publishNotReadyAddresses, true);
    assert.equal(shard.spec.template.spec.subdomain, shardSvc.metadata.name);
    // The dashboard ConfigMap is the dashboard in deploy/grafana, labelled for the sidecar.
    const dash = named(objs, 'ConfigMap', 'tunefleet-grafana-dashboard');
    assert.equal(dash.metadata.labels.grafana_dashboard, '1');
    assert.equal(dash.data['tunefleet.json'], readFileSync(join(root, 'deploy', 'grafana', 'dashboards', 'tunefleet.json'), 'utf8'));
  });
}

test('deploy – kubectl kustomize and the pure-JS renderer agree', { skip: !hasKubectl() && 'kubectl not installed' }, () => {
  for (const overlay of OVERLAYS) {
    const viaKubectl = render(overlay);
    const viaJs = renderKustomization(join(k8s, 'overlays', overlay));
    assert.deepEqual(viaJs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), viaKubectl.map((o) => `${o.kind}/${o.metadata.name}`).sort());
    assert.deepEqual(JSON.parse(JSON.stringify(viaJs)).sort(byName), JSON.parse(JSON.stringify(viaKubectl)).sort(byName), overlay);
  }
});

/** A Job of ours: pods never restart in place, exit 2 (configuration) fails the Job at once, evictions are not counted. */
function assertJobPolicy(w: Obj): void {
  assert.equal(w.spec.template.spec.restartPolicy, 'Never', w.metadata.name);
  const rules = w.spec.podFailurePolicy.rules;
  assert.deepEqual(rules.find((r: Obj) => r.action === 'FailJob').onExitCodes, { containerName: containers(w)[0].name, operator: 'In', values: [2] });
  assert.deepEqual(rules.find((r: Obj) => r.action === 'Ignore').onPodConditions, [{ type: 'DisruptionTarget', status: 'True' }]);
}

function byName(a: Obj, b: Obj): number {
  return `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`);
}

test('deploy – the image builds from the lock file, runs as non-root and prints help by default', () => {
  const docker = readFileSync(join(root, 'deploy', 'docker', 'Dockerfile'), 'utf8');
  assert.match(docker, /COPY package\.json package-lock\.json/);
  assert.match(docker, /npm ci --omit=dev/);
  assert.doesNotMatch(docker, /npm install/);
  assert.match(docker, /^USER 10001$/m);
  assert.match(docker, /^CMD \["help"\]$/m);
  assert.match(docker, /nvidia\/cuda:11\.2\.2-cudnn8/);
  for (const dir of ['core', 'cli', 'coordinator', 'worker', 'proto']) assert.match(docker, new RegExp(`^COPY ${dir} ${dir}$`, 'm'));
  assert.deepEqual(readdirSync(join(k8s, 'overlays')).sort(), [...OVERLAYS].sort());
  // webgpu: a glibc new enough for dawn.node, the Vulkan loader, the fallback NVIDIA manifest where the code looks for it.
  assert.match(docker, /BASE_IMAGE=debian:12-slim --build-arg VARIANT=webgpu/);
  assert.match(docker, /apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers/);
  assert.match(docker, new RegExp(`^COPY deploy/webgpu/nvidia_icd\\.json ${NVIDIA_ICD_FALLBACK.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(docker, /^ENV NVIDIA_DRIVER_CAPABILITIES=.*graphics/m);
  const icd = JSON.parse(readFileSync(join(root, 'deploy', 'webgpu', 'nvidia_icd.json'), 'utf8'));
  assert.equal(icd.ICD.library_path, 'libGLX_nvidia.so.0', 'the library the toolkit mounts with graphics');
});
