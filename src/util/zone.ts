/**
 * Wall-clock arithmetic in an IANA time zone with nothing but `Intl`. A "wall" time is a local
 * date and time written as if it were UTC (`Date.UTC(y, m - 1, d, h, mi, s)`), so that plain
 * number comparisons order local times; an "instant" is an ordinary epoch in ms.
 */

const DAY_MS = 86_400_000;
/** Transitions are found by sampling the offset this often, then bisecting to the second. */
const TRANSITION_SAMPLE_MS = 3 * 3_600_000;

export interface WallParts {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

/** A change of UTC offset: from `at` on, the zone is `offsetAfterMs` ahead of UTC. */
export interface ZoneTransition {
  readonly at: number;
  readonly offsetBeforeMs: number;
  readonly offsetAfterMs: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const transitionsByYear = new Map<string, readonly ZoneTransition[]>();

/** The machine's zone, as Intl names it (`Etc/UTC` when it cannot tell). */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'Etc/UTC';
}

/** Whether `Intl` knows the zone (IANA names such as `America/New_York`, plus `UTC`). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', {timeZone: zone});
    return true;
  } catch {
    return false;
  }
}

function formatterFor(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, formatter);
  }
  return formatter;
}

/** The local wall time of an instant, to the second, as wall ms. */
export function wallOf(instant: number, zone: string): number {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(zone).formatToParts(new Date(instant))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return Date.UTC(parts['year']!, parts['month']! - 1, parts['day']!, parts['hour']!, parts['minute']!, parts['second']!);
}

/** How far the zone is ahead of UTC at an instant, in ms (New York in winter: -18,000,000). */
export function offsetAt(instant: number, zone: string): number {
  const second = Math.floor(instant / 1000) * 1000;
  return wallOf(second, zone) - second;
}

export function wallParts(wall: number): WallParts {
  const d = new Date(wall);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
  };
}

/**
 * The instants showing a wall time, earliest first: one normally, two in a repeated (autumn)
 * hour, none in a skipped (spring) gap.
 */
export function instantsOf(wall: number, zone: string): number[] {
  const offsets = new Set([offsetAt(wall - DAY_MS, zone), offsetAt(wall + DAY_MS, zone)]);
  const found: number[] = [];
  for (const offset of offsets) if (offsetAt(wall - offset, zone) === offset) found.push(wall - offset);
  return found.sort((a, b) => a - b);
}

/** The transitions of a zone in a calendar year (UTC), cached. */
export function transitionsIn(zone: string, year: number): readonly ZoneTransition[] {
  const key = `${zone}@${year}`;
  let found = transitionsByYear.get(key);
  if (found) return found;
  const list: ZoneTransition[] = [];
  const end = Date.UTC(year + 1, 0, 1);
  let at = Date.UTC(year, 0, 1);
  let offset = offsetAt(at, zone);
  while (at < end) {
    const next = Math.min(at + TRANSITION_SAMPLE_MS, end);
    const nextOffset = offsetAt(next, zone);
    if (nextOffset !== offset) {
      let lo = at; // offset here is the old one
      let hi = next; // and the new one here
      while (hi - lo > 1000) {
        const mid = Math.floor((lo + hi) / 2000) * 1000;
        if (mid <= lo) break;
        if (offsetAt(mid, zone) === offset) lo = mid;
        else hi = mid;
      }
      list.push({at: hi, offsetBeforeMs: offset, offsetAfterMs: nextOffset});
    }
    at = next;
    offset = nextOffset;
  }
  found = list;
  transitionsByYear.set(key, found);
  return found;
}

/** The first transition strictly after an instant, looking at most `years` calendar years ahead. */
export function nextTransitionAfter(instant: number, zone: string, years = 2): ZoneTransition | undefined {
  const startYear = new Date(instant).getUTCFullYear();
  for (let year = startYear; year <= startYear + years; year++) {
    const hit = transitionsIn(zone, year).find((t) => t.at > instant);
    if (hit) return hit;
  }
  return undefined;
}

/**
 * The instant a skipped wall time is run at: the transition that skipped it, which is the first
 * valid time after the gap (02:30 on a New York spring-forward day runs at 03:00 EDT).
 */
export function gapEndFor(wall: number, zone: string): number | undefined {
  const transition = nextTransitionAfter(wall - DAY_MS, zone);
  if (!transition || transition.offsetAfterMs <= transition.offsetBeforeMs) return undefined;
  const gapStart = transition.at + transition.offsetBeforeMs;
  const gapEnd = transition.at + transition.offsetAfterMs;
  return wall >= gapStart && wall < gapEnd ? transition.at : undefined;
}

/** Formats an instant in a zone for people: `2026-03-08 03:00:00 EDT`. */
export function formatInZone(instant: number, zone: string): string {
  const wall = new Date(wallOf(instant, zone))
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
  const name = new Intl.DateTimeFormat('en-US', {timeZone: zone, timeZoneName: 'short'})
    .formatToParts(new Date(instant))
    .find((p) => p.type === 'timeZoneName')?.value;
  return `${wall} ${name ?? zone}`;
}
