import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli, spawnCli, waitFor} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {dumpPrefix, REDIS_URL, redisPrefix, startWorkers, stderrOf, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

test('${VAR} in metadata is expanded on the worker from its own environment, beside per-record {{field}} entries; Redis never holds the value', async (t) => {
  const server = await startServer(t);
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 50}, (_, i) => JSON.stringify({id: `r${i}`})).join('\n'));
  // A fixed entry with a secret beside a templated one: the records' own metadata travels without the secret.
  const jobFile = writeJob(dir, server.address, {concurrency: 4, metadata: {'x-demo-echo': '${DEMO_TOKEN}', 'x-request-id': 'req-{{id}}'}});
  const coordinator = spawnCli(
    [
      'run',
      jobFile,
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '10',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, env: {DEMO_TOKEN: 'coordinator-secret'}, timeoutMs: 60_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  // No worker yet: the run and its chunks wait in Redis, as they would for a worker to come.
  let dump = '';
  for (let i = 0; i < 300 && !dump.includes('requests'); i++) {
    dump = await dumpPrefix(redis, prefix);
    if (!dump.includes('requests')) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.match(dump, /requests/, 'the chunks are in Redis');
  assert.ok(dump.includes('${DEMO_TOKEN}'), 'the run ships the metadata as written');
  assert.ok(!dump.includes('coordinator-secret'), 'the expanded value is not in Redis');
  const workers = startWorkers(t, 1, {prefix, env: {DEMO_TOKEN: 'worker-secret'}});
  await workersReady(workers);
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const lines = readJsonlFile(path.join(dir, 'out/results.jsonl')) as {response: {echoedMetadata: string}}[];
  assert.equal(lines.length, 50);
  assert.ok(
    lines.every((l) => l.response.echoedMetadata === 'worker-secret'),
    'the worker sent its own value',
  );
  assert.match(
    String(server.stats.lastMetadata?.['x-request-id']),
    /^req-r\d+$/,
    'the templated entry, filled per record by the coordinator',
  );
  assert.ok(!(await dumpPrefix(redis, prefix)).includes('secret'));
});

test('a worker: /healthz and /metrics with --http, a chunk:done log line per chunk, and SIGTERM lets its chunks finish', async (t) => {
  const server = await startServer(t, {latencyMs: 20});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 200}, (_, i) => JSON.stringify({id: `r${i}`})).join('\n'));
  const worker = spawnCli(['worker', '--redis', REDIS_URL, '--prefix', prefix, '--http', '127.0.0.1:0', '--lock-duration', '2s'], {
    env: {GRPC_BATCH_LOG: 'info'},
    timeoutMs: 60_000,
  });
  t.after(() => worker.child.kill('SIGKILL'));
  const log = stderrOf(worker);
  await workersReady([worker]);
  const address = /"address":"([^"]+)"/.exec(log())![1]!;
  assert.equal((await fetch(`http://${address}/healthz`)).status, 200);
  const coordinator = spawnCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 8}),
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '100',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 60_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 20, 30_000, 'calls at the server');
  worker.child.kill('SIGTERM');
  // Stopping: it takes no new chunk, and says so; each of its chunks has about 1.5 s of calls left.
  await waitFor(() => log().includes('worker:stopping'), 10_000, 'worker:stopping');
  assert.equal((await fetch(`http://${address}/healthz`)).status, 503);
  // The chunks it holds finish (the run needs no other worker), then it exits 0.
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).ok, 200);
  assert.equal(server.stats.calls, 200, 'nothing was sent twice');
  const exited = await worker.done;
  assert.equal(exited.code, 0, exited.stderr);
  const done = log()
    .split('\n')
    .filter((l) => l.includes('"event":"chunk:done"'))
    .map((l) => JSON.parse(l) as {records: number; ok: number; chunk: number; run: string; job: string});
  assert.equal(done.length, 2);
  assert.ok(done.every((d) => d.records === 100 && d.ok === 100 && d.job === 'test' && d.run));
});

test('metrics of a worker count its chunks and records', async (t) => {
  const server = await startServer(t);
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 30}, (_, i) => JSON.stringify({id: `r${i}`, ...(i < 3 ? {failCode: 5} : {})})).join('\n'),
  );
  const worker = spawnCli(['worker', '--redis', REDIS_URL, '--prefix', prefix, '--http', '127.0.0.1:0'], {
    env: {GRPC_BATCH_LOG: 'info'},
    timeoutMs: 60_000,
  });
  t.after(() => worker.child.kill('SIGKILL'));
  const log = stderrOf(worker);
  await workersReady([worker]);
  const address = /"address":"([^"]+)"/.exec(log())![1]!;
  // GRPC_BATCH_REDIS and GRPC_BATCH_PREFIX instead of --redis and --prefix.
  const result = await runCli(
    ['run', writeJob(dir, server.address), '--chunk-size', '10', '--json', '--no-progress', '--state', path.join(dir, 'state.db')],
    {cwd: dir, timeoutMs: 60_000, env: {GRPC_BATCH_REDIS: REDIS_URL, GRPC_BATCH_PREFIX: prefix}},
  );
  assert.equal(result.code, 1, result.stderr);
  assert.equal(JSON.parse(result.stdout).failed, 3);
  const metrics = await (await fetch(`http://${address}/metrics`)).text();
  assert.match(metrics, /grpc_batch_worker_chunks_total\{outcome="done"\} 3/);
  assert.match(metrics, /grpc_batch_worker_records_total\{outcome="ok"\} 27/);
  assert.match(metrics, /grpc_batch_worker_records_total\{outcome="failed"\} 3/);
  assert.equal(readJsonlFile(path.join(dir, 'out/failed.jsonl')).length, 3, 'the failed records, as input, in the failures file');
});

test('--redis is checked before anything is sent: not a URL, or no Redis there, is exit 2 with what to fix', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), '{"id":"a"}\n');
  const jobFile = writeJob(dir, server.address);
  const bad = await runCli(['run', jobFile, '--redis', 'localhost:6379', '--no-progress'], {cwd: dir});
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--redis: expected a URL like redis:\/\/127\.0\.0\.1:6379, got "localhost:6379"/);
  const nothing = await runCli(['run', jobFile, '--redis', 'redis://:hunter2@127.0.0.1:1', '--no-progress'], {cwd: dir});
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
  assert.doesNotMatch(nothing.stderr, /hunter2/, 'the password is not printed');
  const worker = await runCli(['worker', '--prefix', 'a:b'], {env: {GRPC_BATCH_REDIS: REDIS_URL}});
  assert.equal(worker.code, 2);
  assert.match(worker.stderr, /--prefix: expected letters, digits/);
  assert.equal(server.stats.calls, 0);
});

test('a worker whose environment lacks a ${VAR} of the run fails its chunks with the key named; the run stops, exit 3', async (t) => {
  const server = await startServer(t);
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 10}, (_, i) => JSON.stringify({id: `r${i}`})).join('\n'));
  const workers = startWorkers(t, 1, {prefix});
  await workersReady(workers);
  const result = await runCli(
    [
      'run',
      writeJob(dir, server.address, {metadata: {'x-demo-echo': '${DEMO_TOKEN}'}}),
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, env: {DEMO_TOKEN: 'here'}, timeoutMs: 60_000},
  );
  assert.equal(result.code, 3, result.stderr);
  assert.match(
    result.stderr,
    /chunk 1 of run .* failed on the workers: .*metadata\.x-demo-echo: environment variable DEMO_TOKEN is not set/,
  );
  assert.equal(server.stats.calls, 0);
});

test("SIGTERM past --grace hands a worker's chunks back to the queue: another worker runs them, every record once in the results", async (t) => {
  const server = await startServer(t, {latencyMs: 50});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 80}, (_, i) => JSON.stringify({id: `r${i}`})).join('\n'));
  const first = spawnCli(['worker', '--redis', REDIS_URL, '--prefix', prefix, '--grace', '200ms', '--lock-duration', '2s'], {
    env: {GRPC_BATCH_LOG: 'info'},
    timeoutMs: 60_000,
  });
  t.after(() => first.child.kill('SIGKILL'));
  const log = stderrOf(first);
  await workersReady([first]);
  // 8 chunks of 10 records, one call at a time each: about half a second per chunk.
  const coordinator = spawnCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 8}),
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '10',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 60_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 8, 30_000, 'calls at the server');
  first.child.kill('SIGTERM');
  assert.equal((await first.done).code, 0);
  assert.match(log(), /"event":"chunk:handed-back"/);
  const second = startWorkers(t, 1, {prefix});
  await workersReady(second);
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).ok, 80);
  const lines = readJsonlFile(path.join(dir, 'out/results.jsonl')) as {line: number}[];
  assert.equal(new Set(lines.map((l) => l.line)).size, 80);
  assert.equal(lines.length, 80);
  assert.ok(server.stats.calls > 80, 'the calls the first worker made of the handed-back chunks were made again');
});

test('maxFailures holds run-wide across workers: the run stops once passed, past it by at most the chunks in the queue', async (t) => {
  const server = await startServer(t);
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 2000;
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i}`, failCode: 13})).join('\n'),
  );
  const workers = startWorkers(t, 2, {prefix});
  await workersReady(workers);
  const result = await runCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 8, maxFailures: 10}),
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '20',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 60_000},
  );
  assert.equal(result.code, 1, result.stderr);
  const summary = JSON.parse(result.stdout) as {status: string; abortReason: string; failed: number; total: number};
  assert.equal(summary.status, 'failed');
  assert.match(summary.abortReason, /maxFailures/);
  assert.ok(summary.failed > 10 && summary.failed <= 10 + 8 * 20, `${summary.failed} failed`);
  assert.ok(server.stats.calls <= 10 + 8 * 20 + 20, `${server.stats.calls} calls`);
  assert.equal(readJsonlFile(path.join(dir, 'out/results.jsonl')).length, summary.failed);
  assert.equal(readJsonlFile(path.join(dir, 'out/failed.jsonl')).length, summary.failed);
});
