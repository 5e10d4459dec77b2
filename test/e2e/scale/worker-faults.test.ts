import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {test} from 'node:test';
import {waitFor} from '../../helpers/cli.js';
import {startConnectProxy} from '../../helpers/connect-proxy.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {startPartitionProxy} from '../../helpers/partition-proxy.js';
import {privateRedis, redisPrefix, startCoordinator, startWorkers, stderrOf, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

type Line = {line: number; status: string};
type LogLine = {event?: string; chunk?: number; run?: string};

function writeInput(file: string, records: number): void {
  writeFileSync(file, Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`})).join('\n') + '\n');
}

function assertEveryRecordOnce(dir: string, records: number): void {
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).map((l) => l.line);
  assert.equal(lines.length, records, 'one result line per record');
  assert.equal(new Set(lines).size, records, 'no record twice in the results');
}

/** The JSON log lines of a process's stderr with this event. */
function events(stderr: string, event: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.event === event);
}

test("a worker partitioned from Redis past its lock duration stops calling its chunk, logs no chunk:done for it, and the run counts its attempts: the run's attempts equal the server's calls", async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const {prefix} = await redisPrefix(t);
  const redisPath = await startPartitionProxy(t, 6379);
  const dir = tempDir(t);
  const records = 3000;
  const chunkSize = 250;
  writeInput(path.join(dir, 'input.jsonl'), records);
  // The worker to be cut off holds one chunk at a time: the repeats are bounded by its records.
  const [cut] = startWorkers(t, 1, {prefix, url: `redis://${redisPath.address}`, chunks: 1, lockDuration: '2s'});
  const cutLog = stderrOf(cut!);
  await workersReady([cut!]);
  const coordinator = startCoordinator(t, dir, writeJob(dir, server.address, {concurrency: 16}), {
    prefix,
    chunkSize,
    timeoutMs: 180_000,
  });
  // Cut mid-chunk (it runs its chunks one after the other, 250 calls each): it holds one.
  await waitFor(
    () => server.stats.calls >= 300 && server.stats.calls % chunkSize >= 50 && server.stats.calls % chunkSize <= 200,
    60_000,
    'the worker mid-chunk',
  );
  redisPath.partition();
  await waitFor(() => events(cutLog(), 'chunk:lost').length >= 1, 60_000, 'the cut-off worker to give its chunk up').catch(
    (error: unknown) => {
      throw new Error(`${String(error)}; its log:\n${cutLog()}`);
    },
  );
  // Healed at once: its report of the attempts it made lands; it may take chunks again, a second worker joins.
  redisPath.heal();
  const [other] = startWorkers(t, 1, {prefix, chunks: 4, lockDuration: '2s'});
  const otherLog = stderrOf(other!);
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {ok: number; failed: number; attempts: number};
  assert.equal(summary.ok, records);
  assertEveryRecordOnce(dir, records);
  assert.equal(summary.attempts, server.stats.calls, "the run's attempts are the calls the server saw, the thrown-away ones included");
  const repeated = server.stats.calls - records;
  assert.ok(repeated >= 0 && repeated <= chunkSize, `${repeated} calls repeated (bound: the one chunk of ${chunkSize} it held)`);
  // Each chunk was done once: the thrown-away one logged chunk:lost, not chunk:done.
  const done = [...events(cutLog(), 'chunk:done'), ...events(otherLog(), 'chunk:done')].map((l) => l.chunk);
  assert.equal(done.length, new Set(done).size, `a chunk logged done twice: ${done.join(' ')}`);
  assert.equal(done.length, records / chunkSize);
});

test('a worker cut off from the backend (its own proxy stops forwarding) hands its chunks back and takes none for a while: the other worker finishes the run, nothing failed, every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const {prefix} = await redisPrefix(t);
  const backendPath = await startConnectProxy(t, Number(server.address.split(':').pop()));
  const dir = tempDir(t);
  const records = 3000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  // The worker to be cut off reaches the backend through its own HTTP CONNECT proxy (grpc_proxy).
  const [cut] = startWorkers(t, 1, {prefix, chunks: 8, lockDuration: '2s', env: {grpc_proxy: backendPath.url, GRPC_BATCH_LOG: 'debug'}});
  const cutLog = stderrOf(cut!);
  await workersReady([cut!]);
  const coordinator = startCoordinator(t, dir, writeJob(dir, server.address, {concurrency: 16, deadline: '1s'}), {
    prefix,
    chunkSize: 250,
    timeoutMs: 180_000,
  });
  await waitFor(() => server.stats.calls >= 300, 60_000, '300 calls at the server');
  assert.ok(backendPath.tunnels > 0, 'the cut-off worker called through its proxy');
  backendPath.partition();
  const [healthy] = startWorkers(t, 1, {prefix, chunks: 8, lockDuration: '2s'});
  const healthyLog = stderrOf(healthy!);
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {ok: number; failed: number};
  assert.equal(summary.failed, 0);
  assert.equal(summary.ok, records);
  assertEveryRecordOnce(dir, records);
  assert.ok(events(cutLog(), 'chunk:handed-back').length >= 1, `the cut-off worker handed its chunks back:\n${cutLog()}`);
  assert.equal(events(cutLog(), 'chunk:failed').length, 0);
  const down = events(cutLog(), 'worker:backend-down') as (LogLine & {chunks: number})[];
  assert.equal(down.length, 1, 'one log line for the fault');
  assert.ok(down[0]!.chunks >= 1);
  assert.ok(events(healthyLog(), 'chunk:done').length >= 1, 'the healthy worker ran chunks');
});

test('a worker whose Redis goes away (connections refused, then closed at once, many reconnects) logs one redis:error and one redis:recovered, only JSON lines on stderr, and takes chunks again', async (t) => {
  const server = await startServer(t);
  const redis = await privateRedis(t);
  const {prefix} = await redisPrefix(t, redis.url);
  const port = Number(new URL(redis.url).port);
  const [worker] = startWorkers(t, 1, {prefix, url: redis.url, chunks: 2, lockDuration: '2s'});
  const log = stderrOf(worker!);
  await workersReady([worker!]);
  process.kill(redis.pid, 'SIGKILL');
  await waitFor(() => events(log(), 'redis:error').length >= 1, 60_000, 'the worker to see Redis gone');
  // Then a port that takes each reconnect and closes it at once: every attempt fails anew.
  let attempts = 0;
  const closer = net.createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  t.after(() => closer.close());
  for (let bound = false; !bound; ) {
    bound = await new Promise<boolean>((resolve) => {
      closer.once('error', () => resolve(false));
      closer.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await waitFor(() => attempts >= 10, 60_000, '10 reconnect attempts');
  await new Promise<void>((resolve) => closer.close(() => resolve()));
  await redis.restart();
  await waitFor(() => events(log(), 'redis:recovered').length >= 1, 60_000, 'the worker to reach Redis again');
  // It takes chunks again: a small run on the restarted Redis completes.
  const dir = tempDir(t);
  writeInput(path.join(dir, 'input.jsonl'), 20);
  const run = startCoordinator(t, dir, writeJob(dir, server.address, {concurrency: 4}), {prefix, url: redis.url});
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal((JSON.parse(result.stdout) as {ok: number}).ok, 20);
  const lines = log()
    .split('\n')
    .filter((l) => l !== '');
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('{')),
    [],
    'every line on the worker\'s stderr is a JSON log line: no stacks, no "Unhandled error event"',
  );
  assert.equal(
    events(log(), 'redis:error').length,
    1,
    `one redis:error line for the fault, whatever the reconnects (${attempts}):\n${log()}`,
  );
  assert.equal(events(log(), 'redis:recovered').length, 1);
});

test('no worker can reach the backend: the chunks go round the workers, and once the backend was out of reach for maxOutage the run is interrupted (exit 4), nothing failed, resumable', async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const {prefix} = await redisPrefix(t);
  const backendPath = await startConnectProxy(t, Number(server.address.split(':').pop()));
  const dir = tempDir(t);
  const records = 2000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, chunks: 4, lockDuration: '2s', env: {grpc_proxy: backendPath.url}});
  const logs = workers.map(stderrOf);
  await workersReady(workers);
  const coordinator = startCoordinator(t, dir, writeJob(dir, server.address, {concurrency: 16, deadline: '1s', maxOutage: '4s'}), {
    prefix,
    chunkSize: 250,
    timeoutMs: 180_000,
  });
  await waitFor(() => server.stats.calls >= 200, 60_000, '200 calls at the server');
  backendPath.partition();
  const result = await coordinator.done;
  assert.equal(result.code, 4, result.stderr);
  const summary = JSON.parse(result.stdout) as {status: string; failed: number; interruptReason: string};
  assert.equal(summary.status, 'interrupted');
  assert.equal(summary.failed, 0);
  assert.match(summary.interruptReason, /unreachable/);
  assert.ok(
    logs.some((l) => events(l(), 'worker:backend-down').length === 1),
    'the workers handed chunks back before giving up',
  );
});
