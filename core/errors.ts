// Every error tunefleet raises on purpose lives here. Each has a fixed `name`
// (what a user greps for), a message that says what to do, and an optional
// `cause`. The CLI prints `name: message` and exits non-zero; it never prints a
// stack trace for these.

export class TunefleetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A named dataset is nowhere to be found and cannot be downloaded. */
export class DatasetNotFound extends TunefleetError {}

/** A dataset file exists but is not what its format says it is. */
export class DatasetMalformed extends TunefleetError {
  constructor(readonly file: string, problem: string, options?: { cause?: unknown }) {
    super(`${file}: ${problem}`, options);
  }
}

/** A downloaded file's checksum does not match the published one. */
export class ChecksumMismatch extends TunefleetError {}

/** The job config (YAML) does not parse or fails the schema. */
export class ConfigInvalid extends TunefleetError {}

/** A model could not be loaded, cut or modified as asked. */
export class ModelInvalid extends TunefleetError {}

/** A checkpoint is missing, incomplete or corrupted. */
export class CheckpointInvalid extends TunefleetError {}

/** The requested compute backend is not available on this machine. */
export class BackendUnavailable extends TunefleetError {}

/** Render any thrown value as the one line the CLI shows a user. */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * Why the coordinator refused a message or a session: the one vocabulary for
 * the wire checks, the `reason` label of tunefleet_rejected_messages_total,
 * the gRPC status details (`<reason>: <what>`), the docs and the fuzz test.
 */
export const REJECT_REASONS = {
  'auth': 'no or wrong token',
  'undecodable': 'the bytes are not a WorkerMessage, or a frame header with an unknown kind or out-of-range numbers',
  'oversized': 'a gRPC message over the 8 MiB limit, or a data-plane frame declaring over 64 MiB',
  'no-join': 'the first message was not Join, or none came in time',
  'bad-join': 'a Join whose worker id, backend or device is too long or has other characters than [A-Za-z0-9._:@/-]',
  'unknown-name': 'a tensor that is not a trainable variable',
  'shape': 'a shape other than the variable\'s',
  'dtype': 'a dtype the job does not send',
  'size': 'bytes outside the tensor, misaligned, or more than one upload holds',
  'non-finite': 'NaN or Inf in a gradient or in a reported number',
  'stale': 'a result for another step or parameter version',
  'examples': 'an example count other than the slice\'s',
  'incomplete': 'StepDone before every trainable gradient arrived',
  'outlier': "a worker's gradient norm far above its peers' recent ones (train.spikeGuard, with 3 or more live workers)",
  'unexpected': 'a message that does not fit the session now (e.g. a gradient while it holds no slice)',
  'duplicate-id': 'a worker id that is live in another session',
  'refused': 'a worker id refused for repeated bad sessions',
  'job-finished': 'a Join after the job ended',
  'bad-ticket': 'a data connection whose first frame is not a HELLO with a live, unused ticket, or that sent none in time',
  'truncated': 'a data connection that closed in the middle of a frame (the session ends; no strike against the worker id)',
  'internal': 'a coordinator bug while handling the message (the session ends, the job goes on)',
} as const;
export type RejectReason = keyof typeof REJECT_REASONS;

/** A message from the other side breaks the wire contract (unknown tensor, wrong shape or size…). */
export class WireInvalid extends TunefleetError {
  constructor(message: string, readonly reason: RejectReason, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** No token, or the wrong one. */
export class Unauthenticated extends TunefleetError {}

/** The coordinator refuses this worker (its id was rejected too often). */
export class WorkerRefused extends TunefleetError {}

/** The distributed job cannot go on (no workers left, coordinator gone, or it has finished). */
export class JobFailed extends TunefleetError {}

/** The model diverged: the same examples gave NaN/Inf on two workers (or twice on one). */
export class JobDiverged extends TunefleetError {}

/** A worker's data connection closed (or never opened): its session ends, its slice goes to another. */
export class ConnectionLost extends TunefleetError {}

/** A parameter shard's session ended mid-job: the step cannot complete; the job goes back to its last checkpoint once a shard takes the slot again. */
export class ShardLost extends TunefleetError {}

/** A worker did not answer its slice within the slice deadline (coordinator/slice-deadline.ts). */
export class DeadlineExceeded extends TunefleetError {}

/** Told to stop (SIGTERM) before the job finished: it stopped after a step, with a checkpoint there; --resume continues (exit 143). */
export class JobStopped extends TunefleetError {}

/** Why a session was ended, as the worker's status details and the worker.lost event say it: `<reason>: <what>`. */
export function endedBecause(err: Error): string {
  if (err instanceof WireInvalid) return `${err.reason}: ${err.message}`;
  if (err instanceof DeadlineExceeded) return `deadline: ${err.message}`;
  return err.message;
}

/** The reason a refused message or session is counted under; null when no message was refused (a missed deadline, a diverged job). */
export function rejectReason(err: unknown): RejectReason | null {
  if (err instanceof DeadlineExceeded || err instanceof JobDiverged || err instanceof ConnectionLost || err instanceof ShardLost) return null;
  if (err instanceof WireInvalid) return err.reason;
  if (err instanceof Unauthenticated) return 'auth';
  if (err instanceof WorkerRefused) return 'refused';
  if (err instanceof JobFailed) return 'job-finished';
  return 'internal';
}
