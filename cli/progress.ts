// Live progress for long commands. On a terminal: one status line, rewritten
// in place (arm, iteration, accuracy, examples/s, ETA), with info logs hidden.
// Elsewhere (CI, files): nothing extra — the usual log lines are the record.
import { TrainingEvent } from '../core/observe/events';
import { jsonLogs, setQuiet } from '../core/observe/log';

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export class ProgressLine {
  private readonly tty = Boolean(process.stderr.isTTY);
  private label = '';
  private state = { iteration: 0, iterations: 0, accuracy: NaN, perSec: 0, started: Date.now(), startIteration: 0 };

  constructor() {
    if (this.tty) setQuiet(true);
  }

  /** A new run starts; `label` says which (e.g. "arm 2/6 scratch seed 1"). */
  begin(label: string): void {
    if (this.tty && this.label) process.stderr.write('\n'); // keep the finished run's last line
    this.label = label;
    if (!this.tty && !jsonLogs()) process.stderr.write(`${label}\n`); // JSON logs: the stage's own log line says it
  }

  readonly onEvent = (e: TrainingEvent): void => {
    if (e.type === 'job.started') this.state = { ...this.state, iteration: e.startIteration, startIteration: e.startIteration, iterations: e.iterations, accuracy: NaN, started: Date.now() };
    else if (e.type === 'progress') this.state = { ...this.state, iteration: e.iteration, perSec: e.examplesPerSec };
    else if (e.type === 'evaluation') this.state = { ...this.state, iteration: e.iteration, accuracy: e.valAccuracy };
    else return;
    this.draw();
  };

  private draw(): void {
    if (!this.tty) return;
    const s = this.state;
    const rate = (s.iteration - s.startIteration) / ((Date.now() - s.started) / 1000);
    const eta = (s.iterations - s.iteration) / rate;
    const acc = Number.isNaN(s.accuracy) ? '—' : `${(100 * s.accuracy).toFixed(1)}%`;
    process.stderr.write(`\r\x1b[2K${this.label}  it ${s.iteration}/${s.iterations}  acc ${acc}  ${s.perSec} ex/s  ETA ${clock(eta)}`);
  }

  end(): void {
    if (this.tty) {
      process.stderr.write('\n');
      setQuiet(false);
    }
  }
}
