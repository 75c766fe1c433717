// A simulated multi-host cluster on one Linux machine (npm run bench:cluster):
// one network namespace per host, each with one link (a veth pair) into a
// bridge that lives in a namespace of its own (the switch), every link
// rate-limited in both directions with tc's token bucket filter, so the links
// and not this machine's cores are what a step waits for. Needs root
// (CAP_NET_ADMIN) and iproute2. Every namespace it makes is named with its
// prefix and deleted by destroy() (also when the process is interrupted);
// no address outside 10.77.0.0/24 inside those namespaces is ever used.
import { execFileSync, spawn, ChildProcess, SpawnOptions } from 'node:child_process';

export interface Host {
  name: string;
  /** The namespace it runs in. */
  ns: string;
  ip: string;
}

const SUBNET = '10.77.0';

function run(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why a simulated cluster cannot be made here, or null when it can. */
export function unavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (CAP_NET_ADMIN) to create network namespaces; run it as root, as CI does';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    execFileSync('tc', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 (ip, tc): apt-get install iproute2';
  }
  try {
    run(['netns', 'add', 'tfc-probe']);
    run(['netns', 'del', 'tfc-probe']);
  } catch (err) {
    return `cannot create a network namespace here: ${(err as Error).message.split('\n')[0]}`;
  }
  return null;
}

export class SimulatedCluster {
  readonly hosts: Host[] = [];
  private readonly switchNs: string;
  private readonly interrupted = () => { this.destroy(); process.exit(130); };
  private readonly exiting = () => this.destroy();

  /** `names`: one host each; `mbit`: every link's rate, each direction. */
  constructor(names: string[], private mbit: number, private readonly prefix = 'tfc') {
    this.switchNs = `${prefix}-sw`;
    this.destroy(); // namespaces a crashed run left behind
    process.once('SIGINT', this.interrupted);
    process.once('exit', this.exiting);
    run(['netns', 'add', this.switchNs]);
    run(['-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    run(['-n', this.switchNs, 'link', 'set', 'br0', 'up']);
    names.forEach((name, i) => this.addHost(name, `${SUBNET}.${i + 1}`));
  }

  private addHost(name: string, ip: string): void {
    const ns = `${this.prefix}-${name}`;
    const port = `v-${name}`; // its end in the switch (interface names: at most 15 characters)
    run(['netns', 'add', ns]);
    run(['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run(['link', 'set', port, 'netns', this.switchNs]);
    run(['-n', this.switchNs, 'link', 'set', port, 'master', 'br0', 'up']);
    run(['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    run(['-n', ns, 'link', 'set', 'eth0', 'up']);
    run(['-n', ns, 'link', 'set', 'lo', 'up']);
    this.hosts.push({ name, ns, ip });
    this.limit(ns, 'eth0');
    this.limit(this.switchNs, port);
  }

  /** Every link at `mbit` (null: unlimited, to check the machine itself is not the limit). */
  setRate(mbit: number | null): void {
    for (const h of this.hosts) {
      for (const [ns, dev] of [[h.ns, 'eth0'], [this.switchNs, `v-${h.name}`]]) {
        execFileSync('tc', ['-n', ns, 'qdisc', 'del', 'dev', dev, 'root'], { stdio: 'ignore' });
        if (mbit !== null) { this.mbit = mbit; this.limit(ns, dev); }
      }
    }
  }

  private limit(ns: string, dev: string, op = 'add'): void {
    // A burst of 512 KiB holds a full GSO packet (64 KiB) many times over; the queue holds 100 ms at the rate.
    execFileSync('tc', ['-n', ns, 'qdisc', op, 'dev', dev, 'root', 'tbf', 'rate', `${this.mbit}mbit`, 'burst', '512kb', 'latency', '100ms']);
  }

  host(name: string): Host {
    return this.hosts.find((h) => h.name === name)!;
  }

  /** Run `command args` on `host`. */
  spawn(host: Host, command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', host.ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  /** Delete every namespace with this prefix (the veth pairs go with them). */
  destroy(): void {
    process.removeListener('SIGINT', this.interrupted);
    let list = '';
    try {
      list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    } catch {
      return;
    }
    for (const line of list.split('\n')) {
      const ns = line.split(' ')[0];
      if (ns.startsWith(`${this.prefix}-`)) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    }
  }
}
