// Outside programs some tests run, and how to get them. A test whose program
// is missing is skipped with a line saying which and how (`npm run setup`
// installs them all on Debian or Ubuntu), rather than failing with ENOENT.
import { execFileSync } from 'node:child_process';

const HOW: Record<string, string> = {
  'nats-server': 'apt-get install nats-server',
  'prometheus': 'apt-get install prometheus',
  'promtool': 'apt-get install prometheus',
  'protoc': 'apt-get install protobuf-compiler',
  'openssl': 'apt-get install openssl',
  'pgrep': 'apt-get install procps',
  'script': 'apt-get install bsdutils',
};

function onPath(program: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** False when every program is on the PATH; else the skip reason naming what is missing and how to install it. */
export function missing(...programs: (keyof typeof HOW)[]): string | false {
  const absent = programs.filter((p) => !onPath(p));
  if (absent.length === 0) return false;
  return `needs ${absent.join(', ')}: ${[...new Set(absent.map((p) => HOW[p]))].join('; ')} (or npm run setup)`;
}
