// What `tunefleet help` and `tunefleet <command> --help` print: each
// command's usage, written once. A test checks every flag a command accepts
// (FLAGS in main.ts) is named in its usage.

export const USAGE: Record<string, string> = {
  train: `tunefleet train --config job.yaml [--backend B] [--data DIR] [--resume] [--fresh]
    Train in this process: pretrain, or fine-tune from model.from (after the
    job's pretrain stage, if it has one; --fresh redoes that stage). --resume
    continues from the newest checkpoint in the job's outDir.`,
  coordinator: `tunefleet coordinator --config job.yaml [--port P] [--workers N] [--shards K] [--backend B] [--data DIR] [--resume] [--insecure]
    Serve the job over gRPC (default port 7070); steps start once N workers
    (cluster.workers) are live, and K parameter shards (cluster.shards) when
    K > 0. --resume continues from the newest checkpoint. Without a token
    (cluster.tokenFile or TUNEFLEET_TOKEN) it refuses to listen beyond
    loopback unless --insecure (cluster.insecure) says to run open.`,
  worker: `tunefleet worker --coordinator HOST:PORT [--gpus N|all] [--backend B] [--id ID] [--metrics-port P|off]
                 [--metrics-host ADDR] [--token-file F] [--tls-ca CA.pem [--tls-cert C.pem --tls-key K.pem]]
                 [--reconnect-for SECONDS] [--keepalive-seconds S]
    Join a coordinator and compute until the job finishes. A lost session is
    joined again with backoff for up to SECONDS (default 300; 0 = never). A
    coordinator that does not answer a gRPC keepalive ping within S seconds
    (default 30, sent after S idle seconds) is lost.
    --gpus: one worker process per GPU of this node (CUDA_VISIBLE_DEVICES: the
    i-th of a scheduler's list, else GPU i; for webgpu also DRI_PRIME=pci-…,
    the GPU's PCI address for Vulkan; ids ID-gpu<i>, metrics ports P+i),
    supervised together; 'all' = every GPU nvidia-smi lists; N with a CPU
    backend (--backend wasm) = N CPU processes.`,
  shard: `tunefleet shard --coordinator HOST:PORT [--data-port P] [--host ADDR] [--advertise HOST] [--metrics-port P|off]
                [--metrics-host ADDR] [--token-file F] [--reconnect-for SECONDS] [--keepalive-seconds S]
                [--tls-ca CA.pem] [--tls-cert C.pem --tls-key K.pem [--tls-client-ca CA.pem]]
    A parameter shard for a job with cluster.shards > 0: holds 1/k of the
    parameters, averages the workers' gradients for them and applies SGD.
    Workers connect to its data port P (default 7072; 0 = any) on ADDR
    (default every interface) at HOST (default: the address the coordinator
    sees it connect from). Metrics on P (default 9402). Joins again with
    backoff like a worker (default 300 s), and pings it like one (S). TLS:
    --tls-ca verifies the coordinator; --tls-cert/--tls-key are the shard's
    own certificate, shown to the coordinator and served on the data port
    (its names must cover HOST); --tls-client-ca requires workers' client
    certificates (mutual TLS, as cluster.tlsClientCa).`,
  local: `tunefleet local --workers N --config job.yaml [--backend B] [--data DIR] [--resume] [--fresh]
    The coordinator here and N worker processes on this machine (loopback).`,
  compare: `tunefleet compare --config experiment.yaml [--workers N] [--out DIR] [--backend B] [--fresh]
    Pretrain on the source task, then fine-tune and train from scratch on the
    target task (each arm, each seed, a run with N local workers); writes
    results.json, report.md, accuracy.svg and accuracy.png into DIR.`,
  doctor: `tunefleet doctor [--config job.yaml] [--backend B] [--coordinator HOST:PORT [--token-file F] [--tls-ca CA.pem [--tls-cert C.pem --tls-key K.pem]]]
    Check what a job on this machine needs, one line each (ok / warn / -- /
    PROBLEM and what to do), exit 1 on any problem: every backend (loads or
    why not; a seed-CNN step's examples/s; its gradients against cpu's), the
    GPUs, and with a job its dataset, model.from, ports, token and TLS files,
    NATS; with --coordinator, that it answers.`,
  status: `tunefleet status --coordinator HOST:PORT [--token-file F] [--tls-ca CA.pem [--tls-cert C.pem --tls-key K.pem]] [--json]
    A running job at a glance: state, iteration, examples/s, ETA, the last
    validation accuracy, and each worker (slices, time per example, last seen),
    stragglers marked.`,
  watch: `tunefleet watch --nats URL [--job NAME]
    Live view of running jobs from their NATS event stream.`,
  config: `tunefleet config [--explain job.yaml [--backend B] [--data DIR]]
    Print every job-config field with its default and meaning; with --explain,
    the job's variables and the lr_mult/decay_mult each gets from
    optimizer.layers, layerDecay and unfreeze (exit 2 if a rule decides none);
    for an experiment file (compare), one table per arm.`,
};

export const HELP = `tunefleet — distributed fine-tuning with per-layer learning rates

Usage:
${Object.values(USAGE).map((u) => `  ${u.replace(/\n/g, '\n  ')}`).join('\n')}
  tunefleet help | --help | --version

Every command takes --help. Backends (--backend or TUNEFLEET_BACKEND): auto,
tensorflow-gpu, tensorflow, webgpu, wasm, cpu (TUNEFLEET_WEBGPU_ADAPTER picks
a webgpu adapter by name). Docs: README.md, docs/config.md.`;
