import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli, spawnCli} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {REDIS_URL, redisPrefix, startWorkers, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

type Line = {line: number; status: string};

test('run --redis with an input that trickles in while calls take 300 ms: never more chunks than slots, every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 300});
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 24;
  const workers = startWorkers(t, 1, {prefix, chunks: 8});
  await workersReady(workers);
  // concurrency 2: 2 slots of 1 call each. Records come slower than a chunk's linger (200 ms), so
  // each goes as a chunk of its own, while calls keep every slot busy: the input outpaces the slots.
  const coordinator = spawnCli(
    [
      'run',
      writeJob(dir, server.address, {concurrency: 2}),
      '-i',
      '-',
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: 120_000, openStdin: true},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  let mostChunks = 0;
  let sampling = true;
  const sample = (async () => {
    while (sampling) {
      for (const set of await redis.keys(`${prefix}:runs:*:chunks`)) mostChunks = Math.max(mostChunks, await redis.scard(set));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  let exited = false;
  void coordinator.done.then(() => (exited = true));
  for (let i = 1; i <= records && !exited; i++) {
    coordinator.child.stdin.write(`${JSON.stringify({id: `r${i}`})}\n`);
    await new Promise((resolve) => setTimeout(resolve, 250)); // the input's pace, not an assertion
  }
  coordinator.child.stdin.end();
  const result = await coordinator.done;
  sampling = false;
  await sample;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {ok: number; total: number};
  assert.equal(summary.total, records);
  assert.equal(summary.ok, records);
  assert.equal(server.stats.calls, records, 'each record called once at the server');
  assert.deepEqual([...server.stats.ids].sort(), Array.from({length: records}, (_, i) => `r${i + 1}`).sort());
  assert.ok(server.stats.maxInFlight <= 2, `${server.stats.maxInFlight} calls in flight at the server (concurrency 2)`);
  assert.ok(mostChunks <= 2, `${mostChunks} chunks of the run in Redis at once (2 slots)`);
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).map((l) => l.line);
  assert.equal(new Set(lines).size, records);
});

test('a run smaller than a chunk gets the whole concurrency: 40 records at 1.2 s per call, concurrency 8, under 2x the one-process time', async (t) => {
  const server = await startServer(t, {latencyMs: 1200});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  const records = 40;
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`})).join('\n') + '\n',
  );
  const workers = startWorkers(t, 1, {prefix, chunks: 8});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 8, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const timed = async (args: readonly string[]) => {
    const started = performance.now();
    const result = await runCli(['run', jobFile, '--json', '--no-progress', '--state', path.join(dir, 'state.db'), ...args], {
      cwd: dir,
      timeoutMs: 180_000,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as {ok: number}).ok, records);
    return performance.now() - started;
  };
  const local = await timed([]);
  assert.equal(server.stats.maxInFlight, 8);
  server.stats.maxInFlight = 0;
  const distributed = await timed(['--redis', REDIS_URL, '--prefix', prefix]);
  // The one chunk ran with the job's 8 calls in flight, not 8 / 8 slots = 1 (40 x 1.2 s = 48 s).
  assert.equal(server.stats.maxInFlight, 8, 'calls in flight at the server during the distributed run');
  assert.equal(server.stats.calls, 2 * records);
  assert.ok(
    distributed / local < 2,
    `distributed ${Math.round(distributed)} ms, one process ${Math.round(local)} ms: ${(distributed / local).toFixed(2)}x`,
  );
});
