"""PyTorch anchor for `npm run bench`: the zoo's seed CNN or CIFAR CNN (same
padding, as tunefleet's defaults) trained with SGD (lr 0.01, momentum 0.9) on
the CPU, one thread per process, global batch 64. With 1 process it is plain
PyTorch; with N > 1, DistributedDataParallel on gloo, the batch split evenly.
Usage: pytorch_anchor.py MODEL PROCESSES [STEPS]. Prints one JSON line:
{"model": ..., "processes": N, "examples_per_sec": ...} measured after
warm-up steps."""
import json, os, sys, time
import torch, torch.distributed as dist, torch.multiprocessing as mp, torch.nn as nn

SHAPES = {"seed-cnn": (1, 28), "cifar-cnn": (3, 32)}


def net(model):
    conv = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()]
    if model == "seed-cnn":
        return nn.Sequential(*conv(1, 16), nn.MaxPool2d(2), *conv(16, 32), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(1568, 64), nn.ReLU(), nn.Linear(64, 10))
    return nn.Sequential(*conv(3, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10))


def train(rank, n, model, steps, warmup, port, out):
    torch.set_num_threads(1)
    m = net(model)
    if n > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=n)
        m = nn.parallel.DistributedDataParallel(m)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    channels, size = SHAPES[model]
    per = 64 // n
    x, y = torch.randn(per, channels, size, size), torch.randint(0, 10, (per,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(warmup + steps):
        if i == warmup:
            if n > 1:
                dist.barrier()
            start = time.perf_counter()
        opt.zero_grad()
        loss_fn(m(x), y).backward()
        opt.step()
    if n > 1:
        dist.barrier()
    if rank == 0:
        out.put(64 * steps / (time.perf_counter() - start))
    if n > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    model = sys.argv[1] if len(sys.argv) > 1 else "seed-cnn"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else (200 if model == "seed-cnn" else 20)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    mp.spawn(train, args=(n, model, steps, 10, 29500 + os.getpid() % 1000, q), nprocs=n, join=True)
    print(json.dumps({"model": model, "processes": n, "examples_per_sec": q.get()}))
