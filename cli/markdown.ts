// Markdown for reports (`tunefleet compare`, `npm run bench`): tables and a
// one-line description of the machine the numbers were measured on.
import { cpus } from 'node:os';

function cell(v: unknown): string {
  return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v);
}

export function markdownTable(header: string[], rows: unknown[][]): string {
  const lines = [header, header.map(() => '---'), ...rows.map((r) => r.map(cell))];
  return lines.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function machine(): string {
  return `${cpus().length}× ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}, ${process.platform}`;
}
