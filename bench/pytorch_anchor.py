"""PyTorch DistributedDataParallel anchor for `npm run bench`: the seed CNN
(conv 3x3x16 same, pool, conv 3x3x32 same, pool, dense 64, dense 10) trained
with SGD (lr 0.01, momentum 0.9) by N processes on the gloo backend (CPU),
global batch 64 split evenly, one thread per process. Prints one JSON line:
{"processes": N, "examples_per_sec": ...} measured after warm-up steps."""
import json, os, sys, time
import torch, torch.distributed as dist, torch.multiprocessing as mp, torch.nn as nn


def net():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1568, 64), nn.ReLU(), nn.Linear(64, 10))


def worker(rank, n, steps, warmup, port, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=n)
    model = nn.parallel.DistributedDataParallel(net())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    per = 64 // n
    x, y = torch.randn(per, 1, 28, 28), torch.randint(0, 10, (per,))
    loss_fn = nn.CrossEntropyLoss()
    for i in range(warmup + steps):
        if i == warmup:
            dist.barrier()
            start = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    dist.barrier()
    if rank == 0:
        out.put(64 * steps / (time.perf_counter() - start))
    dist.destroy_process_group()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    mp.spawn(worker, args=(n, steps, 20, 29500 + os.getpid() % 1000, q), nprocs=n, join=True)
    print(json.dumps({"processes": n, "examples_per_sec": q.get()}))
