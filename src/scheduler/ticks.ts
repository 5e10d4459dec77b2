import type {CronSchedule} from '../util/cron.js';

/** Most ticks walked when counting missed ones (an every-second job down for days). */
export const MAX_TICK_SCAN = 100_000;

/** What a timer that woke at `now` owes a job whose next tick was `nextFireAt`. */
export interface DueTick {
  /** The latest due tick: the one run. */
  readonly tick: number;
  /** Due ticks before it, folded into that one run (woken late: machine sleep, a blocked loop). */
  readonly missed: number;
  /** The job's next tick after `now`. */
  readonly next: number | undefined;
}

/** The tick to run now, or undefined when `nextFireAt` is still to come. */
export function dueTick(cron: CronSchedule, nextFireAt: number | undefined, now: number): DueTick | undefined {
  if (nextFireAt === undefined || nextFireAt > now) return undefined;
  let tick = nextFireAt;
  let missed = 0;
  let next = cron.next(tick);
  while (next !== undefined && next <= now && missed < MAX_TICK_SCAN) {
    tick = next;
    missed++;
    next = cron.next(next);
  }
  return {tick, missed, next};
}

/** What a start-up owes a job whose last stored tick was `last`. */
export interface CatchUp {
  /** The first tick after `last`, if it is due. */
  readonly first: number | undefined;
  /** The tick to run as a catch-up run: the latest due one within the window. */
  readonly latest: number | undefined;
  /** Due ticks not run (outside the window, or folded into `latest`'s run). */
  readonly missed: number;
}

/** The ticks between `last` and `now`: the latest within `windowMs` of now runs, the others are missed. */
export function catchUpTicks(cron: CronSchedule, last: number, now: number, windowMs: number): CatchUp {
  const first = cron.next(last);
  if (first === undefined || first > now) return {first: undefined, latest: undefined, missed: 0};
  const windowStart = now - windowMs;
  let latest: number | undefined;
  if (windowMs > 0) {
    for (
      let tick = cron.next(Math.max(last, windowStart - 1)), i = 0;
      tick !== undefined && tick <= now && i < MAX_TICK_SCAN;
      tick = cron.next(tick), i++
    ) {
      if (tick >= windowStart) latest = tick;
    }
  }
  let missed = 0;
  for (let tick: number | undefined = first; tick !== undefined && tick <= now && missed < MAX_TICK_SCAN; tick = cron.next(tick))
    if (tick !== latest) missed++;
  return {first, latest, missed};
}
