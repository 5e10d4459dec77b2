import {parse, validateDetailed, type ParsedFields} from 'node-cron';
import {gapEndFor, instantsOf, nextTransitionAfter, offsetAt, transitionsIn, wallOf, wallParts} from './zone.js';

/**
 * A cron expression evaluated in a time zone. node-cron parses and validates the expression;
 * next fire times are computed here so that daylight-saving behaviour is ours and testable:
 *
 * - **Wall-clock schedules** (the hour field is not `*`, e.g. `30 2 * * *`): a time that falls in
 *   the spring-forward gap runs once at the first valid time after it (the transition, 03:00 in
 *   New York); a time repeated in the autumn runs once, at its first occurrence.
 * - **Every-hour schedules** (hour field `*`, e.g. every 15 minutes) follow elapsed time: the
 *   skipped hour has nothing to run and the repeated hour runs again, so the interval holds.
 *
 * Day-of-month and day-of-week must both match (node-cron's rule, unlike Vixie cron's "either").
 */

/** How far ahead a next fire time is searched for (covers Feb 29 on a given weekday). */
const MAX_SEARCH_DAYS = 366 * 30;
const DAY_MS = 86_400_000;

export class CronSchedule {
  readonly expression: string;
  readonly timezone: string;
  /** Whether the schedule follows elapsed time across DST (hour field `*`), see above. */
  readonly followsElapsedTime: boolean;
  readonly #fields: ParsedFields;
  readonly #seconds: number[];
  readonly #minutes: number[];
  readonly #hours: number[];

  /** Throws `TypeError` naming the field when the expression is not valid; check with `checkCronExpression` first. */
  constructor(expression: string, timezone: string) {
    this.expression = expression.trim();
    this.timezone = timezone;
    this.#fields = parse(this.expression);
    this.#seconds = sortedNumbers(this.#fields.second);
    this.#minutes = sortedNumbers(this.#fields.minute);
    this.#hours = sortedNumbers(this.#fields.hour);
    this.followsElapsedTime = this.#hours.length === 24;
  }

  /** The first fire time strictly after `after` (epoch ms), or undefined when there is none. */
  next(after: number): number | undefined {
    return this.followsElapsedTime ? this.#nextElapsed(after) : this.#nextWall(after);
  }

  /** The next `count` fire times after `after`. */
  nextRuns(after: number, count: number): number[] {
    const runs: number[] = [];
    let at = after;
    while (runs.length < count) {
      const next = this.next(at);
      if (next === undefined) break;
      runs.push(next);
      at = next;
    }
    return runs;
  }

  /** Whether a local wall time (wall ms) matches the expression. */
  matchesWall(wall: number): boolean {
    const p = wallParts(wall);
    return this.#seconds.includes(p.second) && this.#minutes.includes(p.minute) && this.#hours.includes(p.hour) && this.#matchesDay(wall);
  }

  /**
   * The spring-forward gaps in `[from, to)` that contain a time of this schedule: each one is run
   * at the gap's end instead. Empty for every-hour schedules, which lose nothing in a gap.
   */
  gapsTouched(from: number, to: number): {transitionAt: number; gapStartWall: number; gapEndWall: number; firstWall: number}[] {
    if (this.followsElapsedTime) return [];
    const found = [];
    for (let year = new Date(from).getUTCFullYear(); year <= new Date(to).getUTCFullYear(); year++) {
      for (const t of transitionsIn(this.timezone, year)) {
        if (t.at < from || t.at >= to || t.offsetAfterMs <= t.offsetBeforeMs) continue;
        const gapStartWall = t.at + t.offsetBeforeMs;
        const gapEndWall = t.at + t.offsetAfterMs;
        const firstWall = this.#nextMatchingWall(gapStartWall, true, gapEndWall);
        if (firstWall !== undefined && firstWall < gapEndWall) found.push({transitionAt: t.at, gapStartWall, gapEndWall, firstWall});
      }
    }
    return found;
  }

  /** Wall-clock mode: walk matching wall times upward from the wall time of `after`. */
  #nextWall(after: number): number | undefined {
    let wall: number | undefined = wallOf(after, this.timezone);
    let inclusive = true;
    for (let guard = 0; guard < 100_000; guard++) {
      wall = this.#nextMatchingWall(wall, inclusive);
      if (wall === undefined) return undefined;
      const instants = instantsOf(wall, this.timezone);
      // A repeated time runs at its first occurrence; a skipped one at the end of its gap.
      const instant = instants.length > 0 ? instants[0] : gapEndFor(wall, this.timezone);
      if (instant !== undefined && instant > after) return instant;
      inclusive = false;
    }
    return undefined;
  }

  /** Elapsed-time mode: an instant fires when its own wall time matches; search offset segment by segment. */
  #nextElapsed(after: number): number | undefined {
    let from = Math.floor(after / 1000) * 1000;
    let inclusive = from > after; // only when `after` had a fraction of a second
    for (let guard = 0; guard < 1000; guard++) {
      const offset = offsetAt(from, this.timezone);
      const segmentEnd = nextTransitionAfter(from, this.timezone)?.at ?? Number.POSITIVE_INFINITY;
      const wall = this.#nextMatchingWall(from + offset, inclusive);
      if (wall === undefined) return undefined;
      if (wall - offset < segmentEnd) return wall - offset;
      from = segmentEnd;
      inclusive = true;
    }
    return undefined;
  }

  /** The first wall time at or after (or strictly after) `wall` that matches, or undefined. */
  #nextMatchingWall(wall: number, inclusive: boolean, limitWall?: number): number | undefined {
    const start = inclusive ? wall : wall + 1000;
    const startSecond = Math.ceil(start / 1000) * 1000;
    const firstDay = Math.floor(startSecond / DAY_MS) * DAY_MS;
    const lastDay = firstDay + MAX_SEARCH_DAYS * DAY_MS;
    for (let day = firstDay; day < lastDay; day += DAY_MS) {
      if (limitWall !== undefined && day >= limitWall) return undefined;
      if (!this.#matchesDay(day)) continue;
      const lowerBound = day === firstDay ? startSecond - day : 0;
      for (const hour of this.#hours) {
        if ((hour + 1) * 3_600_000 <= lowerBound) continue;
        for (const minute of this.#minutes) {
          if (hour * 3_600_000 + (minute + 1) * 60_000 <= lowerBound) continue;
          for (const second of this.#seconds) {
            const at = hour * 3_600_000 + minute * 60_000 + second * 1000;
            if (at >= lowerBound) return day + at;
          }
        }
      }
    }
    return undefined;
  }

  #matchesDay(wall: number): boolean {
    const {year, month, day} = wallParts(wall);
    if (!this.#fields.month.includes(month)) return false;
    const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
    return (
      this.#fields.dayOfMonth.some((v) => matchesDayOfMonth(v, year, month, day)) &&
      this.#fields.dayOfWeek.some((v) => matchesDayOfWeek(v, year, month, day, weekday))
    );
  }
}

/** Problems with a cron expression, one line per field, each naming what was expected; empty when valid. */
export function checkCronExpression(expression: string): string[] {
  const result = validateDetailed(expression.trim());
  if (result.valid) return [];
  return result.errors.map((e) => {
    const expected = FIELD_RANGES[e.field];
    if (!expected) return e.message.replace(/^expected/, 'expected a cron expression of');
    return `${e.field} field ${JSON.stringify(e.value ?? '')} is not valid: expected ${expected}`;
  });
}

const FIELD_RANGES: Record<string, string> = {
  second: '0-59, a list (1,30), a range (0-30) or a step (*/10)',
  minute: '0-59, a list (0,30), a range (0-30) or a step (*/15)',
  hour: '0-23, a list, a range or a step',
  dayOfMonth: '1-31, L (last day), 15W (nearest weekday), a list, a range or a step',
  month: '1-12 or JAN-DEC, a list, a range or a step',
  dayOfWeek: '0-7 or SUN-SAT (0 and 7 are Sunday), 5L (last Friday), 1#2 (second Monday), a list or a range',
};

function sortedNumbers(values: readonly (number | string)[]): number[] {
  return values.filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
}

function lastDayOfMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function matchesDayOfMonth(value: number | string, year: number, month: number, day: number): boolean {
  if (typeof value === 'number') return value === day;
  const last = lastDayOfMonth(year, month);
  if (value === 'L') return day === last;
  const offset = /^L-(\d{1,2})$/.exec(value);
  if (offset) return day === last - Number(offset[1]);
  const weekdayNear = /^(\d{1,2}|L)W$/.exec(value);
  if (weekdayNear) {
    const target = weekdayNear[1] === 'L' ? last : Number(weekdayNear[1]);
    if (target < 1 || target > last) return false;
    const weekday = new Date(Date.UTC(year, month - 1, target)).getUTCDay();
    const nearest = weekday === 6 ? (target === 1 ? 3 : target - 1) : weekday === 0 ? (target === last ? target - 2 : target + 1) : target;
    return day === nearest;
  }
  return false;
}

function matchesDayOfWeek(value: number | string, year: number, month: number, day: number, weekday: number): boolean {
  if (typeof value === 'number') return value % 7 === weekday;
  const last = /^([0-7])L$/i.exec(value);
  if (last) return Number(last[1]) % 7 === weekday && day + 7 > lastDayOfMonth(year, month);
  const nth = /^([0-7])#([1-5])$/.exec(value);
  if (nth) return Number(nth[1]) % 7 === weekday && Math.floor((day - 1) / 7) + 1 === Number(nth[2]);
  return false;
}
