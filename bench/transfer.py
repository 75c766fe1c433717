"""The fashion-transfer experiment (examples/fashion-transfer.yaml) in plain
PyTorch, single process: the reference tunefleet's `npm start` is checked
against. Pretrain the seed CNN on Fashion-MNIST classes 0-4, then per seed train
on 1,000 images of classes 5-9 (relabelled 0-4): fine-tune (head x10, rest
x0.1), scratch, and uniform x1 fine-tuning; evaluate on those classes' 5,000
test images every 10 iterations and print the first iteration at >= 90%.

    /usr/bin/python3 bench/transfer.py [--padding valid|same] [--init pytorch|glorot]

Slow on Debian's torch build (~1,000 examples/s here): about 10 minutes.
"""
import argparse, gzip, json
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


def keras_init(module):
    """Glorot-uniform kernels and zero biases, as tfjs/Keras layers start."""
    for p in module.parameters():
        nn.init.xavier_uniform_(p) if p.dim() > 1 else nn.init.zeros_(p)


def accuracy(net, x, y):
    with torch.no_grad():
        return sum((net(a).argmax(1) == b).sum().item() for a, b in zip(x.split(500), y.split(500))) / len(y)


def train(net, groups, x, y, iterations, seed, val=None):
    """SGD with momentum over seeded epoch permutations; returns the first evaluated iteration at >= TARGET."""
    opt, gen = torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM), torch.Generator().manual_seed(seed)
    order, at = torch.randperm(len(x), generator=gen), 0
    for it in range(1, iterations + 1):
        if at + BATCH > len(x):
            order, at = torch.randperm(len(x), generator=gen), 0
        b, at = order[at:at + BATCH], at + BATCH
        opt.zero_grad()
        F.cross_entropy(net(x[b]), y[b]).backward()
        opt.step()
        if val and it % EVAL_EVERY == 0 and accuracy(net, *val) >= TARGET:
            return it
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--padding', choices=['valid', 'same'], default='valid')
    ap.add_argument('--init', choices=['pytorch', 'glorot'], default='pytorch')
    ap.add_argument('--seeds', default='1,2,3')
    args = ap.parse_args()
    torch.set_num_threads(1)
    build = lambda: SeedCnn(1 if args.padding == 'same' else 0)
    source, target, val = classes('train', [0, 1, 2, 3, 4]), classes('train', [5, 6, 7, 8, 9]), classes('t10k', [5, 6, 7, 8, 9])
    torch.manual_seed(0)
    pretrained = build()
    if args.init == 'glorot':
        keras_init(pretrained)
    train(pretrained, pretrained.parameters(), *source, 1000, 0)
    first = {}
    for seed in map(int, args.seeds.split(',')):
        keep = np.sort(np.random.default_rng(seed).permutation(len(target[0]))[:1000])
        x, y = target[0][keep], target[1][keep]
        for arm in ['fine-tune', 'scratch', 'fine-tune-x1']:
            torch.manual_seed(seed)
            net = build()
            if args.init == 'glorot':
                keras_init(net)
            if arm != 'scratch':
                net.load_state_dict({k: v for k, v in pretrained.state_dict().items() if not k.startswith('head')}, strict=False)
            groups = net.parameters()
            if arm == 'fine-tune':
                rest = [p for n, p in net.named_parameters() if not n.startswith('head')]
                groups = [{'params': net.head.parameters(), 'lr': 10 * LR}, {'params': rest, 'lr': 0.1 * LR}]
            first.setdefault(arm, []).append(train(net, groups, x, y, ITERATIONS, seed, (val[0], val[1])))
            print(f'seed {seed} {arm}: first >= 90% at {first[arm][-1]}', flush=True)
    median = lambda v: float(np.median([i if i is not None else np.inf for i in v]))
    print(json.dumps({'padding': args.padding, 'init': args.init, 'first90': first,
                      'speedup': {arm: median(first['scratch']) / median(v) for arm, v in first.items() if arm != 'scratch'}}))


if __name__ == '__main__':
    main()
