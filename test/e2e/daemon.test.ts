import assert from 'node:assert/strict';
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli} from '../helpers/cli.js';
import {event, httpAddress, startDaemon, writeDaemonJob} from '../helpers/daemon.js';
import {tempDir, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

test('a bad cron expression, time zone or policy is a load error naming file, key and what was expected; nothing starts', async (t) => {
  const server = await startServer(t);
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      {schedule: '61 * * * *'},
      /bad\.json: schedule: expected a cron expression like "\*\/15 \* \* \* \*" \(5 fields, or 6 with seconds first\), got "61 \* \* \* \*": minute field "61" is not valid: expected 0-59/,
    ],
    [
      {schedule: '* * *'},
      /bad\.json: schedule: expected a cron expression .*got "\* \* \*": expected a cron expression of 5 or 6 fields but got 3/,
    ],
    [
      {schedule: '0 3 * * *', timezone: 'America/New_Yrok'},
      /bad\.json: timezone: expected an IANA time zone name like America\/New_York, Europe\/Paris or UTC, got "America\/New_Yrok" \(did you mean "America\/New_York"\?\)/,
    ],
    [{schedule: '0 3 * * *', overlap: 'sometimes'}, /bad\.json: overlap: expected one of skip, queue, replace, allow, got "sometimes"/],
    [{schedule: '0 3 * * *', catchUp: 'soon'}, /bad\.json: catchUp: expected a duration like 500ms, 10s, 1m30s or 1h/],
  ];
  await Promise.all(
    cases.map(async ([extra, expected]) => {
      const dir = tempDir(t);
      writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
      writeDaemonJob(dir, 'good', server.address, {schedule: '* * * * * *'});
      writeDaemonJob(dir, 'bad', server.address, extra);
      const result = await runCli(['daemon', dir, '--state', path.join(dir, 'state.db')], {cwd: dir});
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, expected);
    }),
  );
  assert.equal(server.stats.calls, 0, 'nothing was sent');
});

test('SIGTERM with a run in flight lets its calls finish, records the run and exits 0', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    [1, 2, 3].map((i) => ({id: `r${i}`, latencyMs: 1500})),
  );
  writeDaemonJob(dir, 'every-second', server.address, {schedule: '* * * * * *'});
  const state = path.join(dir, 'state.db');
  const daemon = startDaemon(t, [dir, '--state', state, '--grace', '20s'], dir);
  const started = await daemon.waitFor(event('run:started'));
  await until(() => server.stats.inFlight === 3);
  daemon.signal('SIGTERM');
  assert.deepEqual(await daemon.exited, {code: 0, signal: null});
  assert.equal(server.stats.byStatus['OK'], 3);
  assert.equal(server.stats.byStatus['CANCELLED'], undefined);
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {
    runId: string;
    status: string;
    ok?: number;
  }[];
  const run = history.find((r) => r.runId === started.runId)!;
  assert.equal(run.status, 'succeeded');
  assert.equal(run.ok, 3);
  assert.ok(
    history.every((r) => r.status !== 'running'),
    'every run has its final state',
  );
});

test('SIGTERM cancels the calls still in flight once --grace is over and records the run as interrupted', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    [1, 2].map((i) => ({id: `r${i}`, latencyMs: 4000})),
  );
  writeDaemonJob(dir, 'slow', server.address, {schedule: '* * * * * *'});
  const state = path.join(dir, 'state.db');
  const daemon = startDaemon(t, [dir, '--state', state, '--grace', '200ms'], dir);
  const started = await daemon.waitFor(event('run:started'));
  await until(() => server.stats.inFlight === 2);
  daemon.signal('SIGTERM');
  assert.deepEqual(await daemon.exited, {code: 0, signal: null});
  await until(() => server.stats.byStatus['CANCELLED'] === 2);
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {
    runId: string;
    status: string;
    reason?: string;
  }[];
  const run = history.find((r) => r.runId === started.runId)!;
  assert.equal(run.status, 'interrupted');
  assert.match(run.reason!, /grace period/);
});

test('SIGHUP with a bad job file keeps the old jobs running and logs why; a good one is then loaded', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  writeDaemonJob(dir, 'yearly', server.address, {schedule: '0 0 1 1 *'});
  const daemon = startDaemon(t, [dir, '--state', path.join(dir, 'state.db'), '--http', '127.0.0.1:0'], dir);
  const base = await httpAddress(daemon);
  writeDaemonJob(dir, 'broken', server.address, {schedule: 'every day'});
  daemon.signal('SIGHUP');
  const failed = await daemon.waitFor(event('daemon:reload-failed'));
  assert.match((failed.issues as string[]).join('\n'), /broken\.json: schedule: expected a cron expression/);
  const manual = await fetch(`${base}/jobs/yearly/run`, {method: 'POST'});
  assert.equal(manual.status, 202, 'the old job is still there');
  await daemon.waitFor(event('run:finished', 'yearly'));
  assert.equal((await fetch(`${base}/jobs/broken/run`, {method: 'POST'})).status, 404);

  writeDaemonJob(dir, 'broken', server.address, {schedule: '0 0 1 1 *'});
  daemon.signal('SIGHUP');
  const reloaded = await daemon.waitFor(event('jobs:reloaded'));
  assert.deepEqual(reloaded.added, ['broken']);
  assert.equal((await fetch(`${base}/jobs/broken/run`, {method: 'POST'})).status, 202);
  await daemon.waitFor(event('run:finished', 'broken'));
  daemon.signal('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
  assert.equal(server.stats.calls, 2);
});

test('/metrics shows the counts of a finished run and /healthz answers 200', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}, {id: 'c', failCode: 5}, '{"id": 1']);
  writeDaemonJob(dir, 'hourly', server.address, {schedule: '0 * * * *'});
  const daemon = startDaemon(t, [dir, '--state', path.join(dir, 'state.db'), '--http', '127.0.0.1:0'], dir);
  const base = await httpAddress(daemon);
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const response = await fetch(`${base}/jobs/hourly/run`, {method: 'POST'});
  assert.equal(response.status, 202);
  const body = (await response.json()) as {outcome: string; runId: string};
  assert.equal(body.outcome, 'started');
  await daemon.waitFor(event('run:finished', 'hourly'));
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^grpc_batch_runs_total\{job="hourly",outcome="failed"\} 1$/m);
  assert.match(metrics, /^grpc_batch_calls_total\{job="hourly",code="OK"\} 2$/m);
  assert.match(metrics, /^grpc_batch_calls_total\{job="hourly",code="NOT_FOUND"\} 1$/m);
  assert.match(metrics, /^grpc_batch_calls_total\{job="hourly",code="INVALID"\} 1$/m);
  assert.match(metrics, /^grpc_batch_call_duration_seconds_count\{job="hourly"\} 3$/m);
  assert.match(metrics, /^grpc_batch_calls_in_flight\{job="hourly"\} 0$/m);
  assert.match(metrics, /^grpc_batch_next_fire_timestamp_seconds\{job="hourly"\} \d+$/m);
  assert.equal((await fetch(`${base}/jobs/nope/run`, {method: 'POST'})).status, 404);
  daemon.signal('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
});

test('history survives a restart and lists the runs of the daemon and of grpc-batch run, newest first', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const jobFile = writeDaemonJob(dir, 'report', server.address, {schedule: '* * * * * *'});
  const state = path.join(dir, 'state.db');
  const daemon = startDaemon(t, [jobFile, '--state', state], dir);
  const finished = await daemon.waitFor(event('run:finished', 'report'));
  daemon.signal('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
  const oneOff = await runCli(['run', jobFile, '--state', state, '--json', '--no-progress'], {cwd: dir});
  assert.equal(oneOff.code, 0, oneOff.stderr);
  const runId = (JSON.parse(oneOff.stdout) as {runId: string}).runId;
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {
    runId: string;
    trigger: string;
    status: string;
  }[];
  assert.deepEqual(history[0], {...history[0], runId, trigger: 'manual', status: 'succeeded'});
  assert.ok(history.some((r) => r.runId === finished.runId && r.trigger === 'schedule' && r.status === 'succeeded'));
  const table = await runCli(['history', '--job', 'report', '--limit', '1', '--state', state], {cwd: dir});
  assert.match(table.stdout, new RegExp(`^RUN .*\\n${runId}\\s+report\\s+manual\\s+`));
  assert.equal(table.stdout.trim().split('\n').length, 2);
});

test('--keep-runs keeps only the newest runs of each job in the history; a bad value is a usage error', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const jobFile = writeDaemonJob(dir, 'report', server.address, {schedule: '* * * * * *'});
  const state = path.join(dir, 'state.db');
  const bad = await runCli(['daemon', jobFile, '--state', state, '--keep-runs', '-1'], {cwd: dir});
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--keep-runs.*expected an integer from 0 and up, got "-1"/);
  const daemon = startDaemon(t, [jobFile, '--state', state, '--keep-runs', '2'], dir);
  let finished = 0;
  await daemon.waitFor((line) => line.event === 'run:finished' && ++finished === 4);
  daemon.signal('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {status: string}[];
  assert.deepEqual(
    history.map((r) => r.status),
    ['succeeded', 'succeeded'],
    'at least 4 runs ended; the 2 newest are kept',
  );
  const oneOff = await runCli(['run', jobFile, '--state', state, '--json', '--no-progress'], {cwd: dir});
  assert.equal(oneOff.code, 0, oneOff.stderr);
  const after = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {trigger: string}[];
  assert.deepEqual(
    after.map((r) => r.trigger),
    ['manual', 'schedule', 'schedule'],
    'grpc-batch run --state deletes nothing',
  );
});

test("list shows each job's schedule in words, its next three fire times in its zone, and its last run", async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'jobs'));
  writeJsonl(path.join(dir, 'jobs', 'input.jsonl'), [{id: 'a'}]);
  writeDaemonJob(path.join(dir, 'jobs'), 'nightly', '127.0.0.1:1', {
    schedule: '30 2 * * *',
    timezone: 'America/New_York',
    overlap: 'queue',
  });
  writeDaemonJob(path.join(dir, 'jobs'), 'adhoc', '127.0.0.1:1');
  const result = await runCli(['list', 'jobs', '--state', path.join(dir, 'none.db')], {cwd: dir});
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /^nightly .*\n {2}schedule: 30 2 \* \* \* {2}at 02:30 every day, America\/New_York\n {2}overlap: queue, catch-up: never, jitter: none\n {2}next: (\d{4}-\d\d-\d\d 0[23]:[03]0:00 E[SD]T, ){2}\d{4}-\d\d-\d\d 0[23]:[03]0:00 E[SD]T\n {2}last run: none recorded/m,
  );
  assert.match(result.stdout, /^adhoc .*\n {2}schedule: none/m);
});

test('a second SIGTERM cancels the runs as the end of --grace does: recorded interrupted, resumed at the next start, every record once', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 40;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`})),
  );
  writeDaemonJob(dir, 'slow', server.address, {schedule: '* * * * * *', concurrency: 4});
  server.setLatency(60_000); // the first 4 calls hang until the second SIGTERM cuts them
  const state = path.join(dir, 'state.db');
  const first = startDaemon(t, [dir, '--state', state, '--grace', '10m'], dir);
  const started = await first.waitFor(event('run:started', 'slow'));
  await until(() => server.stats.inFlight === 4);
  first.signal('SIGTERM');
  await first.waitFor(event('scheduler:closing'));
  first.signal('SIGTERM');
  assert.deepEqual(await first.exited, {code: 0, signal: null});
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {
    runId: string;
    status: string;
    reason?: string;
  }[];
  const cut = history.find((r) => r.runId === started.runId)!;
  assert.equal(cut.status, 'interrupted', JSON.stringify(cut));
  assert.match(cut.reason!, /SIGTERM received twice/);
  // The next start resumes it (the job fires no new run): the 4 cut calls are sent again, answered at once now.
  server.setLatency(0);
  writeDaemonJob(dir, 'slow', server.address, {schedule: '* * * * * *', concurrency: 4, enabled: false});
  const second = startDaemon(t, [dir, '--state', state], dir);
  const resuming = await second.waitFor(event('run:resuming', 'slow'));
  assert.equal(resuming.runId, started.runId);
  const finished = await second.waitFor((l) => event('run:finished', 'slow')(l) && l.runId === started.runId, 30_000);
  assert.equal(finished['status'], 'succeeded');
  second.signal('SIGTERM');
  await second.exited;
  const sent = new Map<string, number>();
  for (const id of server.stats.ids) sent.set(id, (sent.get(id) ?? 0) + 1);
  assert.equal(sent.size, RECORDS, 'every record reached the server');
  assert.deepEqual(
    [...sent]
      .filter(([, n]) => n > 1)
      .map(([id]) => id)
      .sort(),
    ['r1', 'r2', 'r3', 'r4'],
    'only the 4 cut calls were sent again',
  );
});

test('a daemon killed with -9 mid-run resumes that run at its next start: every record ends with one result', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 400;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: 10})),
  );
  writeDaemonJob(dir, 'nightly', server.address, {schedule: '* * * * * *', concurrency: 4});
  const state = path.join(dir, 'state.db');
  const first = startDaemon(t, [dir, '--state', state], dir);
  const started = await first.waitFor(event('run:started', 'nightly'));
  await until(() => server.stats.calls >= 60);
  first.signal('SIGKILL');
  await first.exited;
  // No new runs from now on: only the resume may send anything.
  writeDaemonJob(dir, 'nightly', server.address, {schedule: '* * * * * *', concurrency: 4, enabled: false});
  const second = startDaemon(t, [dir, '--state', state], dir);
  const resuming = await second.waitFor(event('run:resuming', 'nightly'));
  assert.equal(resuming.runId, started.runId);
  const finished = await second.waitFor((l) => event('run:finished', 'nightly')(l) && l.runId === started.runId, 30_000);
  assert.equal(finished['status'], 'succeeded');
  second.signal('SIGTERM');
  await second.exited;
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {
    runId: string;
    status: string;
    total?: number;
    ok?: number;
    output?: string;
  }[];
  const run = history.find((r) => r.runId === started.runId)!;
  assert.deepEqual([run.status, run.total, run.ok], ['succeeded', RECORDS, RECORDS]);
  const lines = readFileSync(run.output!, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as {line: number}).line);
  assert.equal(lines.length, RECORDS);
  assert.equal(new Set(lines).size, RECORDS);
  const sent = new Map<string, number>();
  for (const id of server.stats.ids) sent.set(id, (sent.get(id) ?? 0) + 1);
  assert.equal(sent.size, RECORDS);
  assert.ok([...sent.values()].filter((n) => n > 1).length <= 4, 'at most the calls in flight were sent twice');
});

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('the daemon logs one run:started and one run:finished per run, whatever the component', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
  writeDaemonJob(dir, 'tick', server.address, {schedule: '* * * * * *'});
  const daemon = startDaemon(t, [dir, '--state', path.join(dir, 'state.db')], dir);
  const finished = () => daemon.lines.filter((l) => l.event === 'run:finished');
  await until(() => finished().length >= 2, 30_000);
  daemon.signal('SIGTERM');
  await daemon.exited;
  const runs = new Set(daemon.lines.filter((l) => l.event === 'run:started').map((l) => l.runId));
  assert.ok(runs.size >= 2);
  for (const runId of runs) {
    for (const name of ['run:started', 'run:finished']) {
      const lines = daemon.lines.filter((l) => l.event === name && l.runId === runId);
      assert.equal(lines.length, 1, `${name} of ${runId}: ${JSON.stringify(lines)}`);
    }
  }
});

test("the daemon refuses to start when a job's files could not be written, or would be overwritten run after run", async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  writeFileSync(path.join(dir, 'blocker'), 'a file where a folder should be');
  writeDaemonJob(dir, 'blocked', '127.0.0.1:1', {output: 'blocker/{runId}.jsonl'});
  writeDaemonJob(dir, 'fixed', '127.0.0.1:1', {output: 'out/fixed.jsonl'});
  const result = await runCli(['daemon', dir, '--state', path.join(dir, 'state.db')], {cwd: dir});
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /blocked\.json: output: cannot create \S+blocker\/RUNID\.jsonl: \S+blocker is a file, not a folder/);
  assert.match(
    result.stderr,
    /fixed\.json: output: the daemon runs a job again and again, and a run never overwrites another's files: put \{runId\} in the path \(fixed-\{runId\}\.jsonl\)/,
  );
});
