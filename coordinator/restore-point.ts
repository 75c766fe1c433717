// Where the job goes back to when a parameter shard is lost (shard-set.ts): the
// last checkpoint this run wrote, or before its first one the state the run
// started from (fresh, pretrained or resumed), kept in memory. Restoring puts
// the parameters, momentum, sampler position, ledger and iteration back into
// the job, exactly what a coordinator restarted with --resume would load, so
// the run then goes on as if the steps since had never been taken.
import { JobSetup } from '../core/job/setup';
import { loadCheckpoint } from '../core/model/checkpoint';
import { readParams } from '../core/model/params';
import { LedgerEntry } from '../core/train/ledger';
import { Tensors } from '../core/util/tensors';
import { Sampler, SamplerPosition } from '../core/train/sampler';

interface State {
  iteration: number;
  params: Tensors;
  velocity: Tensors;
  sampler: SamplerPosition;
  ledger: LedgerEntry[];
}

const copy = (t: Tensors): Tensors => new Map([...t].map(([name, v]) => [name, v.slice()]));

export class RestorePoint {
  private checkpoint: string | null = null;
  private readonly start: State;

  constructor(private readonly job: JobSetup) {
    this.start = { iteration: job.startIteration, params: copy(job.params), velocity: copy(job.sgd.velocity), sampler: job.sampler.position, ledger: job.ledger.slice() };
    job.events.subscribe((e) => { if (e.type === 'checkpoint.written') this.checkpoint = e.dir; });
  }

  /** Put the job back at the restore point; returns its iteration. */
  async restore(): Promise<number> {
    const state = this.checkpoint ? await fromCheckpoint(this.checkpoint) : this.start;
    const { job } = this;
    for (const [name, values] of state.params) job.params.get(name)!.set(values);
    job.sgd.velocity.clear();
    for (const [name, v] of state.velocity) job.sgd.velocity.set(name, v.slice());
    job.sampler = new Sampler(job.sampler.size, job.sampler.seed, state.sampler);
    job.startIteration = state.iteration;
    job.ledger = state.ledger.slice();
    return state.iteration;
  }
}

async function fromCheckpoint(dir: string): Promise<State> {
  const { model, state } = await loadCheckpoint(dir);
  const params = await readParams(model);
  model.dispose();
  return { iteration: state.iteration, params, velocity: state.velocity, sampler: state.sampler, ledger: state.ledger };
}
