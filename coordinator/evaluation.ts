// One evaluation across the fleet: the validation set sharded over the live
// workers like a step's batch (same round, same reassignment and deadlines),
// and the workers' counts summed into accuracy and mean loss. Each
// evaluation has its own id; a result must name it and add up (at most as
// many correct as examples, a finite non-negative loss) before it counts.
import { WireInvalid } from '../core/errors';
import { EvalResult } from '../core/train/gradients';
import { EvalDone } from '../proto/gen/tunefleet/v1/tunefleet';
import { Round } from './round';
import { Fleet } from './step';

export class Evaluations {
  private current: { id: number; round: Round<EvalDone> } | null = null;
  private started = 0;

  /** The training examples every worker estimates BatchNorm statistics from before evaluating (core/model/batch-norm.ts), as every Eval names them. */
  private readonly statistics: number[];

  constructor(private readonly fleet: Fleet, statistics: Uint32Array) {
    this.statistics = Array.from(statistics);
  }

  async run(version: number, examples: number): Promise<EvalResult> {
    const id = ++this.started;
    const totals = { correct: 0, lossSum: 0, examples: 0 };
    const round: Round<EvalDone> = new Round(
      (w, task) => this.fleet.handOut(w, round, task, 'evaluation', { $case: 'eval', value: { evalId: id, version, indices: Array.from(task.indices), statisticsIndices: this.statistics } }),
      (_w, _task, r) => {
        totals.correct += r.correct;
        totals.lossSum += r.lossSum;
        totals.examples += r.examples;
      },
    );
    this.current = { id, round };
    try {
      await this.fleet.distribute(round, Uint32Array.from({ length: examples }, (_, i) => i));
    } finally {
      this.current = null;
    }
    const t = totals;
    return { correct: t.correct, accuracy: t.correct / t.examples, loss: t.lossSum / t.examples, count: t.examples };
  }

  /** Worker `w`'s counts for its oldest evaluation slice. */
  onEvalDone(w: string, msg: EvalDone): void {
    const current = this.current;
    const task = current?.round.outstanding(w);
    if (!current || !task) throw new WireInvalid('EvalDone while no evaluation is assigned to this worker', 'unexpected');
    if (msg.evalId !== current.id) throw new WireInvalid(`EvalDone for evaluation ${msg.evalId}; expected ${current.id}`, 'stale');
    if (msg.examples !== task.indices.length) throw new WireInvalid(`EvalDone reports ${msg.examples} examples for a slice of ${task.indices.length}`, 'examples');
    if (msg.correct > msg.examples) throw new WireInvalid(`EvalDone reports ${msg.correct} correct of ${msg.examples}`, 'examples');
    if (!(Number.isFinite(msg.lossSum) && msg.lossSum >= 0)) throw new WireInvalid(`EvalDone reports loss_sum ${msg.lossSum}`, 'non-finite');
    current.round.complete(w, msg);
    this.fleet.answered(w, current.round, 'evaluation');
  }
}
