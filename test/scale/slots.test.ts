import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {spawnCli} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../helpers/job.js';
import {REDIS_URL, redisPrefix, startWorkers, workersReady} from '../helpers/redis.js';
import {startServer} from '../helpers/server.js';

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
  const coordinator = spawnCli(['run', writeJob(dir, server.address, {concurrency: 2}), '-i', '-', '--redis', REDIS_URL, '--prefix', prefix, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000, openStdin: true});
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
