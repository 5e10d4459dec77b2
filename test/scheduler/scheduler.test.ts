import assert from 'node:assert/strict';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {loadJob, type LoadedJob} from '../../src/config/load.js';
import {runJob, type RunOptions} from '../../src/engine/run.js';
import type {RunSummary} from '../../src/engine/stats.js';
import {ManualClock} from '../../src/scheduler/clock.js';
import {Scheduler} from '../../src/scheduler/scheduler.js';
import type {SchedulerEvents, SchedulerOptions} from '../../src/scheduler/types.js';
import {StateStore} from '../../src/state/store.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

/** A run the test ends by hand: the scheduler's runner, injected (no gRPC involved). */
interface HeldRun {
  readonly job: string;
  readonly runId: string;
  readonly options: RunOptions;
  finish(status?: RunSummary['status']): void;
}

function heldRunner() {
  const runs: HeldRun[] = [];
  const runner = (job: LoadedJob, options: RunOptions) =>
    new Promise<RunSummary>((resolve) => {
      const summary = (status: RunSummary['status'], stopReason?: string): RunSummary => ({
        job: job.spec.name,
        runId: options.runId!,
        status,
        total: 1,
        ok: status === 'succeeded' ? 1 : 0,
        failed: status === 'succeeded' ? 0 : 1,
        invalid: 0,
        byStatus: status === 'succeeded' ? {OK: 1} : {CANCELLED: 1},
        errors: {},
        attempts: 1,
        retried: 0,
        retriesThrottled: 0,
        unfinished: 0,
        outages: {pauses: 0, pausedMs: 0},
        durationMs: 1,
        callsPerSec: 1,
        latencyMs: {p50: 1, p90: 1, p99: 1, max: 1},
        lastLine: 1,
        output: '/dev/null',
        ...(stopReason ? {stopReason} : {}),
      });
      options.cancelSignal?.addEventListener('abort', () => resolve(summary('cancelled', String(options.cancelSignal!.reason))));
      runs.push({job: job.spec.name, runId: options.runId!, options, finish: (status = 'succeeded') => resolve(summary(status))});
    });
  return {runs, runner};
}

async function scheduledJob(t: TestContext, schedule: Record<string, unknown>, name = 'nightly', dir = tempDir(t)): Promise<LoadedJob> {
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  return loadJob(
    writeJob(
      dir,
      '127.0.0.1:1',
      {name, timezone: 'UTC', output: 'out/{name}-{runId}.jsonl', failures: 'out/{name}-{runId}.failed.jsonl', ...schedule},
      `${name}.json`,
    ),
  );
}

function collect<E extends keyof SchedulerEvents>(scheduler: Scheduler, event: E): SchedulerEvents[E][] {
  const seen: SchedulerEvents[E][] = [];
  scheduler.on(event, (payload) => void seen.push(payload));
  return seen;
}

function newScheduler(t: TestContext, jobs: LoadedJob[], options: SchedulerOptions): Scheduler {
  const scheduler = new Scheduler(jobs, options);
  t.after(() => scheduler.close(0));
  return scheduler;
}

const T0 = '2026-01-05T10:00:00.000Z';
const at = (iso: string) => Date.parse(iso);

test('fires a job on its schedule, once per tick, and records each run', async (t) => {
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '*/10 * * * * *'})], {clock, store, runner});
  const started = collect(scheduler, 'run:started');
  scheduler.start();
  assert.equal(scheduler.jobs()[0]!.nextFireAt, at('2026-01-05T10:00:10Z'));
  for (let i = 0; i < 35; i++) {
    await clock.advance(1000);
    for (const run of runs.splice(0)) run.finish();
  }
  assert.deepEqual(
    started.map((s) => s.scheduledAt),
    [at('2026-01-05T10:00:10Z'), at('2026-01-05T10:00:20Z'), at('2026-01-05T10:00:30Z')],
  );
  assert.ok(started.every((s) => s.trigger === 'schedule'));
  await scheduler.close(0);
  const recorded = store.listRuns();
  assert.deepEqual(
    recorded.map((r) => r.status),
    ['succeeded', 'succeeded', 'succeeded'],
  );
  assert.deepEqual(
    recorded.map((r) => r.scheduledAt),
    [at('2026-01-05T10:00:30Z'), at('2026-01-05T10:00:20Z'), at('2026-01-05T10:00:10Z')],
  );
  assert.equal(store.getLastTick('nightly'), at('2026-01-05T10:00:30Z'));
});

test("keepRuns keeps each job's newest runs in the store and deletes older finished ones", async (t) => {
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '*/10 * * * * *'})], {clock, store, runner, keepRuns: 2});
  scheduler.start();
  for (let i = 0; i < 50; i++) {
    await clock.advance(1000);
    for (const run of runs.splice(0)) run.finish();
  }
  await scheduler.close(0);
  assert.deepEqual(
    store.listRuns().map((r) => r.scheduledAt),
    [at('2026-01-05T10:00:50Z'), at('2026-01-05T10:00:40Z')],
  );
  assert.throws(() => newScheduler(t, [], {keepRuns: -1}), /Expected `keepRuns` to be an integer from 0 and up, got `-1`/);
});

test('overlap skip records a skipped run while the previous run is still going', async (t) => {
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '* * * * *', overlap: 'skip'})], {clock, store, runner});
  const skipped = collect(scheduler, 'run:skipped');
  scheduler.start();
  await clock.advance(60_000);
  assert.equal(runs.length, 1);
  await clock.advance(60_000);
  await clock.advance(60_000);
  assert.equal(runs.length, 1, 'no second run while the first is going');
  assert.equal(skipped.length, 2);
  assert.match(skipped[0]!.reason, /still running \(overlap: skip\)/);
  runs[0]!.finish();
  await clock.advance(60_000);
  assert.equal(runs.length, 2, 'the next tick after it ended runs');
  runs[1]!.finish();
  await clock.advance(0);
  assert.deepEqual(
    store.listRuns().map((r) => r.status),
    ['succeeded', 'skipped', 'skipped', 'succeeded'],
  );
});

test('overlap queue keeps at most one pending run and starts it when the running one ends', async (t) => {
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '* * * * *', overlap: 'queue'})], {clock, store, runner});
  const queued = collect(scheduler, 'run:queued');
  const skipped = collect(scheduler, 'run:skipped');
  scheduler.start();
  await clock.advance(60_000); // run 1 starts
  await clock.advance(60_000); // tick 2 queued
  await clock.advance(60_000); // tick 3: queue full, skipped
  assert.equal(runs.length, 1);
  assert.deepEqual(
    queued.map((q) => q.scheduledAt),
    [at('2026-01-05T10:02:00Z')],
  );
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!.reason, /already queued/);
  runs[0]!.finish();
  await clock.advance(0);
  assert.equal(runs.length, 2, 'the queued run starts as soon as the first ends');
  assert.equal(scheduler.jobs()[0]!.queued, false);
  runs[1]!.finish();
  await clock.advance(0);
  const recorded = store.listRuns().reverse();
  assert.deepEqual(
    recorded.map((r) => [r.status, r.scheduledAt]),
    [
      ['succeeded', at('2026-01-05T10:01:00Z')],
      ['skipped', at('2026-01-05T10:03:00Z')],
      ['succeeded', at('2026-01-05T10:02:00Z')],
    ],
  );
});

test('overlap allow runs the new run alongside the one still going', async (t) => {
  const clock = new ManualClock(T0);
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(
    t,
    [await scheduledJob(t, {schedule: '* * * * *', overlap: 'allow', output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'})],
    {clock, runner},
  );
  scheduler.start();
  await clock.advance(120_000);
  assert.equal(runs.length, 2);
  assert.equal(scheduler.jobs()[0]!.running, 2);
  for (const run of runs) run.finish();
  await clock.advance(0);
  assert.equal(scheduler.runningCount, 0);
});

test('overlap replace cancels the running run, its calls in flight included, and starts anew', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 4}, (_, i) => ({id: `slow${i}`, latencyMs: 4000})),
  );
  const job = await loadJob(
    writeJob(dir, server.address, {
      name: 'replaced',
      schedule: '* * * * *',
      timezone: 'UTC',
      overlap: 'replace',
      output: 'out/{runId}.jsonl',
      failures: 'out/{runId}.failed.jsonl',
    }),
  );
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  const scheduler = newScheduler(t, [job], {clock, store, runner: runJob});
  const started = collect(scheduler, 'run:started');
  const finished = collect(scheduler, 'run:finished');
  scheduler.start();
  await clock.advance(60_000);
  await until(() => server.stats.inFlight === 4);
  await clock.advance(60_000); // the next tick replaces the first run
  await until(() => finished.length === 1 && server.stats.calls === 8);
  assert.equal(started.length, 2);
  assert.equal(finished[0]!.runId, started[0]!.runId);
  assert.equal(finished[0]!.status, 'cancelled');
  assert.match(finished[0]!.reason!, /replaced by a newer schedule run/);
  assert.deepEqual(finished[0]!.summary!.byStatus, {}, 'cut calls are not final');
  assert.equal(finished[0]!.summary!.unfinished, 4);
  assert.equal(server.stats.byStatus['CANCELLED'], 4, "the server saw the first run's calls cancelled");
  assert.equal(store.getRun(started[0]!.runId)!.status, 'cancelled');
  assert.ok(
    store.listRunning().some((r) => r.runId === started[1]!.runId),
    'the new run is stored running',
  );
  await scheduler.close(0);
  assert.equal(store.getRun(started[1]!.runId)!.status, 'interrupted', 'cut short by the shutdown: resumed at the next start');
});

test('a manual trigger starts a run and respects the overlap policy', async (t) => {
  const clock = new ManualClock(T0);
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '0 0 1 1 *', overlap: 'skip'})], {clock, runner});
  scheduler.start();
  const first = scheduler.trigger('nightly');
  assert.equal(first.outcome, 'started');
  await clock.advance(0);
  assert.equal(runs[0]!.runId, (first as {runId: string}).runId);
  const second = scheduler.trigger('nightly');
  assert.equal(second.outcome, 'skipped');
  assert.equal(scheduler.trigger('nope').outcome, 'unknown-job');
  runs[0]!.finish();
});

test('a disabled job never fires on its schedule but can still be run by hand', async (t) => {
  const clock = new ManualClock(T0);
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '* * * * * *', enabled: false})], {clock, runner});
  scheduler.start();
  await clock.advance(10_000);
  assert.equal(runs.length, 0);
  assert.equal(scheduler.jobs()[0]!.nextFireAt, undefined);
  assert.equal(scheduler.trigger('nightly').outcome, 'started');
  await clock.advance(0);
  runs[0]!.finish();
});

test('jitter delays a fired run by a random amount below the jitter', async (t) => {
  const clock = new ManualClock(T0);
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '* * * * *', jitter: '10s'})], {clock, runner, random: () => 0.5});
  scheduler.start();
  await clock.advanceTo('2026-01-05T10:01:04.999Z');
  assert.equal(runs.length, 0);
  await clock.advanceTo('2026-01-05T10:01:05Z');
  assert.equal(runs.length, 1);
  runs[0]!.finish();
});

test('catch-up runs a tick missed within the window exactly once after a restart', async (t) => {
  const dir = tempDir(t);
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  const job = await scheduledJob(t, {schedule: '0 * * * *', catchUp: '1h'}, 'hourly', dir);
  const {runs, runner} = heldRunner();
  const clock = new ManualClock(T0);
  const first = new Scheduler([job], {clock, store, runner});
  first.start();
  await clock.advanceTo('2026-01-05T11:00:00Z');
  runs.splice(0).forEach((r) => r.finish());
  await first.close(0);
  assert.equal(store.getLastTick('hourly'), at('2026-01-05T11:00:00Z'));

  // Down from 11:00 to 13:30: the 12:00 tick is outside the hour, the 13:00 one inside.
  const later = new ManualClock('2026-01-05T13:30:00Z');
  const second = newScheduler(t, [job], {clock: later, store, runner});
  const started = collect(second, 'run:started');
  const missed = collect(second, 'tick:missed');
  second.start();
  await later.advance(0);
  assert.deepEqual(
    started.map((s) => [s.trigger, s.scheduledAt]),
    [['catch-up', at('2026-01-05T13:00:00Z')]],
  );
  assert.deepEqual(
    missed.map((m) => [m.firstAt, m.count]),
    [[at('2026-01-05T12:00:00Z'), 1]],
  );
  runs.splice(0).forEach((r) => r.finish());
  await second.close(0);

  // Restarted again at once: nothing left to catch up.
  const third = newScheduler(t, [job], {clock: new ManualClock('2026-01-05T13:31:00Z'), store, runner});
  const again = collect(third, 'run:started');
  third.start();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(again.length, 0);
  assert.deepEqual(
    store.listRuns({job: 'hourly'}).map((r) => r.trigger),
    ['catch-up', 'schedule'],
  );
});

test('catch-up does not run a tick missed outside the window, nor at all with catchUp 0', async (t) => {
  for (const catchUp of ['20m', 0]) {
    const dir = tempDir(t);
    const store = StateStore.open(path.join(dir, 'state.db'));
    t.after(() => store.close());
    store.setLastTick('hourly', at('2026-01-05T11:00:00Z'));
    const job = await scheduledJob(t, {schedule: '0 * * * *', catchUp}, 'hourly', dir);
    const {runs, runner} = heldRunner();
    const clock = new ManualClock('2026-01-05T13:30:00Z');
    const scheduler = newScheduler(t, [job], {clock, store, runner});
    const missed = collect(scheduler, 'tick:missed');
    scheduler.start();
    await clock.advance(0);
    assert.equal(runs.length, 0, `catchUp ${catchUp}`);
    assert.equal(missed[0]!.count, 2);
    assert.equal(store.getLastTick('hourly'), at('2026-01-05T13:30:00Z'));
    assert.equal(scheduler.jobs()[0]!.nextFireAt, at('2026-01-05T14:00:00Z'));
  }
});

test('close lets a running run finish within the grace period and fires nothing more', async (t) => {
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '* * * * * *'})], {clock, store, runner});
  scheduler.start();
  await clock.advance(1000);
  let closed = false;
  const closing = scheduler.close(5000).then(() => (closed = true));
  assert.equal(scheduler.close(1), scheduler.close(5000), 'close is idempotent');
  await clock.advance(3000);
  assert.equal(closed, false);
  assert.equal(runs.length, 1, 'no tick fires while closing');
  runs[0]!.finish();
  await closing;
  assert.equal(runs[0]!.options.cancelSignal!.aborted, false);
  assert.deepEqual(
    store.listRuns().map((r) => r.status),
    ['succeeded'],
  );
});

test('close cancels runs still going after the grace period and records them interrupted (resumed at the next start)', async (t) => {
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const {runs, runner} = heldRunner();
  const scheduler = newScheduler(t, [await scheduledJob(t, {schedule: '* * * * * *'})], {clock, store, runner});
  scheduler.start();
  await clock.advance(1000);
  const closing = scheduler.close(5000);
  await clock.advance(5000);
  await closing;
  assert.equal(runs[0]!.options.cancelSignal!.aborted, true);
  const [run] = store.listRuns();
  assert.equal(run!.status, 'interrupted');
  assert.match(run!.reason!, /grace period/);
});

test('reload drops removed jobs, adds new ones and keeps the running run going', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock(T0);
  const {runs, runner} = heldRunner();
  const a = await scheduledJob(t, {schedule: '* * * * *'}, 'a', dir);
  const b = await scheduledJob(t, {schedule: '*/2 * * * *'}, 'b', dir);
  const scheduler = newScheduler(t, [a], {clock, runner});
  const reloaded = collect(scheduler, 'jobs:reloaded');
  scheduler.start();
  await clock.advance(60_000);
  assert.equal(runs.length, 1);
  scheduler.reload([b]);
  assert.deepEqual(reloaded[0], {added: ['b'], removed: ['a'], kept: []});
  assert.equal(runs[0]!.options.signal!.aborted, false, 'the running run of a removed job goes on');
  await clock.advance(60_000);
  assert.deepEqual(
    runs.map((r) => r.job),
    ['a', 'b'],
  );
  runs.forEach((r) => r.finish());
});

test('a daemon run stopped by maxFailures is recorded failed with the reason', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 50}, (_, i) => ({id: `r${i}`, failCode: 13})),
  );
  const job = await loadJob(
    writeJob(dir, server.address, {
      name: 'strict',
      schedule: '* * * * *',
      timezone: 'UTC',
      concurrency: 1,
      maxFailures: 2,
      output: 'out/{runId}.jsonl',
      failures: 'out/{runId}.failed.jsonl',
    }),
  );
  const clock = new ManualClock(T0);
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  const scheduler = newScheduler(t, [job], {clock, store, runner: runJob});
  const finished = collect(scheduler, 'run:finished');
  scheduler.start();
  await clock.advance(60_000);
  await until(() => finished.length === 1);
  const run = store.getRun(finished[0]!.runId)!;
  assert.equal(run.status, 'failed');
  assert.match(run.reason!, /maxFailures: 3 failed records, more than the job allows \(2\)/);
  assert.ok(server.stats.calls < 50);
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
