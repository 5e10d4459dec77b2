import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli, spawnCli, waitFor} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {privateRedis, REDIS_URL, redisPrefix, startWorkers, stderrOf, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

type Line = {line: number; status: string};

function writeInput(file: string, records: number): void {
  writeFileSync(file, Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`})).join('\n') + '\n');
}

function assertEveryRecordOnce(dir: string, records: number): void {
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).map((l) => l.line);
  assert.equal(lines.length, records, 'one result line per record');
  assert.equal(new Set(lines).size, records, 'no record twice in the results');
  assert.ok(lines.every((l) => l >= 1 && l <= records));
}

test('one of 3 workers killed with kill -9 mid-run: the run completes, no record skipped, repeats at most the chunks it held', async (t) => {
  const server = await startServer(t, {latencyMs: 2});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 6000;
  const chunkSize = 250;
  const chunks = 2;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 3, {prefix, chunks, lockDuration: '1s'});
  const logs = workers.map(stderrOf);
  await workersReady(workers);
  const coordinator = spawnCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 24}),
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      String(chunkSize),
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  // Killed while it holds chunks: after it finished one, and before the run is half done.
  await waitFor(() => logs[0]!().includes('chunk:done') && server.stats.calls >= 1000, 60_000, 'the first worker to finish a chunk');
  workers[0]!.child.kill('SIGKILL');
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).ok, records);
  assertEveryRecordOnce(dir, records);
  const repeated = server.stats.calls - records;
  assert.ok(
    repeated >= 0 && repeated <= chunks * chunkSize,
    `${repeated} calls repeated (bound: the ${chunks} chunks of ${chunkSize} it could hold)`,
  );
});

test('the coordinator killed with kill -9 mid-run, then run --resume: completes, no record skipped', async (t) => {
  const server = await startServer(t, {latencyMs: 2});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 6000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, chunks: 4});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 24});
  const args = ['--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', '250', '--no-progress', '--state', path.join(dir, 'state.db')];
  const first = spawnCli(['run', jobFile, ...args], {cwd: dir, timeoutMs: 120_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 2000, 60_000, '2000 calls at the server');
  first.child.kill('SIGKILL');
  await first.done;
  const resumed = await runCli(['run', jobFile, ...args, '--resume', '--json'], {
    cwd: dir,
    timeoutMs: 120_000,
    env: {GRPC_BATCH_LOG: 'info'},
  });
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {ok: number; total: number};
  assert.equal(summary.ok, records);
  assertEveryRecordOnce(dir, records);
  // The chunks the workers finished while no coordinator ran are taken over, not sent again.
  assert.match(resumed.stderr, /run:adopted|run:resuming/);
  assert.ok(server.stats.calls - records <= 8 * 250, `${server.stats.calls - records} calls repeated`);
});

test('Redis paused (SIGSTOP) for 3 seconds mid-run: the run completes', async (t) => {
  const server = await startServer(t, {latencyMs: 2});
  const redis = await privateRedis(t);
  const {prefix} = await redisPrefix(t, redis.url);
  const dir = tempDir(t);
  const records = 4000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, url: redis.url, chunks: 4, lockDuration: '2s'});
  await workersReady(workers);
  const coordinator = spawnCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 16}),
      '--redis',
      redis.url,
      '--prefix',
      prefix,
      '--chunk-size',
      '250',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 1000, 60_000, '1000 calls at the server');
  process.kill(redis.pid, 'SIGSTOP');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  process.kill(redis.pid, 'SIGCONT');
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).ok, records);
  assertEveryRecordOnce(dir, records);
});

test('Redis paused (SIGSTOP) for 5 seconds just as a chunk is added: the run pauses, then completes, every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 2});
  const redis = await privateRedis(t);
  const {prefix, redis: peek} = await redisPrefix(t, redis.url);
  const dir = tempDir(t);
  const records = 6;
  const workers = startWorkers(t, 1, {prefix, url: redis.url, chunks: 4, lockDuration: '10s'});
  await workersReady(workers);
  const coordinator = spawnCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 2}),
      '-i',
      '-',
      '--redis',
      redis.url,
      '--prefix',
      prefix,
      '--json',
      '--log-format',
      'json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000, openStdin: true},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  const write = (i: number) => coordinator.child.stdin.write(`${JSON.stringify({id: `r${i}`})}\n`);
  const results = () => readJsonlFile(path.join(dir, 'out/results.jsonl')).length;
  const chunksInRedis = async () => {
    let n = 0;
    for (const set of await peek.keys(`${prefix}:runs:*:chunks`)) n += await peek.scard(set);
    return n;
  };
  // The first record merged and its chunk gone: the run has nothing in the queue.
  write(1);
  await waitFor(() => results() === 1, 60_000, 'the first result');
  for (let n = 1; n > 0; n = await chunksInRedis()) await new Promise((resolve) => setTimeout(resolve, 20));
  // Cut, then a record: its chunk is made while Redis does not answer, and the coordinator's 2 s
  // sweep asks Redis about it before its add lands (both wait on the connection, in that order).
  let stderr = '';
  coordinator.child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  process.kill(redis.pid, 'SIGSTOP');
  write(2);
  await new Promise((resolve) => setTimeout(resolve, 5000)); // the length of the cut, at least
  // ...and until the coordinator has noticed it (its timers may run late on a loaded machine).
  await waitFor(() => /"event":"backend:down"/.test(stderr), 60_000, 'the coordinator to pause for Redis');
  process.kill(redis.pid, 'SIGCONT');
  for (let i = 3; i <= records; i++) write(i);
  coordinator.child.stdin.end();
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {ok: number; outages: {pauses: number}};
  assert.equal(summary.ok, records);
  assert.deepEqual(
    [...server.stats.ids].sort(),
    Array.from({length: records}, (_, i) => `r${i + 1}`).sort(),
    'each record called once at the server',
  );
  assert.ok(summary.outages.pauses >= 1, `the run paused for Redis: ${JSON.stringify(summary.outages)}`);
  assert.match(result.stderr, /"event":"backend:down".*Redis at redis:\/\/127\.0\.0\.1:\d+ does not answer/);
});

test('Redis loses its data mid-run (restarted without persistence): the run stops, exit 3 with its --json summary and one log line per fault, and --resume sends what was lost, every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 2});
  const redis = await privateRedis(t);
  const {prefix} = await redisPrefix(t, redis.url);
  const dir = tempDir(t);
  const records = 3000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 1, {prefix, url: redis.url, chunks: 8, lockDuration: '2s'});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 16});
  const args = ['--redis', redis.url, '--prefix', prefix, '--chunk-size', '250', '--no-progress', '--state', path.join(dir, 'state.db')];
  const first = spawnCli(['run', jobFile, ...args, '--json', '--log-format', 'json'], {cwd: dir, timeoutMs: 120_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 800, 60_000, '800 calls at the server');
  await redis.restart();
  const stopped = await first.done;
  assert.equal(stopped.code, 3, stopped.stderr);
  // Whichever it finds first: a chunk of the run, or its lease, is no longer in Redis.
  assert.match(stopped.stderr, /is no longer in Redis/);
  assert.doesNotMatch(stopped.stderr, /this is a bug/);
  // The run so far, as JSON on stdout, with the command that resumes it.
  const partial = JSON.parse(stopped.stdout) as {status: string; interruptReason: string; next: string[]};
  assert.equal(partial.status, 'interrupted');
  assert.match(partial.interruptReason, /is no longer in Redis/);
  assert.match(partial.next.join('\n'), /--resume/);
  // Log lines only (JSON), the error's own line, and its next step: no stacks, no ioredis "Unhandled error event".
  const lines = stopped.stderr.split('\n').filter((l) => l !== '');
  const stray = lines.filter(
    (l) => !l.startsWith('{') && !l.startsWith('grpc-batch: ') && !l.startsWith('next: ') && !l.startsWith('      '),
  );
  assert.deepEqual(stray, [], 'every line on stderr is a JSON log line or the error');
  const events = lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as {event?: string}).event);
  const errors = events.filter((e) => e === 'redis:error').length;
  assert.ok(errors <= events.filter((e) => e === 'redis:recovered').length + 1, `one redis:error line per fault: ${events.join(' ')}`);
  const resumed = await runCli(['run', jobFile, ...args, '--resume', '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(JSON.parse(resumed.stdout).ok, records);
  assertEveryRecordOnce(dir, records);
});

test('SIGINT to the coordinator mid-run: the workers stop its chunks, exit 130, and --resume completes, every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 3000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, chunks: 4});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 16});
  const args = ['--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', '250', '--no-progress', '--state', path.join(dir, 'state.db')];
  const first = spawnCli(['run', jobFile, ...args, '--json'], {cwd: dir, timeoutMs: 120_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 500, 60_000, '500 calls at the server');
  first.child.kill('SIGINT');
  const stopped = await first.done;
  assert.equal(stopped.code, 130, stopped.stderr);
  const summary = JSON.parse(stopped.stdout) as {status: string; unfinished: number; ok: number};
  assert.equal(summary.status, 'cancelled');
  assert.ok(summary.ok < records, `${summary.ok} done before the stop`);
  const callsAtStop = server.stats.calls;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.ok(
    server.stats.calls - callsAtStop <= 16,
    `the workers went on sending: ${server.stats.calls - callsAtStop} calls after the stop`,
  );
  const resumed = await runCli(['run', jobFile, ...args, '--resume', '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(JSON.parse(resumed.stdout).ok, records);
  assertEveryRecordOnce(dir, records);
});

test('a Redis that evicts keys (maxmemory-policy volatile-lru) is refused at start, by the coordinator and by workers, with the fix; nothing is sent', async (t) => {
  const server = await startServer(t);
  const redis = await privateRedis(t);
  const {prefix, redis: admin} = await redisPrefix(t, redis.url);
  await admin.config('SET', 'maxmemory-policy', 'volatile-lru');
  const dir = tempDir(t);
  writeInput(path.join(dir, 'input.jsonl'), 10);
  const run = await runCli(
    [
      'run',
      writeJob(dir, server.address),
      '--redis',
      redis.url,
      '--prefix',
      prefix,
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 60_000},
  );
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /Redis at redis:\/\/127\.0\.0\.1:\d+ has maxmemory-policy volatile-lru/);
  assert.match(run.stderr, /CONFIG SET maxmemory-policy noeviction/);
  const worker = await runCli(['worker', '--redis', redis.url, '--prefix', prefix], {timeoutMs: 60_000});
  assert.equal(worker.code, 2, worker.stderr);
  assert.match(worker.stderr, /has maxmemory-policy volatile-lru/);
  assert.equal(server.stats.calls, 0);
  // With noeviction, the same run goes.
  await admin.config('SET', 'maxmemory-policy', 'noeviction');
  const workers = startWorkers(t, 1, {prefix, url: redis.url});
  await workersReady(workers);
  const ok = await runCli(
    [
      'run',
      path.join(dir, 'job.yaml'),
      '--redis',
      redis.url,
      '--prefix',
      prefix,
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 60_000},
  );
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(server.stats.calls, 10);
});

test('Redis out of memory (noeviction, maxmemory reached) mid-run: the run stops at once, exit 3 naming OOM and the fix, nothing sent twice', async (t) => {
  const server = await startServer(t, {latencyMs: 20});
  const redisServer = await privateRedis(t);
  const {prefix, redis} = await redisPrefix(t, redisServer.url);
  const dir = tempDir(t);
  const records = 2000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 1, {prefix, url: redisServer.url, chunks: 2});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 4});
  const run = spawnCli(
    [
      'run',
      jobFile,
      '--redis',
      redisServer.url,
      '--prefix',
      prefix,
      '--chunk-size',
      '250',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000},
  );
  t.after(() => run.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 50, 60_000, '50 calls at the server');
  // Full: every write is refused from now on (reads and deletes still answer).
  await redis.config('SET', 'maxmemory', '1');
  const stopped = await run.done;
  assert.equal(stopped.code, 3, stopped.stderr);
  assert.match(stopped.stderr, /out of memory \(OOM[^\n]*raise maxmemory/);
  const summary = JSON.parse(stopped.stdout) as {ok: number};
  assert.ok(summary.ok < records);
  assert.ok(server.stats.calls <= records, `${server.stats.calls} calls for ${records} records: chunks were run again`);
});
