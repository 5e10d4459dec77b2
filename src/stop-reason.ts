import {InterruptedError, IoError, QueueError} from './errors.js';

/**
 * Why a run stopped before the end of its input, as data. The state database keeps it in its own
 * column (`runs.stop`) next to the message (`runs.reason`, for people), and resume, pruning and the
 * next step printed after a run read the kind, never the message: rewording a message changes nothing.
 */
export type StopReason =
  /** Stopped from outside through its AbortSignal: SIGINT/SIGTERM, the daemon's shutdown or a newer run replacing it. Status `cancelled` (or `interrupted` at the daemon's shutdown). */
  | 'signal'
  /** More failed records than `maxFailures` allows. Status `failed`; resumable with the limit raised. */
  | 'maxFailures'
  /** More invalid records than `maxInvalid` allows. Status `failed`; resumable with the limit raised. */
  | 'maxInvalid'
  /** The backend was unreachable for longer than `maxOutage`. Status `interrupted`. */
  | 'outage'
  /** Reading or writing its files or the state database failed (`IoError`). Status `interrupted`. */
  | 'io'
  /** A distributed run's Redis lost or refused its data (`QueueError`). */
  | 'queue'
  /** The process that ran it ended without recording the run (its lease ran out, its files were unlocked). Status `interrupted`. */
  | 'ownerGone'
  /** Anything else thrown: a bug or an unexpected fault. Status `error`. */
  | 'error';

export const STOP_REASONS: readonly StopReason[] = ['signal', 'maxFailures', 'maxInvalid', 'outage', 'io', 'queue', 'ownerGone', 'error'];

/** A stop that `maxFailures` or `maxInvalid` made: the run is `failed`, yet `--resume` may continue it with the limit raised. */
export function isThresholdStop(stop: StopReason | undefined): stop is 'maxFailures' | 'maxInvalid' {
  return stop === 'maxFailures' || stop === 'maxInvalid';
}

/** The kind of stop an error thrown out of a run means. */
export function stopReasonOf(error: unknown): StopReason {
  if (error instanceof InterruptedError) return 'signal';
  if (error instanceof IoError) return 'io';
  if (error instanceof QueueError) return 'queue';
  return 'error';
}

/** A stored kind as the type, or undefined (NULL, or a kind a newer grpc-batch wrote). */
export function parseStopReason(value: unknown): StopReason | undefined {
  return STOP_REASONS.includes(value as StopReason) ? (value as StopReason) : undefined;
}
