import {formatDuration} from '../util/duration.js';
import type {Clock} from './clock.js';

/** A run as the shutdown sees it. */
export interface DrainingRun {
  readonly done: Promise<void>;
  /** Set when the shutdown cancels it: the run is then recorded `interrupted`, for the next start to resume. */
  cutByShutdown?: boolean;
}

/**
 * Lets the runs go on for up to `graceMs` (on `clock`), then marks those still going as cut by the
 * shutdown and cancels them (`cancel(reason)`, calls in flight included); resolves once every run
 * has ended. `graceMs <= 0` cancels at once.
 */
export async function drainRuns(
  runs: readonly DrainingRun[],
  graceMs: number,
  clock: Clock,
  cancel: (reason: string) => void,
): Promise<void> {
  if (runs.length === 0) return;
  const cut = (reason: string) => {
    for (const run of runs) run.cutByShutdown = true;
    cancel(reason);
  };
  if (graceMs <= 0) cut('the scheduler stopped with no grace period');
  let timer: unknown;
  const expired = await Promise.race([
    Promise.all(runs.map((r) => r.done)).then(() => false),
    new Promise<boolean>((resolve) => (timer = clock.setTimer(() => resolve(true), Math.max(0, graceMs)))),
  ]);
  clock.clearTimer(timer);
  if (expired && graceMs > 0) cut(`still running after the ${formatDuration(graceMs)} grace period`);
  await Promise.all(runs.map((r) => r.done));
}
