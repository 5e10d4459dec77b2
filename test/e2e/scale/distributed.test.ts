import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {after, before, test, type TestContext} from 'node:test';
import {runCli} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {REDIS_URL, redisPrefix, startWorkers, stderrOf, workersReady} from '../../helpers/redis.js';
import type {CliProcess} from '../../helpers/cli.js';
import type {Redis} from 'ioredis';
import {startServer} from '../../helpers/server.js';

type Line = {line: number; status: string; response?: {id: string}};

function writeInput(file: string, records: number, extra: Record<string, unknown> = {}): void {
  writeFileSync(file, Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`, ...extra})).join('\n') + '\n');
}

// The 3 workers (and their prefix) serve both tests of this file: their start-up is the slow part.
// Their cleanups run after the last test of the file (an `after` hook registered at the top level).
const cleanups: (() => unknown)[] = [];
const shared = {after: (fn: () => unknown) => void cleanups.push(fn)} as unknown as TestContext;
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});
let prefix: string;
let redis: Redis;
let workers: CliProcess[];
let logs: (() => string)[];
before(async () => {
  ({prefix, redis} = await redisPrefix(shared));
  workers = startWorkers(shared, 3, {prefix, chunks: 3});
  logs = workers.map(stderrOf);
  await workersReady(workers);
});

test("30,000 records over 3 worker processes: every record once, the job's concurrency held at the server, every worker did chunks", async (t) => {
  const server = await startServer(t, {latencyMs: 1});
  const dir = tempDir(t);
  const records = 30_000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const jobFile = writeJob(dir, server.address, {concurrency: 24});
  // What Redis holds of the run stays bounded: at most 8 chunks (and their results) at a time.
  let mostChunks = 0;
  let sampling = true;
  const sample = (async () => {
    while (sampling) {
      const sets = await redis.keys(`${prefix}:runs:*:chunks`);
      for (const set of sets) mostChunks = Math.max(mostChunks, await redis.scard(set));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const result = await runCli(
    [
      'run',
      jobFile,
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '1000',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000},
  );
  sampling = false;
  await sample;
  assert.equal(result.code, 0, result.stderr);
  assert.ok(mostChunks > 0 && mostChunks <= 8, `${mostChunks} chunks of the run in Redis at once`);
  const summary = JSON.parse(result.stdout) as {ok: number; total: number; attempts: number};
  assert.equal(summary.total, records);
  assert.equal(summary.ok, records);
  assert.equal(summary.attempts, records);
  const lines = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
  assert.equal(lines.length, records);
  assert.equal(new Set(lines.map((l) => l.line)).size, records, 'one result line per record');
  assert.ok(lines.every((l) => l.status === 'OK' && l.response?.id === `r${l.line}`));
  assert.equal(server.stats.calls, records, 'no call made twice');
  assert.ok(server.stats.maxInFlight <= 24, `max in flight at the server: ${server.stats.maxInFlight}`);
  const runId = (JSON.parse(result.stdout) as {runId: string}).runId;
  const done = logs.map(
    (l) =>
      l()
        .split('\n')
        .filter((line) => line.includes('"event":"chunk:done"') && line.includes(runId)).length,
  );
  assert.equal(
    done.reduce((a, b) => a + b),
    30,
    `chunks done per worker: ${done}`,
  );
  assert.ok(
    done.every((n) => n > 0),
    `every worker did chunks: ${done}`,
  );
  // Merged and deleted: what is left in Redis is the workers' own (BullMQ's queue keys), no run data.
  assert.deepEqual(await redis.keys(`${prefix}:runs:*`), []);
});

test('rps holds across 3 workers, measured at the server', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const records = 400;
  const rps = 200;
  writeInput(path.join(dir, 'input.jsonl'), records);
  // The calls the server has seen, every 20 ms. This process is the server: when the machine is busy
  // it may not run for a while, then take in at once what the workers sent meanwhile. So a window from
  // sample i to sample j is charged from sample i-1 on (the last moment the server had caught up with
  // everything sent before): calls_j - calls_i <= 8 chunks x 2 tokens + rps x (at_j - at_{i-1}).
  const samples: {at: number; calls: number}[] = [];
  const sampler = setInterval(() => samples.push({at: performance.now(), calls: server.stats.calls}), 20);
  t.after(() => clearInterval(sampler));
  const result = await runCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 40, rps}),
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '50',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 60_000},
  );
  clearInterval(sampler);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(server.stats.calls, records);
  let most = 0;
  let worst = {excess: -Infinity, calls: 0, ms: 0};
  for (let i = 1; i < samples.length; i++) {
    const first = samples[i]!;
    for (let j = i + 1; j < samples.length && samples[j]!.at <= first.at + 1000; j++) {
      const calls = samples[j]!.calls - first.calls;
      const ms = samples[j]!.at - samples[i - 1]!.at;
      most = Math.max(most, calls);
      // Each of the 8 chunks in flight has rps/8 and a bucket of a tenth of a second (2 tokens).
      const excess = calls - (16 + (rps * ms) / 1000);
      if (excess > worst.excess) worst = {excess, calls, ms};
    }
  }
  assert.ok(worst.excess <= 0, `${worst.calls} calls at the server in ${worst.ms.toFixed(0)} ms (rps ${rps}, 16 tokens of bursts)`);
  assert.ok(most >= rps / 2, `the rate was reached: ${most} calls in the busiest second`);
});
