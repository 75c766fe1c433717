"""The fashion-transfer experiment (examples/fashion-transfer.yaml) in plain
PyTorch, single process: the reference tunefleet's `npm start` is checked
against. Pretrain the seed CNN on Fashion-MNIST classes 0-4, then per seed train
on 1,000 images of classes 5-9 (relabelled 0-4): fine-tune (head x10, rest
x0.1), scratch, and uniform x1 fine-tuning; evaluate on those classes' 5,000
test images every 10 iterations and print the first iteration at >= 90%.

    /usr/bin/python3 bench/transfer.py [--padding valid|same] [--init pytorch|glorot]

Slow on Debian's torch build (~1,000 examples/s here): about 10 minutes.

Time to accuracy (bench/time-to-accuracy.ts runs these, each a fresh process):
`--save-pretrained PATH [--arch cifar-cnn]` pretrains once and saves the weights; `--time-to-target
PATH --seed S --threads N [--arch cifar-cnn]` loads them and times the fine-tune arm alone: wall
seconds from the start of training to the first evaluation >= 90%,
evaluations included, and how much of that was evaluating.
"""
import argparse, gzip, json, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

DATA = '/usr/share/datasets/fashion-mnist/'
LR, MOMENTUM, BATCH, ITERATIONS, EVAL_EVERY, TARGET = 0.01, 0.9, 64, 300, 10, 0.9


def idx(name):
    raw = gzip.open(DATA + name).read()
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def classes(split, keep):
    x, y = idx(f'{split}-images-idx3-ubyte.gz'), idx(f'{split}-labels-idx1-ubyte.gz')
    mask = np.isin(y, keep)
    return torch.tensor(x[mask][:, None] / 255, dtype=torch.float32), torch.tensor(np.searchsorted(keep, y[mask]))


class SeedCnn(nn.Module):
    def __init__(self, padding, k=5):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=padding), nn.Conv2d(16, 32, 3, padding=padding)
        self.fc1, self.head = nn.Linear(32 * (7 if padding else 5) ** 2, 64), nn.Linear(64, k)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(F.relu(self.fc1(x.flatten(1))))


class CifarCnn(nn.Module):
    """core/model/zoo.ts's cifar-cnn for 28x28x1: two blocks of two 3x3 convs (32, 64) with max-pooling, dense 256, dense k."""
    def __init__(self, padding, k=5):
        super().__init__()
        self.conv1_1, self.conv1_2 = nn.Conv2d(1, 32, 3, padding=padding), nn.Conv2d(32, 32, 3, padding=padding)
        self.conv2_1, self.conv2_2 = nn.Conv2d(32, 64, 3, padding=padding), nn.Conv2d(64, 64, 3, padding=padding)
        self.fc1, self.head = nn.Linear(64 * (7 if padding else 4) ** 2, 256), nn.Linear(256, k)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1_2(F.relu(self.conv1_1(x)))), 2)
        x = F.max_pool2d(F.relu(self.conv2_2(F.relu(self.conv2_1(x)))), 2)
        return self.head(F.relu(self.fc1(x.flatten(1))))


ARCHS = {'seed-cnn': SeedCnn, 'cifar-cnn': CifarCnn}


def keras_init(module):
    """Glorot-uniform kernels and zero biases, as tfjs/Keras layers start."""
    for p in module.parameters():
        nn.init.xavier_uniform_(p) if p.dim() > 1 else nn.init.zeros_(p)


def accuracy(net, x, y):
    with torch.no_grad():
        return sum((net(a).argmax(1) == b).sum().item() for a, b in zip(x.split(500), y.split(500))) / len(y)


def train(net, groups, x, y, iterations, seed, val=None, clock=None):
    """SGD with momentum over seeded epoch permutations; returns the first evaluated iteration at >= TARGET.
    `clock` (a dict), when given, gets the seconds spent evaluating under 'eval'."""
    opt, gen = torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM), torch.Generator().manual_seed(seed)
    order, at = torch.randperm(len(x), generator=gen), 0
    for it in range(1, iterations + 1):
        if at + BATCH > len(x):
            order, at = torch.randperm(len(x), generator=gen), 0
        b, at = order[at:at + BATCH], at + BATCH
        opt.zero_grad()
        F.cross_entropy(net(x[b]), y[b]).backward()
        opt.step()
        if val and it % EVAL_EVERY == 0:
            t0 = time.perf_counter()
            reached = accuracy(net, *val) >= TARGET
            if clock is not None:
                clock['eval'] = clock.get('eval', 0) + time.perf_counter() - t0
            if reached:
                return it
    return None


def target_subset(target, seed):
    keep = np.sort(np.random.default_rng(seed).permutation(len(target[0]))[:1000])
    return target[0][keep], target[1][keep]


def fine_tune_groups(net):
    rest = [p for n, p in net.named_parameters() if not n.startswith('head')]
    return [{'params': net.head.parameters(), 'lr': 10 * LR}, {'params': rest, 'lr': 0.1 * LR}]


def time_to_target(path, seed, threads, arch):
    """The fine-tune arm from saved pretrained weights, timed; startup counts from BENCH_SPAWNED_AT (ms since the epoch)."""
    torch.set_num_threads(threads)
    x, y = target_subset(classes('train', [5, 6, 7, 8, 9]), seed)
    val = classes('t10k', [5, 6, 7, 8, 9])
    torch.manual_seed(seed)
    net = ARCHS[arch](0)
    net.load_state_dict({k: v for k, v in torch.load(path).items() if not k.startswith('head')}, strict=False)
    clock, start = {}, time.time()
    first = train(net, fine_tune_groups(net), x, y, ITERATIONS, seed, val, clock)
    seconds = time.time() - start
    spawned = float(os.environ.get('BENCH_SPAWNED_AT', start * 1000)) / 1000
    print(json.dumps({'iteration': first, 'seconds': seconds if first else None, 'evalSeconds': clock.get('eval', 0), 'startupSeconds': start - spawned}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--padding', choices=['valid', 'same'], default='valid')
    ap.add_argument('--init', choices=['pytorch', 'glorot'], default='pytorch')
    ap.add_argument('--seeds', default='1,2,3')
    ap.add_argument('--save-pretrained', metavar='PATH')
    ap.add_argument('--time-to-target', metavar='PATH')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--arch', choices=list(ARCHS), default='seed-cnn')
    args = ap.parse_args()
    if args.time_to_target:
        return time_to_target(args.time_to_target, args.seed, args.threads, args.arch)
    torch.set_num_threads(1)
    build = lambda: ARCHS[args.arch](1 if args.padding == 'same' else 0)
    source, target, val = classes('train', [0, 1, 2, 3, 4]), classes('train', [5, 6, 7, 8, 9]), classes('t10k', [5, 6, 7, 8, 9])
    torch.manual_seed(0)
    pretrained = build()
    if args.init == 'glorot':
        keras_init(pretrained)
    train(pretrained, pretrained.parameters(), *source, 1000, 0)
    if args.save_pretrained:
        return torch.save(pretrained.state_dict(), args.save_pretrained)
    first = {}
    for seed in map(int, args.seeds.split(',')):
        x, y = target_subset(target, seed)
        for arm in ['fine-tune', 'scratch', 'fine-tune-x1']:
            torch.manual_seed(seed)
            net = build()
            if args.init == 'glorot':
                keras_init(net)
            if arm != 'scratch':
                net.load_state_dict({k: v for k, v in pretrained.state_dict().items() if not k.startswith('head')}, strict=False)
            groups = net.parameters()
            if arm == 'fine-tune':
                groups = fine_tune_groups(net)
            first.setdefault(arm, []).append(train(net, groups, x, y, ITERATIONS, seed, (val[0], val[1])))
            print(f'seed {seed} {arm}: first >= 90% at {first[arm][-1]}', flush=True)
    median = lambda v: float(np.median([i if i is not None else np.inf for i in v]))
    print(json.dumps({'padding': args.padding, 'init': args.init, 'first90': first,
                      'speedup': {arm: median(first['scratch']) / median(v) for arm, v in first.items() if arm != 'scratch'}}))


if __name__ == '__main__':
    main()
