import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {autoWorkers, cpuQuotaCores} from '../../src/util/cores.js';
import {splitInteger} from '../../src/engine/executor-threads.js';
import {spawnCli, runCli, waitFor} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

type Line = {line: number; status: string; attempts: number; code?: number; error?: string; response?: {id: string}};

/** A mixed input: OK records, failing ones, records retried to OK, invalid lines (not JSON, a bad field, not UTF-8). */
function writeMixedInput(file: string, records: number): {invalid: number} {
  const lines: Buffer[] = [];
  let invalid = 0;
  for (let i = 1; i <= records; i++) {
    if (i % 97 === 0 || i % 89 === 0 || i % 83 === 0) invalid++;
    if (i % 97 === 0) lines.push(Buffer.from(`{"id": "r${i}", "count": "many"}`));
    else if (i % 89 === 0) lines.push(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    else if (i % 83 === 0) lines.push(Buffer.from('not json'));
    else if (i % 31 === 0) lines.push(Buffer.from(JSON.stringify({id: `r${i}`, failCode: 3})));
    else if (i % 29 === 0) lines.push(Buffer.from(JSON.stringify({id: `r${i}`, failFirstAttempts: 1})));
    else lines.push(Buffer.from(JSON.stringify({id: `r${i}`})));
  }
  writeFileSync(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
  return {invalid};
}

const sortedLines = (file: string) => readFileSync(file).toString('latin1').split('\n').filter(Boolean).sort();

test('splitInteger and autoWorkers: shares add up to the totals; auto is one worker per core per 100 in flight', () => {
  assert.deepEqual(splitInteger(10, 3), [4, 3, 3]);
  assert.equal(
    splitInteger(1001, 4).reduce((a, b) => a + b),
    1001,
  );
  assert.deepEqual(
    [autoWorkers(100, 8), autoWorkers(199, 8), autoWorkers(200, 8), autoWorkers(5000, 2), autoWorkers(50, 2)],
    [1, 1, 2, 2, 1],
  );
});

test('one thread and 2 worker threads give the same counts, the same results and the same failures file', async (t) => {
  const runs = [];
  for (const workers of [1, 2]) {
    const server = await startServer(t);
    const dir = tempDir(t);
    const {invalid} = writeMixedInput(path.join(dir, 'input.jsonl'), 3000);
    const summary = await runJob(
      await loadJob(writeJob(dir, server.address, {concurrency: 40, workers, retry: {maxAttempts: 2, initialBackoff: '1ms'}})),
    );
    assert.equal(summary.invalid, invalid);
    runs.push({workers, dir, server, summary});
  }
  const [one, two] = runs;
  const counts = (s: typeof one.summary) => ({
    status: s.status,
    total: s.total,
    ok: s.ok,
    failed: s.failed,
    invalid: s.invalid,
    byStatus: s.byStatus,
    attempts: s.attempts,
    retried: s.retried,
    unfinished: s.unfinished,
  });
  assert.deepEqual(counts(two!.summary), counts(one!.summary));
  const strip = (dir: string) =>
    (readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).map((r) => JSON.stringify({...r, latencyMs: undefined})).sort();
  assert.deepEqual(strip(two!.dir), strip(one!.dir));
  const keyed = readJsonlFile(path.join(two!.dir, 'out/results.jsonl')) as (Line & {key?: {line: number}})[];
  assert.ok(
    keyed.every((r) => r.key?.line === r.line),
    "a worker thread's result lines carry their key",
  );
  assert.deepEqual(
    sortedLines(path.join(two!.dir, 'out/failed.jsonl')),
    sortedLines(path.join(one!.dir, 'out/failed.jsonl')),
    'failures byte for byte',
  );
  assert.equal(two!.server.stats.calls, one!.server.stats.calls);
  assert.ok(two!.server.stats.maxInFlight <= 40, `max in flight at the server: ${two!.server.stats.maxInFlight}`);
  assert.ok(two!.summary.latencyMs.p50 > 0, 'latencies come back from the threads');
});

test('on 2 worker threads the server never sees more than concurrency in flight, and rps holds run-wide', async (t) => {
  const server = await startServer(t, {latencyMs: 20});
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 2000}, (_, i) => JSON.stringify({id: `r${i}`})).join('\n'));
  const shown: number[] = [];
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {concurrency: 30, workers: 2})), {
    progressIntervalMs: 20,
    onProgress: (p) => void shown.push(p.inFlight),
  });
  assert.equal(summary.ok, 2000);
  assert.equal(server.stats.maxInFlight, 30, 'the shares add up to the cap, and reach it');
  assert.ok(
    shown.length > 5 && Math.max(...shown) <= 30 && Math.max(...shown) > 0,
    `progress showed in flight ${Math.max(...shown)}: never more than concurrency (batches queued to a worker are not in flight)`,
  );

  const paced = await startServer(t);
  writeFileSync(path.join(dir, 'small.jsonl'), Array.from({length: 60}, (_, i) => JSON.stringify({id: `p${i}`})).join('\n'));
  const started = performance.now();
  const limited = await runJob(
    await loadJob(
      writeJob(dir, paced.address, {
        concurrency: 30,
        workers: 2,
        rps: 100,
        input: 'small.jsonl',
        output: 'out/limited.jsonl',
        failures: 'out/limited.failed.jsonl',
      }),
    ),
  );
  assert.equal(limited.ok, 60);
  // 60 calls at 100/s in all (50/s per worker, a burst of 5 each): no less than (60 - 10) / 100 s.
  assert.ok(performance.now() - started >= 490, `60 calls at rps 100 over 2 workers took ${Math.round(performance.now() - started)}ms`);
});

test('maxFailures holds run-wide on worker threads', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 2000}, (_, i) => JSON.stringify({id: `r${i}`, failCode: 13})).join('\n'),
  );
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {concurrency: 10, workers: 2, maxFailures: 10})));
  assert.equal(summary.status, 'failed');
  assert.match(summary.abortReason!, /maxFailures/);
  assert.ok(summary.total < 300, `read ${summary.total}`);
  assert.equal(readJsonlFile(path.join(dir, 'out/results.jsonl')).length, summary.total - summary.unfinished);
});

test('kill -9 mid-run on 2 worker threads, then --resume: every record once, at most concurrency sent twice', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const records = 20_000;
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i}`, latencyMs: 2})).join('\n'),
  );
  const concurrency = 40;
  const jobFile = writeJob(dir, server.address, {concurrency, workers: 2});
  const state = path.join(dir, 'state.db');
  const cli = spawnCli(['run', jobFile, '--state', state, '--no-progress'], {cwd: dir});
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 5000, 60_000, '5000 calls at the server');
  cli.child.kill('SIGKILL');
  await cli.done;
  const resumed = await runCli(['run', jobFile, '--state', state, '--resume', '--json', '--no-progress'], {cwd: dir, timeoutMs: 60_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).map((r) => r.line);
  assert.equal(lines.length, records, 'one result line per record');
  assert.equal(new Set(lines).size, records);
  const twice = server.stats.calls - records;
  assert.ok(twice >= 0 && twice <= concurrency, `${twice} records sent twice (bound: ${concurrency})`);
});

test("auto counts a container's CPU quota (cgroup v2 cpu.max, v1 cfs quota) as its cores", () => {
  const files = (entries: Record<string, string>) => (file: string) => {
    if (!(file in entries)) throw Object.assign(new Error(`ENOENT: ${file}`), {code: 'ENOENT'});
    return entries[file]!;
  };
  assert.equal(cpuQuotaCores(files({'/sys/fs/cgroup/cpu.max': '150000 100000\n'})), 2, 'limits.cpu: 1.5 -> 2 cores');
  assert.equal(cpuQuotaCores(files({'/sys/fs/cgroup/cpu.max': '50000 100000\n'})), 1);
  assert.equal(cpuQuotaCores(files({'/sys/fs/cgroup/cpu.max': 'max 100000\n'})), undefined, 'no quota');
  assert.equal(
    cpuQuotaCores(files({'/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n'})),
    4,
    'cgroup v1',
  );
  assert.equal(
    cpuQuotaCores(files({'/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n'})),
    undefined,
    'v1 without a quota',
  );
  assert.equal(cpuQuotaCores(files({})), undefined, 'no cgroup files');
  assert.equal(autoWorkers(1000, 2), 2);
});

test('workers defaults to auto: threads from 200 in flight, the main thread alone at 100 or under adaptive', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), '{"id":"a"}\n');
  const workers = async (extra: Record<string, unknown>) => (await loadJob(writeJob(dir, '127.0.0.1:1', extra))).spec.workers;
  const expected = autoWorkers(200);
  assert.equal(await workers({concurrency: 200}), expected, 'no workers key: auto');
  assert.equal(await workers({concurrency: 200, workers: 'auto'}), expected);
  assert.equal(await workers({concurrency: 100}), 1);
  assert.equal(await workers({concurrency: 400, adaptive: true}), 1, 'adaptive: one limit, on one thread');
  assert.equal(await workers({concurrency: 400, adaptive: true, workers: 2}), 2, 'unless workers says otherwise');
  assert.equal(await workers({concurrency: 400, workers: 1}), 1);
});

test('workers is validated: a number from 1 to 256 or auto', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), '{"id":"a"}\n');
  const bad = await runCli(['validate', writeJob(dir, '127.0.0.1:1', {workers: 'many'})], {cwd: dir});
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /workers: expected an integer from 1 to 256 or "auto", got "many"/);
  const flag = await runCli(['run', writeJob(dir, '127.0.0.1:1'), '--workers', '0'], {cwd: dir});
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /--workers.*expected an integer from 1 to 256 or "auto"/);
});

test('SIGINT on worker threads: no new calls, the calls in flight finish, exit 130, every result written', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 5000}, (_, i) => JSON.stringify({id: `r${i}`, latencyMs: 30})).join('\n'),
  );
  const cli = spawnCli(['run', writeJob(dir, server.address, {concurrency: 20, workers: 2}), '--json', '--no-progress'], {cwd: dir});
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 100, 30_000, '100 calls at the server');
  cli.child.kill('SIGINT');
  const {code, stdout} = await cli.done;
  assert.equal(code, 130);
  const summary = JSON.parse(stdout) as {status: string; ok: number; total: number; unfinished: number};
  assert.equal(summary.status, 'cancelled');
  assert.equal(server.stats.byStatus['CANCELLED'] ?? 0, 0, 'the calls in flight were let finish');
  assert.equal(summary.ok, server.stats.calls);
  assert.equal(readJsonlFile(path.join(dir, 'out/results.jsonl')).length, summary.ok);
  assert.ok(summary.total < 5000);
});

test('an outage on worker threads pauses every worker: the server stopped 2 s, every record OK', async (t) => {
  const {startDemoServer} = await import('../../src/demo/server.js');
  const first = await startServer(t);
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 6000}, (_, i) => JSON.stringify({id: `r${i}`, latencyMs: 1})).join('\n'),
  );
  const loaded = await loadJob(writeJob(dir, first.address, {concurrency: 40, workers: 2}));
  let seen = 0;
  let restarted: Promise<unknown> | undefined;
  const job = {
    ...loaded,
    spec: {
      ...loaded.spec,
      onResult: () => {
        if (++seen !== 1500) return;
        restarted = first
          .stop(0)
          .then(() => new Promise((resolve) => setTimeout(resolve, 2000)))
          .then(() => startDemoServer({address: `127.0.0.1:${first.port}`}))
          .then((second) => t.after(() => second.stop(200)));
      },
    },
  };
  const summary = await runJob(job);
  await restarted;
  assert.equal(summary.ok, 6000, JSON.stringify(summary.byStatus));
  assert.ok(summary.outages.pauses >= 1);
  assert.equal(new Set((readJsonlFile(summary.output) as Line[]).map((r) => r.line)).size, 6000);
});
