import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob, type RunOptions} from '../../src/engine/run.js';
import type {RunSummary} from '../../src/engine/stats.js';
import {createLogger} from '../../src/util/log.js';
import {ManualClock} from '../../src/scheduler/clock.js';
import {Scheduler} from '../../src/scheduler/scheduler.js';
import {StateStore} from '../../src/state/store.js';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';
import {event, startDaemon} from '../helpers/daemon.js';
import {readJsonlFile, tempDir} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

const RECORDS = 3_000;
const CONCURRENCY = 20;
const KILL_AT = 700;

interface ModuleOptions {
  readonly target: string;
  /** resultFields of the job; none: the module has no key. */
  readonly resultFields?: readonly string[];
  readonly records?: number;
  readonly latencyMs?: number;
  /** Records whose index is a multiple of this fail with FAILED_PRECONDITION. */
  readonly failEvery?: number;
  /** Daemon keys (schedule, enabled...). */
  readonly extra?: Record<string, unknown>;
}

/**
 * A job module whose requests() yields `m0..m{n-1}` in the order `order.txt` beside it says
 * (`forward` or `reversed`), read when requests() is called: a query without ORDER BY, whose order
 * the test flips between the first run and the resume.
 */
function writeModule(dir: string, options: ModuleOptions): string {
  const job = {
    name: 'mod',
    target: options.target,
    proto: DEMO_PROTO,
    method: DEMO_METHOD,
    concurrency: CONCURRENCY,
    output: 'out/{name}-{runId}.jsonl',
    failures: 'out/{name}-{runId}.failed.jsonl',
    ...(options.resultFields ? {resultFields: options.resultFields} : {}),
    ...options.extra,
  };
  const file = path.join(dir, 'job.mjs');
  writeFileSync(
    file,
    `import {readFileSync} from 'node:fs';
const job = ${JSON.stringify(job)};
export default {
  ...job,
  *requests() {
    const order = readFileSync(new URL('./order.txt', import.meta.url), 'utf8').trim();
    const indexes = Array.from({length: ${options.records ?? RECORDS}}, (_, i) => i);
    if (order === 'reversed') indexes.reverse();
    for (const i of indexes) yield {id: 'm' + i, latencyMs: ${options.latencyMs ?? 20}${options.failEvery ? `, ...(i % ${options.failEvery} === 0 ? {failCode: 9} : {})` : ''}};
  },
};
`,
  );
  return file;
}

function setOrder(dir: string, order: 'forward' | 'reversed'): void {
  writeFileSync(path.join(dir, 'order.txt'), order);
}

function countIds(ids: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** The ids with a result line in a results file. */
function idsWithResults(file: string): string[] {
  return (readJsonlFile(file) as {key: {id?: string}}[]).map((r) => r.key.id!);
}

/**
 * What a resume must have done: every record that had no result after the kill sent once by the
 * resume, none that had one sent again, one result line per record, and over both attempts every
 * record reached the server, at most the calls in flight at the kill twice.
 */
function assertResumedByKey(allIds: readonly string[], idsAtKill: number, finishedBeforeResume: ReadonlySet<string>, output: string): void {
  const resumeSent = countIds(allIds.slice(idsAtKill));
  for (const id of finishedBeforeResume) assert.equal(resumeSent.get(id), undefined, `${id} had a result and was sent again`);
  for (let i = 0; i < RECORDS; i++) {
    const id = `m${i}`;
    if (!finishedBeforeResume.has(id)) assert.equal(resumeSent.get(id), 1, `${id} had no result: the resume must send it once`);
  }
  const overall = countIds(allIds);
  assert.equal(overall.size, RECORDS, 'every record reached the server');
  const twice = [...overall.values()].filter((n) => n > 1).length;
  assert.ok(twice <= CONCURRENCY, `${twice} records were sent twice; at most the ${CONCURRENCY} in flight at the kill may be`);
  const resultIds = idsWithResults(output);
  assert.equal(resultIds.length, RECORDS, 'one result line per record');
  assert.equal(new Set(resultIds).size, RECORDS);
}

/** Starts `grpc-batch run` of the module, waits for KILL_AT calls at the server, kills it with -9. */
async function runAndKill(t: TestContext, job: string, state: string, server: {stats: {calls: number}}): Promise<void> {
  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state], {cwd: path.dirname(job), timeoutMs: 120_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= KILL_AT, 60_000, `${KILL_AT} calls at the server`);
  first.child.kill('SIGKILL');
  assert.equal((await first.done).signal, 'SIGKILL');
  assert.ok(server.stats.calls < RECORDS, 'killed before the end');
}

test('a job module resumed after kill -9 with requests() in another order sends each record it had not finished exactly once', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const job = writeModule(dir, {target: server.address, resultFields: ['id']});
  const state = path.join(dir, 'state.db');
  setOrder(dir, 'forward');
  await runAndKill(t, job, state, server);
  const idsAtKill = server.stats.ids.length;
  const [runId] = (JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {runId: string}[]).map(
    (r) => r.runId,
  );
  const output = path.join(dir, 'out', `mod-${runId!}.jsonl`);
  const finished = new Set(idsWithResults(output));
  assert.ok(finished.size > 0, 'the first attempt finished records');

  setOrder(dir, 'reversed'); // the query now yields the rows the other way round
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {
    status: string;
    total: number;
    ok: number;
    failed: number;
    invalid: number;
    output: string;
  };
  assert.deepEqual([summary.status, summary.total, summary.ok, summary.failed, summary.invalid], ['succeeded', RECORDS, RECORDS, 0, 0]);
  assert.equal(summary.output, output);
  assertResumedByKey(server.stats.ids, idsAtKill, finished, output);
});

test('--resume of a job module run without resultFields is refused (exit 2) with why and how to fix; nothing is sent', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const job = writeModule(dir, {target: server.address});
  const state = path.join(dir, 'state.db');
  setOrder(dir, 'forward');
  await runAndKill(t, job, state, server);
  const calls = server.stats.calls;
  setOrder(dir, 'reversed');
  const resumed = await runCli(['run', job, '--no-progress', '--state', state, '--resume'], {cwd: dir, timeoutMs: 60_000});
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.match(resumed.stderr, /job module .*requests\(\).* no key to tell them apart/);
  assert.match(resumed.stderr, /Add resultFields naming a field unique to each record/);
  assert.equal(server.stats.calls, calls, 'nothing was sent');
  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {status: string}[];
  // A refused --resume changes nothing: the run is recorded as kill -9 left it, and a resume with resultFields can still take it.
  assert.deepEqual(
    history.map((r) => r.status),
    ['running'],
    'a refused --resume changed the recorded run',
  );
});

test('the daemon killed with -9 resumes a job module run by key at its next start, with requests() in another order', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const daemonJob = {schedule: '* * * * * *', timezone: 'UTC'};
  const job = writeModule(dir, {target: server.address, resultFields: ['id'], extra: daemonJob});
  const state = path.join(dir, 'state.db');
  setOrder(dir, 'forward');
  const first = startDaemon(t, [job, '--state', state], dir);
  const started = await first.waitFor(event('run:started', 'mod'), 60_000);
  await waitFor(() => server.stats.calls >= KILL_AT, 60_000, `${KILL_AT} calls at the server`);
  first.signal('SIGKILL');
  await first.exited;
  const idsAtKill = server.stats.ids.length;
  const output = path.join(dir, 'out', `mod-${started.runId!}.jsonl`);
  const finished = new Set(idsWithResults(output));

  // No new runs from now on: only the resume may send anything.
  writeModule(dir, {target: server.address, resultFields: ['id'], extra: {...daemonJob, enabled: false}});
  setOrder(dir, 'reversed');
  const second = startDaemon(t, [job, '--state', state], dir);
  const resuming = await second.waitFor(event('run:resuming', 'mod'), 60_000);
  assert.equal(resuming.runId, started.runId);
  const ended = await second.waitFor((l) => event('run:finished', 'mod')(l) && l.runId === started.runId, 120_000);
  assert.equal(ended['status'], 'succeeded');
  second.signal('SIGTERM');
  await second.exited;
  const run = (
    JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {
      runId: string;
      status: string;
      total: number;
      ok: number;
    }[]
  ).find((r) => r.runId === started.runId)!;
  assert.deepEqual([run.status, run.total, run.ok], ['succeeded', RECORDS, RECORDS]);
  assertResumedByKey(server.stats.ids, idsAtKill, finished, output);
});

test('the daemon does not resume a job module run without resultFields: it logs why and the run stays interrupted', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const daemonJob = {schedule: '* * * * * *', timezone: 'UTC'};
  const job = writeModule(dir, {target: server.address, extra: daemonJob});
  const state = path.join(dir, 'state.db');
  setOrder(dir, 'forward');
  const first = startDaemon(t, [job, '--state', state], dir);
  const started = await first.waitFor(event('run:started', 'mod'), 60_000);
  await waitFor(() => server.stats.calls >= KILL_AT, 60_000, `${KILL_AT} calls at the server`);
  first.signal('SIGKILL');
  await first.exited;
  const calls = server.stats.calls;

  writeModule(dir, {target: server.address, extra: {...daemonJob, enabled: false}});
  setOrder(dir, 'reversed');
  const second = startDaemon(t, [job, '--state', state], dir);
  const abandoned = await second.waitFor((l) => event('run:abandoned', 'mod')(l) && l.runId === started.runId, 60_000);
  assert.match(String(abandoned['msg']), /not resumed; it stays recorded interrupted: .*no key to tell them apart.*Add resultFields/);
  await second.waitFor(event('scheduler:started'), 60_000);
  second.signal('SIGTERM');
  await second.exited;
  assert.equal(second.lines.some(event('run:resuming', 'mod')), false, 'not resumed');
  assert.equal(server.stats.calls, calls, 'nothing was sent');
  const run = (
    JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as {runId: string; status: string}[]
  ).find((r) => r.runId === started.runId)!;
  assert.equal(run.status, 'interrupted', 'recorded interrupted: not resumed, not lost');
});

test('the next step a job module run prints re-sends only its failed records: the module reads --input FILE instead of requests()', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const job = writeModule(dir, {target: server.address, resultFields: ['id'], records: 100, latencyMs: 0, failEvery: 10});
  setOrder(dir, 'forward');
  const first = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 60_000});
  assert.equal(first.code, 1, first.stderr);
  const summary = JSON.parse(first.stdout) as {ok: number; failed: number; next: string[]};
  assert.deepEqual([summary.ok, summary.failed], [90, 10]);
  assert.equal(server.stats.calls, 100);
  const [next] = summary.next;
  assert.match(next!, /^grpc-batch run \S*job\.mjs .*--input \S+\.failed\.jsonl$/);

  const words = next!.split(' ').slice(1); // as printed: no word needs quoting in the test's folder
  const rerun = await runCli([...words, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 60_000});
  const again = JSON.parse(rerun.stdout) as {total: number; failed: number; output: string};
  assert.deepEqual([again.total, again.failed], [10, 10], rerun.stderr);
  const resent = countIds(server.stats.ids.slice(100));
  assert.deepEqual(
    [...resent.keys()].sort(),
    Array.from({length: 10}, (_, i) => `m${i * 10}`).sort(),
    'only the failed records were sent again',
  );
  assert.ok(
    [...resent.values()].every((n) => n === 1),
    'each once',
  );
  const keys = (readJsonlFile(again.output) as {key: {line: number; id: string}}[]).map((r) => [r.key.id, r.key.line]);
  assert.ok(
    keys.every(([id, line]) => id === `m${Number(line) - 1}`),
    "each result keeps its record's key and line in requests()",
  );
});

test("a job module's records with a repeated or missing key are invalid and never sent, with why", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const file = path.join(dir, 'dups.mjs');
  writeFileSync(
    file,
    `export default ${JSON.stringify({
      name: 'dups',
      target: server.address,
      proto: DEMO_PROTO,
      method: DEMO_METHOD,
      output: 'out/r.jsonl',
      failures: 'out/f.jsonl',
      resultFields: ['id'],
    }).replace(
      /}$/,
      ', *requests() { yield {id: "a"}; yield {id: "b"}; yield {id: "a", count: 2}; yield {count: 3}; yield {id: null, count: 4}; }}',
    )};`,
  );
  const summary = await runJob(await loadJob(file));
  assert.deepEqual([summary.total, summary.ok, summary.invalid], [5, 2, 3]);
  assert.deepEqual(server.stats.ids.sort(), ['a', 'b'], 'the repeated and the keyless records were not sent');
  const results = readJsonlFile(path.join(dir, 'out', 'r.jsonl')) as {line: number; status: string; error?: string}[];
  const byLine = new Map(results.map((r) => [r.line, r]));
  assert.match(byLine.get(3)!.error!, /^same key as record 1 \(id: "a"\): resultFields must name fields unique to each record/);
  assert.match(byLine.get(4)!.error!, /^no "id" in the request: resultFields \[id\] identify a job module's records/);
  assert.match(byLine.get(5)!.error!, /^no "id" in the request/);
  assert.equal(readFileSync(path.join(dir, 'out', 'f.jsonl'), 'utf8'), '{"id":"a","count":2}\n{"count":3}\n{"id":null,"count":4}\n');
});

test("resuming a job module run under resultFields its sent records' keys lack (added or renamed since) is refused; nothing is sent", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const write = (fields: string[]) => {
    const file = path.join(dir, `renamed-${fields.join('-')}.mjs`); // a module is imported once per path
    writeFileSync(
      file,
      `export default ${JSON.stringify({
        name: 'renamed',
        target: server.address,
        proto: DEMO_PROTO,
        method: DEMO_METHOD,
        output: 'out/r.jsonl',
        failures: 'out/f.jsonl',
        resultFields: fields,
      }).replace(/}$/, ', *requests() { for (let i = 0; i < 5; i++) yield {id: "r" + i, count: i + 1}; }}')};`,
    );
    return file;
  };
  const first = await runJob(await loadJob(write(['id'])), {runId: 'r1'});
  assert.equal(first.ok, 5);
  await assert.rejects(
    runJob(await loadJob(write(['count'])), {runId: 'r1', resume: true}),
    /run r1: 5 records sent by an earlier attempt have no count in their key .*resultFields changed since the run started/,
  );
  assert.equal(server.stats.calls, 5, 'nothing sent again');
  const resumed = await runJob(await loadJob(write(['count', 'id'])), {runId: 'r1', resume: true}).catch((error: Error) => error);
  assert.match(String(resumed), /have no count in their key/, 'a field added beside the old one is refused too');
  const same = await runJob(await loadJob(write(['id'])), {runId: 'r1', resume: true});
  assert.deepEqual([same.total, same.ok], [5, 5], 'under the same key the run resumes, with nothing left to send');
  assert.equal(server.stats.calls, 5);
});

test('a job module run without resultFields that stops early prints no --resume it would refuse, but how to make the next run resumable', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  setOrder(dir, 'forward');
  const args = (job: string) => ['run', job, '--json', '--no-progress', '--max-failures', '0', '--state', path.join(dir, 'state.db')];
  const keyless = await runCli(args(writeModule(dir, {target: server.address, records: 100, latencyMs: 0, failEvery: 10})), {
    cwd: dir,
    timeoutMs: 60_000,
  });
  assert.equal(keyless.code, 1, keyless.stderr);
  const next = (JSON.parse(keyless.stdout) as {next: string[]; abortReason?: string}).next;
  assert.equal(next.length, 1);
  assert.doesNotMatch(next[0]!, /--resume/);
  assert.match(keyless.stderr + next[0], /job\.mjs/);
  const text = await runCli(
    args(writeModule(dir, {target: server.address, records: 100, latencyMs: 0, failEvery: 10})).filter((a) => a !== '--json'),
    {cwd: dir, timeoutMs: 60_000},
  );
  assert.match(
    text.stdout + text.stderr,
    /cannot be resumed \(its records come from the job module's requests\(\), and the job has no resultFields to tell them apart\): .*add resultFields naming a field unique to each record/,
  );

  const keyed = await runCli(
    args(writeModule(dir, {target: server.address, resultFields: ['id'], records: 100, latencyMs: 0, failEvery: 10})),
    {cwd: dir, timeoutMs: 60_000},
  );
  assert.match((JSON.parse(keyed.stdout) as {next: string[]}).next[0]!, /--resume \S+ --max-failures \d+$/);
});

test('a job module run without resultFields that ends interrupted while the daemon runs is not planned for resuming: run:abandoned says why', async (t) => {
  const dir = tempDir(t);
  const store = StateStore.open(path.join(dir, 'state.db'));
  t.after(() => store.close());
  const file = path.join(dir, 'every-10s.mjs');
  writeFileSync(
    file,
    `export default ${JSON.stringify({
      name: 'every-10s',
      target: '127.0.0.1:1',
      proto: DEMO_PROTO,
      method: DEMO_METHOD,
      schedule: '*/10 * * * * *',
      timezone: 'UTC',
      output: 'out/{runId}.jsonl',
      failures: 'out/{runId}.failed.jsonl',
    }).replace(/}$/, ', *requests() { yield {id: "a"}; }}')};`,
  );
  const loaded = await loadJob(file);
  const clock = new ManualClock('2026-01-05T10:00:00.000Z');
  const started: {runId: string; resume: boolean | undefined}[] = [];
  let interrupt = true;
  // The backend gone past maxOutage: the first run ends interrupted (no gRPC here: the run's end is the point).
  const runner = (job: typeof loaded, options: RunOptions): Promise<RunSummary> => {
    started.push({runId: options.runId!, resume: options.resume});
    const status = interrupt ? ('interrupted' as const) : ('succeeded' as const);
    interrupt = false;
    return Promise.resolve({
      job: job.spec.name,
      runId: options.runId!,
      status,
      total: 0,
      ok: 0,
      failed: 0,
      invalid: 0,
      unfinished: 0,
      outages: {pauses: 0, pausedMs: 0},
      byStatus: {},
      errors: {},
      attempts: 0,
      retried: 0,
      retriesThrottled: 0,
      durationMs: 1,
      callsPerSec: 0,
      latencyMs: {p50: 0, p90: 0, p99: 0, max: 0},
      lastLine: 0,
      output: '/dev/null',
    });
  };
  const logged: {event?: string; runId?: string; msg?: string}[] = [];
  const logger = createLogger({level: 'info', write: (line) => void logged.push(JSON.parse(line) as {event?: string})});
  const scheduler = new Scheduler([loaded], {clock, store, runner, logger});
  t.after(() => scheduler.close(0));
  scheduler.start();
  await clock.advance(10_000);
  await clock.advance(0);
  const first = started[0]!.runId;
  assert.equal(store.getRun(first)!.status, 'interrupted');
  assert.equal(
    logged.some((l) => l.event === 'run:resume-planned'),
    false,
    'no resume is planned',
  );
  const abandoned = logged.find((l) => l.event === 'run:abandoned' && l.runId === first);
  assert.match(String(abandoned?.msg), /stays recorded interrupted: .*no key to tell them apart.*Add resultFields/);
  await clock.advance(10_000); // the next tick: its own run, no resume
  assert.deepEqual(
    started.map((r) => r.resume ?? false),
    [false, false],
  );
  assert.equal(store.getRun(first)!.status, 'interrupted', 'not resumed, not lost');
  await scheduler.close(0);
});
