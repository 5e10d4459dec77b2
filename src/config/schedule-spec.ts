import type {Issue} from '../errors.js';
import {DURATION_HINT, parseDuration} from '../util/duration.js';
import {CronSchedule, checkCronExpression} from '../util/cron.js';
import {formatInZone, isTimeZone, localTimeZone} from '../util/zone.js';
import {didYouMean} from '../util/suggest.js';

/** What to do when a run fires while the job's previous run is still going. */
export type OverlapPolicy = 'skip' | 'queue' | 'replace' | 'allow';
export const OVERLAP_POLICIES: readonly OverlapPolicy[] = ['skip', 'queue', 'replace', 'allow'];

/** The schedule keys of a job file, resolved (see the README, "Schedules"). */
export interface ScheduleSpec {
  /** Cron expression, 5 fields or 6 with seconds first. */
  readonly expression: string;
  /** IANA zone the expression is read in. @default the machine's zone */
  readonly timezone: string;
  /** @default 'skip' */
  readonly overlap: OverlapPolicy;
  /** A tick missed within this window before start-up runs once; 0 = never. @default 0 */
  readonly catchUpMs: number;
  /** Most random delay before a fired run starts. @default 0 */
  readonly jitterMs: number;
  /** false keeps the job loaded (manual runs work) but never fires it. @default true */
  readonly enabled: boolean;
}

export const SCHEDULE_DEFAULTS = {overlap: 'skip', catchUp: 0, jitter: 0, enabled: true} as const;
export const SCHEDULE_KEYS = ['schedule', 'timezone', 'overlap', 'catchUp', 'jitter', 'enabled'] as const;
/** How far ahead a schedule is checked for times in a daylight-saving gap. */
const GAP_WARNING_HORIZON_MS = 366 * 86_400_000;

/**
 * Checks the schedule keys of a raw job (the schema has already checked their types; keys it
 * flagged are in `flagged` and are not reported twice). Returns the resolved schedule, or undefined
 * when the job has no `schedule`, plus every issue: errors, and a warning per daylight-saving gap
 * the schedule touches in the coming year.
 */
export function checkSchedule(
  job: Record<string, unknown>,
  file: string,
  flagged: ReadonlySet<string>,
  now = Date.now(),
): {schedule?: ScheduleSpec; issues: Issue[]} {
  const issues: Issue[] = [];
  const error = (key: string, message: string) => void (flagged.has(key) || issues.push({file, path: key, message}));
  const raw = job['schedule'];
  if (raw === undefined) {
    for (const key of SCHEDULE_KEYS.slice(1)) {
      if (job[key] !== undefined)
        issues.push({
          file,
          path: key,
          message: 'has no effect without schedule (add schedule: "*/15 * * * *" or remove it)',
          severity: 'warning',
        });
    }
    return {issues};
  }
  let expressionOk = false;
  if (typeof raw !== 'string' || raw.trim() === '') {
    error(
      'schedule',
      `expected a cron expression like "*/15 * * * *" (5 fields, or 6 with seconds first), got ${JSON.stringify(raw)} (${typeof raw})`,
    );
  } else {
    const problems = checkCronExpression(raw);
    if (problems.length > 0)
      error(
        'schedule',
        `expected a cron expression like "*/15 * * * *" (5 fields, or 6 with seconds first), got ${JSON.stringify(raw)}: ${problems.join('; ')}`,
      );
    else expressionOk = true;
  }

  const timezone = job['timezone'] ?? localTimeZone();
  let zoneOk = false;
  if (typeof timezone !== 'string' || !isTimeZone(timezone)) {
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    error(
      'timezone',
      `expected an IANA time zone name like America/New_York, Europe/Paris or UTC, got ${JSON.stringify(timezone)}${didYouMean(String(timezone), zones)}`,
    );
  } else zoneOk = true;

  const overlap = job['overlap'] ?? SCHEDULE_DEFAULTS.overlap;
  if (!OVERLAP_POLICIES.includes(overlap as OverlapPolicy))
    error(
      'overlap',
      `expected one of ${OVERLAP_POLICIES.join(', ')}, got ${JSON.stringify(overlap)}${didYouMean(String(overlap), OVERLAP_POLICIES)}`,
    );

  const duration = (key: string, fallback: number) => {
    const value = job[key] ?? fallback;
    const ms = parseDuration(value);
    if (ms === undefined) error(key, `expected ${DURATION_HINT} (0 = none), got ${JSON.stringify(value)}`);
    return ms ?? 0;
  };
  const catchUpMs = duration('catchUp', SCHEDULE_DEFAULTS.catchUp);
  const jitterMs = duration('jitter', SCHEDULE_DEFAULTS.jitter);
  const enabled = job['enabled'] ?? SCHEDULE_DEFAULTS.enabled;
  if (typeof enabled !== 'boolean') error('enabled', `expected true or false, got ${JSON.stringify(enabled)} (${typeof enabled})`);

  if (!expressionOk || !zoneOk || issues.length > 0) return {issues};
  const expression = (raw as string).trim();
  const cron = new CronSchedule(expression, timezone as string);
  if (cron.next(now) === undefined) {
    issues.push({
      file,
      path: 'schedule',
      message: `"${expression}" never fires (no date matches every field; day-of-month and day-of-week must both match)`,
    });
    return {issues};
  }
  for (const gap of cron.gapsTouched(now, now + GAP_WARNING_HORIZON_MS)) {
    const day = new Date(gap.gapStartWall).toISOString().slice(0, 10);
    const hhmm = (wall: number) => new Date(wall).toISOString().slice(11, 16);
    issues.push({
      file,
      path: 'schedule',
      severity: 'warning',
      message: `"${expression}" fires at ${hhmm(gap.firstWall)} on ${day}, a time that does not exist in ${timezone} (clocks jump from ${hhmm(gap.gapStartWall)} to ${hhmm(gap.gapEndWall)}); that run happens at ${formatInZone(gap.transitionAt, timezone as string)} instead`,
    });
  }
  return {
    schedule: {
      expression,
      timezone: timezone as string,
      overlap: overlap as OverlapPolicy,
      catchUpMs,
      jitterMs,
      enabled: enabled as boolean,
    },
    issues,
  };
}
