"""PyTorch DDP (gloo) anchor for `npm run bench:cluster`: one rank per
simulated host, a model of the same bytes as tunefleet's (one dense layer of
`units` outputs over 784 inputs, then a 10-class head), tiny batches so the
all-reduce is what a step waits for. Rank and world size come from the
environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); rank 0 prints one
JSON line: {"world": N, "step_seconds": [...]} for the steps after warm-up."""
import json, os, sys, time
import torch, torch.distributed as dist, torch.nn as nn

units, steps, warmup = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
dist.init_process_group("gloo")
m = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(784, units), nn.ReLU(), nn.Linear(units, 10)))
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(4, 784), torch.randint(0, 10, (4,))
times = []
for i in range(warmup + steps):
    dist.barrier()
    start = time.perf_counter()
    opt.zero_grad()
    nn.functional.cross_entropy(m(x), y).backward()  # DDP all-reduces the gradients here
    opt.step()
    if i >= warmup:
        times.append(time.perf_counter() - start)
if dist.get_rank() == 0:
    print(json.dumps({"world": dist.get_world_size(), "step_seconds": times}))
dist.destroy_process_group()
