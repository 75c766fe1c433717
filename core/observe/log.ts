// One structured line per event worth knowing, on stderr so stdout stays for
// results. `TUNEFLEET_DEBUG=backend,trainer` (or `*`) turns on per-module debug
// lines. `TUNEFLEET_LOG=json` switches to JSON lines for log collectors, each
// with the process's role and id (setLogContext), and the CLI's final error
// line in the same form (errorLine).
type Fields = Record<string, unknown>;

let quiet = false;

/** Hide info lines (warnings stay): a live terminal view is showing progress instead. */
export function setQuiet(on: boolean): void {
  quiet = on;
}

const debugModules = new Set((process.env.TUNEFLEET_DEBUG ?? '').split(',').filter(Boolean));
/** TUNEFLEET_LOG=json: every line is a JSON object (nothing else may write plain lines to stderr). */
export const jsonLogs = () => process.env.TUNEFLEET_LOG === 'json';

/** Who this process is (role: coordinator, worker, shard; id once known): on every JSON line. */
const context: { role?: string; id?: string } = {};
export function setLogContext(c: { role?: string; id?: string }): void {
  Object.assign(context, c);
}

/** The CLI's last line when a command fails: `Name: message`, or a JSON line in json mode. */
export function errorLine(name: string, message: string): string {
  return jsonLogs() ? JSON.stringify({ time: new Date().toISOString(), level: 'error', ...context, error: name, message }) : `${name}: ${message}`;
}

function format(level: string, module: string, event: string, fields: Fields): string {
  if (jsonLogs()) {
    return JSON.stringify({ time: new Date().toISOString(), level, ...context, module, event, ...fields });
  }
  const kv = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`);
  return [new Date().toISOString(), level, `${module}:`, event, ...kv].join(' ');
}

export interface Logger {
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  debug(event: string, fields?: Fields): void;
}

export function logger(module: string): Logger {
  const debugOn = debugModules.has(module) || debugModules.has('*');
  const write = (level: string, event: string, fields: Fields = {}) =>
    process.stderr.write(format(level, module, event, fields) + '\n');
  return {
    info: (event, fields) => { if (!quiet) write('info', event, fields); },
    warn: (event, fields) => write('warn', event, fields),
    debug: (event, fields) => { if (debugOn) write('debug', event, fields); },
  };
}

// Refusals of sessions (and data connections) that never joined are logged at most once per reason
// every 10 s, with how many were folded into that line, so a flood of hostile
// connections cannot flood the log (each is still counted in the metric).
const lastRefusal = new Map<string, { at: number; folded: number }>();
export function logRefusal(log: Logger, reason: string, details: unknown, what = 'session refused'): void {
  const last = lastRefusal.get(reason);
  if (last && Date.now() - last.at < 10_000) { last.folded++; return; }
  log.warn(what, { reason, details, alsoRefusedSinceLastLine: last?.folded ?? 0 });
  lastRefusal.set(reason, { at: Date.now(), folded: 0 });
}
