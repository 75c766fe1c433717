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
  if (err instanceof TunefleetError) return `${err.name}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** A message from the other side breaks the wire contract (unknown tensor, wrong shape or size…). */
export class WireInvalid extends TunefleetError {
  constructor(message: string, readonly reason: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The coordinator refuses this worker (its id was rejected too often, or the job has finished). */
export class WorkerRefused extends TunefleetError {}

/** The distributed job cannot go on (no workers left, coordinator gone…). */
export class JobFailed extends TunefleetError {}
