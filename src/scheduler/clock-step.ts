/**
 * The scheduler's timers count real (monotonic) time, its plans are on the wall clock. When a
 * timer fires well before the wall-clock time it was armed for, the wall clock went back (an NTP
 * step, a VM restored from a snapshot, a hand-set clock): the planned ticks are that much further
 * away than they should be, and a job would silently skip them.
 */

/** A wake this much before its planned wall-clock time is a step back, not timer jitter. */
export const CLOCK_STEP_TOLERANCE_MS = 2000;

/** By how much the clock went back, when a timer planned for `expectedAt` fired at wall time `now`. */
export function detectClockStep(expectedAt: number | undefined, now: number, toleranceMs = CLOCK_STEP_TOLERANCE_MS): number | undefined {
  if (expectedAt === undefined) return undefined;
  const early = expectedAt - now;
  return early > toleranceMs ? early : undefined;
}
