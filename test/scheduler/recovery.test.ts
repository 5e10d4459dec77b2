import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob, type LoadedJob} from '../../src/config/load.js';
import type {RunOptions} from '../../src/engine/run.js';
import type {RunSummary} from '../../src/engine/stats.js';
import {createLogger} from '../../src/util/log.js';
import {ManualClock} from '../../src/scheduler/clock.js';
import {interruptedRunsToResume} from '../../src/scheduler/resume-interrupted.js';
import {Scheduler} from '../../src/scheduler/scheduler.js';
import type {SchedulerEvents} from '../../src/scheduler/types.js';
import {resumeInfoFor} from '../../src/state/resumable.js';
import {StateStore} from '../../src/state/store.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';

/** Runs the test ends by hand (no gRPC). */
function heldRunner() {
  const runs: {runId: string; options: RunOptions; finish(): void}[] = [];
  const runner = (job: LoadedJob, options: RunOptions) =>
    new Promise<RunSummary>((resolve) => {
      runs.push({
        runId: options.runId!,
        options,
        finish: () =>
          resolve({
            job: job.spec.name,
            runId: options.runId!,
            status: 'succeeded',
            total: 1,
            ok: 1,
            failed: 0,
            invalid: 0,
            unfinished: 0,
            outages: {pauses: 0, pausedMs: 0},
            byStatus: {OK: 1},
            errors: {},
            attempts: 1,
            retried: 0,
            retriesThrottled: 0,
            durationMs: 1,
            callsPerSec: 1,
            latencyMs: {p50: 1, p90: 1, p99: 1, max: 1},
            lastLine: 1,
            output: '/dev/null',
          }),
      });
      options.cancelSignal?.addEventListener('abort', () => runs.find((r) => r.runId === options.runId)?.finish());
    });
  return {runs, runner};
}

async function job(dir: string, extra: Record<string, unknown>): Promise<LoadedJob> {
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  return loadJob(
    writeJob(
      dir,
      '127.0.0.1:1',
      {name: 'nightly', timezone: 'UTC', output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl', ...extra},
      'nightly.json',
    ),
  );
}

test('a wall clock stepped back is detected, logged, and every schedule planned again from the new time', async (t) => {
  const clock = new ManualClock('2026-01-05T10:00:00.000Z');
  const {runs, runner} = heldRunner();
  const scheduler = new Scheduler([await job(tempDir(t), {schedule: '*/10 * * * * *'})], {clock, runner});
  t.after(() => scheduler.close(0));
  const steps: SchedulerEvents['clock:stepped-back'][] = [];
  const started: SchedulerEvents['run:started'][] = [];
  scheduler.on('clock:stepped-back', (e) => void steps.push(e));
  scheduler.on('run:started', (e) => void started.push(e));
  scheduler.start();
  await clock.advance(10_000);
  assert.equal(started.length, 1);
  for (const run of runs.splice(0)) run.finish();
  clock.stepWall(-60_000); // NTP steps the clock back a minute: 10:00:10 is now 09:59:10
  await clock.advance(10_000); // the timer armed for 10:00:20 fires after 10 s of real time, at 09:59:20
  assert.equal(steps.length, 1, 'the step is reported');
  assert.ok(Math.abs(steps[0]!.byMs - 60_000) < 1000, `stepped ${steps[0]!.byMs} ms`);
  assert.equal(scheduler.jobs()[0]!.nextFireAt, Date.parse('2026-01-05T09:59:30Z'), 'planned from the new time, not a minute away');
  await clock.advance(10_000);
  assert.equal(started.length, 2, 'the job kept firing: no minute skipped');
  assert.equal(started[1]!.scheduledAt, Date.parse('2026-01-05T09:59:30Z'));
  for (const run of runs.splice(0)) run.finish();
});

test('at start-up every interrupted run of a job is resumed, oldest first, one after the other', async (t) => {
  const dir = tempDir(t);
  const loaded = await job(dir, {schedule: '0 0 1 1 *'});
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  for (const [runId, at] of [
    ['new', 2000],
    ['old', 1000],
  ] as const) {
    store.startRun({runId, job: 'nightly', trigger: 'schedule', startedAt: at, resume: resumeInfoFor(loaded, runId)});
    store.finishRun(runId, {status: 'interrupted', endedAt: at + 1});
  }
  const clock = new ManualClock('2026-01-05T10:00:00.000Z');
  const {runs, runner} = heldRunner();
  const scheduler = new Scheduler([loaded], {clock, store, runner});
  t.after(() => scheduler.close(0));
  scheduler.start();
  await clock.advance(0);
  assert.deepEqual(
    runs.map((r) => [r.runId, r.options.resume]),
    [['old', true]],
    'the oldest first, alone',
  );
  runs[0]!.finish();
  await clock.advance(0);
  assert.deepEqual(
    runs.map((r) => r.runId),
    ['old', 'new'],
    'then the next one',
  );
  runs[1]!.finish();
  await clock.advance(0);
  assert.deepEqual(
    ['old', 'new'].map((id) => store.getRun(id)!.status),
    ['succeeded', 'succeeded'],
  );
});

test('overlap allow with a fixed results path: the second run finds the files locked and is skipped, naming the file', async (t) => {
  const clock = new ManualClock('2026-01-05T10:00:00.000Z');
  const {runs, runner} = heldRunner();
  const scheduler = new Scheduler(
    [await job(tempDir(t), {schedule: '* * * * *', overlap: 'allow', output: 'out/fixed.jsonl', failures: 'out/fixed.failed.jsonl'})],
    {clock, runner},
  );
  t.after(() => scheduler.close(0));
  const skipped: SchedulerEvents['run:skipped'][] = [];
  scheduler.on('run:skipped', (e) => void skipped.push(e));
  scheduler.start();
  await clock.advance(120_000);
  assert.equal(runs.length, 1, 'one run writes the files');
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!.reason, /out\/fixed\.jsonl is being written by another run/);
  for (const run of runs.splice(0)) run.finish();
  await clock.advance(60_000);
  assert.equal(runs.length, 1, 'once the first ended, the next run gets the files');
  for (const run of runs.splice(0)) run.finish();
});

test("a run that ends interrupted while the daemon runs (backend gone past maxOutage) is resumed at the next tick, before that tick's run", async (t) => {
  const dir = tempDir(t);
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  for (const overlap of ['skip', 'queue'] as const) {
    const loaded = await job(dir, {name: `every-10s-${overlap}`, schedule: '*/10 * * * * *', overlap});
    const clock = new ManualClock('2026-01-05T10:00:00.000Z');
    const {runs, runner} = heldRunner();
    const outcomes: string[] = [];
    const interrupting = (job: LoadedJob, options: RunOptions) =>
      runner(job, options).then((summary) =>
        outcomes.shift() === 'interrupted'
          ? {...summary, status: 'interrupted' as const, stopReason: 'the backend was unreachable for 5m (maxOutage)'}
          : summary,
      );
    const logged: {event?: string; runId?: string}[] = [];
    const logger = createLogger({level: 'info', write: (line) => void logged.push(JSON.parse(line) as {event?: string})});
    const scheduler = new Scheduler([loaded], {clock, store, runner: interrupting, logger});
    t.after(() => scheduler.close(0));
    scheduler.start();
    await clock.advance(10_000);
    assert.equal(runs.length, 1, overlap);
    const first = runs[0]!.runId;
    outcomes.push('interrupted');
    runs[0]!.finish();
    await clock.advance(0);
    assert.equal(store.getRun(first)!.status, 'interrupted');
    assert.ok(
      logged.some((l) => l.event === 'run:resume-planned' && l.runId === first),
      'run:resume-planned is logged',
    );
    assert.equal(runs.length, 1, 'not resumed at once: the backend was just found gone');
    await clock.advance(10_000); // the next tick
    assert.deepEqual(
      runs.slice(1).map((r) => [r.runId, r.options.resume]),
      [[first, true]],
      `${overlap}: the next tick resumes the interrupted run first, under its id`,
    );
    const latest = store.listRuns({job: loaded.spec.name}).find((r) => r.runId !== first);
    if (overlap === 'skip') assert.equal(latest?.status, 'skipped', "the tick's own run meets the resumed one as overlap: skip says");
    runs[1]!.finish();
    await clock.advance(0);
    assert.equal(store.getRun(first)!.status, 'succeeded');
    if (overlap === 'queue') assert.equal(runs.length, 3, "overlap: queue: the tick's own run starts after the resumed one");
    else assert.equal(runs.length, 2);
    assert.ok(runs[2] === undefined || runs[2].options.resume !== true);
    for (const run of runs.slice(2)) run.finish();
    await clock.advance(10_000);
    assert.equal(runs.filter((r) => r.runId === first).length, 2, 'resumed once, not again');
    for (const run of runs) run.finish();
    await scheduler.close(0);
  }
});

test('overlap: replace: the next tick starts a new run and leaves the interrupted one for the next start', async (t) => {
  const dir = tempDir(t);
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  const loaded = await job(dir, {schedule: '*/10 * * * * *', overlap: 'replace'});
  const clock = new ManualClock('2026-01-05T10:00:00.000Z');
  const {runs, runner} = heldRunner();
  let interrupt = true;
  const interrupting = (job: LoadedJob, options: RunOptions) =>
    runner(job, options).then((summary) =>
      interrupt
        ? ((interrupt = false), {...summary, status: 'interrupted' as const, stopReason: 'the backend was unreachable for 5m (maxOutage)'})
        : summary,
    );
  const logged: {event?: string}[] = [];
  const logger = createLogger({level: 'info', write: (line) => void logged.push(JSON.parse(line) as {event?: string})});
  const scheduler = new Scheduler([loaded], {clock, store, runner: interrupting, logger});
  t.after(() => scheduler.close(0));
  scheduler.start();
  await clock.advance(10_000);
  const first = runs[0]!.runId;
  runs[0]!.finish();
  await clock.advance(0);
  await clock.advance(10_000);
  assert.equal(runs.length, 2);
  assert.notEqual(runs[1]!.runId, first, 'a new run, not the resume');
  assert.notEqual(runs[1]!.options.resume, true);
  assert.ok(
    logged.some((l) => l.event === 'run:abandoned'),
    'the choice is logged',
  );
  runs[1]!.finish();
  await clock.advance(0);
  assert.equal(store.getRun(first)!.status, 'interrupted', 'left for the next start to resume');
  assert.deepEqual(
    interruptedRunsToResume(store, loaded).map((r) => r.runId),
    [first],
    'which the next start resumes',
  );
});

test('the daemon does not resume an interrupted run whose job now sends differently or whose results file is gone: run:abandoned, with why', async (t) => {
  const dir = tempDir(t);
  const loaded = await job(dir, {schedule: '0 0 1 1 *'});
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  for (const [runId, at] of [
    ['kept', 1000],
    ['lost', 2000],
  ] as const) {
    store.startRun({runId, job: 'nightly', trigger: 'schedule', startedAt: at, resume: resumeInfoFor(loaded, runId)});
    store.finishRun(runId, {status: 'interrupted', endedAt: at + 1});
  }
  // 'lost' wrote 3 results, in a file now gone.
  store.saveCheckpoint('lost', {results: 3});
  const abandoned: string[] = [];
  const log = {warn: (_: unknown, message: string) => abandoned.push(message)} as unknown as Parameters<typeof interruptedRunsToResume>[2];
  assert.deepEqual(
    interruptedRunsToResume(store, loaded, log).map((r) => r.runId),
    ['kept'],
  );
  assert.match(
    abandoned[0]!,
    /run lost was interrupted but is not resumed: run lost's results file \S+ is gone, but the state database recorded 3 results in it/,
  );
  const changed = await job(dir, {schedule: '0 0 1 1 *', method: 'demo.v1.DemoService/ProcessBatch'});
  assert.deepEqual(
    interruptedRunsToResume(store, changed, log).map((r) => r.runId),
    [],
  );
  assert.match(
    abandoned[1]!,
    /run kept was interrupted but is not resumed: method changed since run kept started: demo\.v1\.DemoService\/Process -> demo\.v1\.DemoService\/ProcessBatch/,
  );
});
