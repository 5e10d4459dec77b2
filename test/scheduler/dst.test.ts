import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob, type LoadedJob} from '../../src/config/load.js';
import type {RunOptions} from '../../src/engine/run.js';
import type {RunSummary} from '../../src/engine/stats.js';
import {ManualClock} from '../../src/scheduler/clock.js';
import {CronSchedule} from '../../src/util/cron.js';
import {Scheduler} from '../../src/scheduler/scheduler.js';
import {describeSchedule} from '../../src/scheduler/words.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';

const NY = 'America/New_York';
const iso = (ms: number) => new Date(ms).toISOString().replace('.000', '');
const nextRuns = (expression: string, from: string, count: number, zone = NY) =>
  new CronSchedule(expression, zone).nextRuns(Date.parse(from), count).map(iso);

test('a daily time in the spring-forward gap runs once at the first valid time after it', () => {
  // 2026-03-08: New York clocks go 01:59:59 EST -> 03:00:00 EDT; 02:30 does not exist.
  assert.deepEqual(nextRuns('30 2 * * *', '2026-03-06T12:00:00Z', 3), [
    '2026-03-07T07:30:00Z', // 02:30 EST
    '2026-03-08T07:00:00Z', // 03:00 EDT, the end of the gap
    '2026-03-09T06:30:00Z', // 02:30 EDT
  ]);
});

test('several times in the same gap run once, not once each', () => {
  assert.deepEqual(nextRuns('*/15 2-3 * * *', '2026-03-08T06:00:00Z', 3), [
    '2026-03-08T07:00:00Z', // 02:00-02:45 and 03:00 all land on 03:00 EDT: one run
    '2026-03-08T07:15:00Z',
    '2026-03-08T07:30:00Z',
  ]);
});

test('a daily time repeated by the autumn fall-back runs once, at its first occurrence', () => {
  // 2026-11-01: 01:59:59 EDT -> 01:00:00 EST; 01:30 happens twice.
  assert.deepEqual(nextRuns('30 1 * * *', '2026-10-31T12:00:00Z', 3), [
    '2026-11-01T05:30:00Z',
    '2026-11-02T06:30:00Z',
    '2026-11-03T06:30:00Z',
  ]);
});

test('an every-hour schedule follows elapsed time across both transitions', () => {
  assert.deepEqual(nextRuns('*/30 * * * *', '2026-11-01T04:50:00Z', 5), [
    '2026-11-01T05:00:00Z',
    '2026-11-01T05:30:00Z',
    '2026-11-01T06:00:00Z',
    '2026-11-01T06:30:00Z',
    '2026-11-01T07:00:00Z',
  ]);
  assert.deepEqual(nextRuns('0 * * * *', '2026-03-08T05:30:00Z', 3), [
    '2026-03-08T06:00:00Z',
    '2026-03-08T07:00:00Z',
    '2026-03-08T08:00:00Z',
  ]);
});

test('a six-field schedule fires on seconds and other zones keep their own rules', () => {
  assert.deepEqual(nextRuns('*/20 * * * * *', '2026-01-01T00:00:05Z', 3, 'UTC'), [
    '2026-01-01T00:00:20Z',
    '2026-01-01T00:00:40Z',
    '2026-01-01T00:01:00Z',
  ]);
  // Europe/Paris springs forward 02:00 -> 03:00 on 2026-03-29.
  assert.deepEqual(nextRuns('30 2 * * *', '2026-03-28T12:00:00Z', 2, 'Europe/Paris'), ['2026-03-29T01:00:00Z', '2026-03-30T00:30:00Z']);
});

test('describes schedules in words', () => {
  assert.equal(describeSchedule('*/15 * * * *'), 'every 15 minutes');
  assert.equal(describeSchedule('30 2 * * *'), 'at 02:30 every day');
  assert.equal(describeSchedule('0 9 * * 1-5'), 'at 09:00 on weekdays');
  assert.equal(describeSchedule('* * * * * *'), 'every second');
});

function countingRunner() {
  const started: number[] = [];
  const runner = async (job: LoadedJob, options: RunOptions): Promise<RunSummary> => ({
    job: job.spec.name,
    runId: options.runId!,
    status: 'succeeded',
    total: 0,
    ok: 0,
    failed: 0,
    invalid: 0,
    byStatus: {},
    errors: {},
    attempts: 0,
    retried: 0,
    retriesThrottled: 0,
    unfinished: 0,
    outages: {pauses: 0, pausedMs: 0},
    durationMs: 0,
    callsPerSec: 0,
    latencyMs: {p50: 0, p90: 0, p99: 0, max: 0},
    lastLine: 0,
    output: '/dev/null',
  });
  return {started, runner};
}

for (const [name, schedule, from, to, expected] of [
  [
    'spring-forward',
    '30 2 * * *',
    '2026-03-06T12:00:00Z',
    '2026-03-10T12:00:00Z',
    ['2026-03-07T07:30:00Z', '2026-03-08T07:00:00Z', '2026-03-09T06:30:00Z', '2026-03-10T06:30:00Z'],
  ],
  [
    'fall-back',
    '30 1 * * *',
    '2026-10-30T12:00:00Z',
    '2026-11-03T12:00:00Z',
    ['2026-10-31T05:30:00Z', '2026-11-01T05:30:00Z', '2026-11-02T06:30:00Z', '2026-11-03T06:30:00Z'],
  ],
] as const) {
  test(`the scheduler neither skips nor doubles a daily New York run across the ${name} transition`, async (t) => {
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
    const job = await loadJob(writeJob(dir, '127.0.0.1:1', {name: 'daily', schedule, timezone: NY}));
    const clock = new ManualClock(from);
    const {runner} = countingRunner();
    const scheduler = new Scheduler([job], {clock, runner});
    t.after(() => scheduler.close(0));
    const fired: string[] = [];
    scheduler.on('run:started', (run) => void fired.push(iso(run.scheduledAt!)));
    scheduler.start();
    // Hour by hour, so the timer is re-armed many times across the transition.
    for (let now = Date.parse(from); now < Date.parse(to); now += 3_600_000) await clock.advanceTo(now + 3_600_000);
    assert.deepEqual(fired, expected);
  });
}

test('loading a job whose schedule falls in a daylight-saving gap warns and names the replacement time', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = await loadJob(writeJob(dir, '127.0.0.1:1', {schedule: '30 2 * * *', timezone: NY}));
  const warning = job.warnings.find((w) => w.path === 'schedule');
  assert.ok(warning, 'a warning for the schedule');
  assert.match(
    warning.message,
    /fires at 02:30 on \d{4}-03-\d\d, a time that does not exist in America\/New_York \(clocks jump from 02:00 to 03:00\); that run happens at \d{4}-03-\d\d 03:00:00 EDT instead/,
  );
  const hourly = await loadJob(writeJob(dir, '127.0.0.1:1', {schedule: '*/15 * * * *', timezone: NY}, 'hourly.json'));
  assert.equal(hourly.warnings.length, 0, 'an every-hour schedule loses nothing in a gap');
});
