import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import type {Redis} from 'ioredis';
import {runCli, spawnCli, waitFor} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {REDIS_URL, redisPrefix, startWorkers, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

function writeInput(file: string, records: number): void {
  writeFileSync(file, Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`})).join('\n') + '\n');
}

/**
 * The keys of runs under a prefix: grpc-batch's own (`<prefix>:runs:...`) and the chunks' BullMQ
 * job hashes (`<prefix>:chunks:<run>.<session>-<n>`, the only keys of the queue with a dot). The
 * queue's own keys (`<prefix>:chunks:wait`, `:meta`, `:events`...) are every run's, not one's.
 */
async function runKeysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys.filter((k) => k.startsWith(`${prefix}:runs:`) || k.slice(prefix.length).includes('.')));
  } while (cursor !== '0');
  return found;
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, what: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${await what()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('a coordinator killed with kill -9 and never resumed: every key of its run (chunk jobs with their requests, results, settings) expires after GRPC_BATCH_KEYS_TTL', async (t) => {
  const server = await startServer(t, {latencyMs: 20});
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  writeInput(path.join(dir, 'input.jsonl'), 4000);
  const workers = startWorkers(t, 1, {prefix, chunks: 2});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 8});
  const args = ['--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', '200', '--no-progress', '--state', path.join(dir, 'state.db')];
  const env = {GRPC_BATCH_KEYS_TTL: '15s'};
  const first = spawnCli(['run', jobFile, ...args, '--json'], {cwd: dir, timeoutMs: 120_000, env});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 300, 60_000, '300 calls at the server');
  first.child.kill('SIGKILL');
  await first.done;
  const left = await runKeysUnder(redis, prefix);
  assert.ok(
    left.some((k) => k.includes('.')),
    `chunk jobs of the run in Redis: ${left.join(' ')}`,
  );
  for (const key of left) {
    const ttl = await redis.pttl(key);
    assert.ok(ttl > 0 || ttl === -2, `${key} has no TTL (${ttl})`);
  }
  // The worker goes on with the chunks queued (their results keys expire too); nothing is left after the TTL.
  await until(
    async () => (await runKeysUnder(redis, prefix)).length === 0,
    90_000,
    async () => {
      const keys = await runKeysUnder(redis, prefix);
      return `the run's keys to expire; left: ${(await Promise.all(keys.map(async (k) => `${k} (ttl ${await redis.pttl(k)} ms) ${JSON.stringify(await redis.hgetall(k).catch(() => ({}))).slice(0, 300)}`))).join(', ')}`;
    },
  );
});

test('a coordinator killed with kill -9, resumed within GRPC_BATCH_KEYS_TTL: completes, every record once, and leaves no key of the run', async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 3000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, chunks: 2});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 8});
  const args = ['--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', '250', '--no-progress', '--state', path.join(dir, 'state.db')];
  const env = {GRPC_BATCH_KEYS_TTL: '60s'};
  const first = spawnCli(['run', jobFile, ...args, '--json'], {cwd: dir, timeoutMs: 120_000, env});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 800, 60_000, '800 calls at the server');
  first.child.kill('SIGKILL');
  await first.done;
  const resumed = await runCli(['run', jobFile, ...args, '--resume', '--json'], {cwd: dir, timeoutMs: 120_000, env});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as {ok: number}).ok, records);
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as {line: number}[]).map((l) => l.line);
  assert.equal(lines.length, records, 'one result line per record');
  assert.equal(new Set(lines).size, records, 'no record twice in the results');
  assert.deepEqual(await runKeysUnder(redis, prefix), [], 'nothing of the run left in Redis after its success');
});

test('GRPC_BATCH_KEYS_TTL shorter than the lease is refused with the fix, nothing sent', async (t) => {
  const server = await startServer(t, {latencyMs: 1});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  writeInput(path.join(dir, 'input.jsonl'), 10);
  const jobFile = writeJob(dir, server.address, {concurrency: 2});
  const result = await runCli(
    ['run', jobFile, '--redis', REDIS_URL, '--prefix', prefix, '--no-progress', '--state', path.join(dir, 'state.db')],
    {cwd: dir, timeoutMs: 60_000, env: {GRPC_BATCH_KEYS_TTL: '3s'}},
  );
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /GRPC_BATCH_KEYS_TTL: expected a duration .* at least 15s/);
  assert.equal(server.stats.calls, 0);
});

test("a run never resumed, its keys expired: the ids of its chunks left in the queue's lists are swept by the next worker to start, with every key of the run", async (t) => {
  const server = await startServer(t, {latencyMs: 1});
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  writeInput(path.join(dir, 'input.jsonl'), 2000);
  const jobFile = writeJob(dir, server.address, {concurrency: 8});
  // No worker yet: the run's chunks wait in the queue when its coordinator dies.
  const first = spawnCli(
    [
      'run',
      jobFile,
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '200',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000, env: {GRPC_BATCH_KEYS_TTL: '15s'}},
  );
  t.after(() => first.child.kill('SIGKILL'));
  const waiting = () => redis.lrange(`${prefix}:chunks:wait`, 0, -1);
  await until(
    async () => (await waiting()).length >= 1,
    60_000,
    async () => 'a chunk in the queue',
  );
  first.child.kill('SIGKILL');
  await first.done;
  // Its keys expire (the job hashes with their requests included)...
  await until(
    async () => (await runKeysUnder(redis, prefix)).length === 0,
    90_000,
    async () => `the run's keys to expire; left: ${(await runKeysUnder(redis, prefix)).join(' ')}`,
  );
  // ...but BullMQ's list of waiting jobs still names them: a worker would take ids with no job.
  const orphans = await waiting();
  assert.ok(orphans.length >= 1, "ids of the dead run's chunks left in the queue");
  const [worker] = startWorkers(t, 1, {prefix});
  let stderr = '';
  worker!.child.stderr.on('data', (chunk: string) => (stderr += chunk));
  await waitFor(() => stderr.includes('worker:started'), 60_000, 'the worker to start');
  assert.deepEqual(await waiting(), [], 'the orphans are gone from the queue');
  assert.deepEqual(await runKeysUnder(redis, prefix), []);
  const swept = stderr
    .split('\n')
    .filter((l) => l.includes('"event":"redis:swept"'))
    .map((l) => JSON.parse(l) as {runs: number; chunks: number});
  assert.equal(swept.length, 1, stderr);
  assert.equal(swept[0]!.runs, 1);
  assert.equal(swept[0]!.chunks, orphans.length);
  assert.equal(server.stats.calls, 0, 'nothing of the dead run was sent');
});
