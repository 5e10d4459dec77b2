import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {spawnCli, waitFor} from '../helpers/cli.js';
import {startConnectProxy} from '../helpers/connect-proxy.js';
import {readJsonlFile, tempDir, writeJob} from '../helpers/job.js';
import {startPartitionProxy} from '../helpers/partition-proxy.js';
import {REDIS_URL, redisPrefix, startWorkers, stderrOf, workersReady} from '../helpers/redis.js';
import {startServer} from '../helpers/server.js';

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
  return stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine).filter((l) => l.event === event);
}

test('a worker partitioned from Redis past its lock duration stops calling its chunk, logs no chunk:done for it, and the run counts its attempts: the run\'s attempts equal the server\'s calls', async (t) => {
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
  const coordinator = spawnCli(['run', writeJob(dir, server.address, {concurrency: 16}), '--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', String(chunkSize), '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 180_000});
  t.after(() => coordinator.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 300, 60_000, '300 calls at the server');
  redisPath.partition();
  await waitFor(() => events(cutLog(), 'chunk:lost').length >= 1, 60_000, 'the cut-off worker to give its chunk up');
  // Healed at once: its report of the attempts it made lands; it may take chunks again, a second worker joins.
  redisPath.heal();
  const [other] = startWorkers(t, 1, {prefix, chunks: 4, lockDuration: '2s'});
  const otherLog = stderrOf(other!);
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {ok: number; failed: number; attempts: number};
  assert.equal(summary.ok, records);
  assertEveryRecordOnce(dir, records);
  assert.equal(summary.attempts, server.stats.calls, 'the run\'s attempts are the calls the server saw, the thrown-away ones included');
  const repeated = server.stats.calls - records;
  console.log("LOGS", cutLog(), "\n=====\n", otherLog()); console.log("DIAG", JSON.stringify({repeated, attempts: summary.attempts, calls: server.stats.calls, lost: events(cutLog(), "chunk:lost"), durationMs: (summary as {durationMs?: number}).durationMs}));
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
  const [cut] = startWorkers(t, 1, {prefix, chunks: 8, lockDuration: '2s', env: {grpc_proxy: backendPath.url}});
  const cutLog = stderrOf(cut!);
  await workersReady([cut!]);
  const coordinator = spawnCli(['run', writeJob(dir, server.address, {concurrency: 16, deadline: '1s'}), '--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', '250', '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 180_000});
  t.after(() => coordinator.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 300, 60_000, '300 calls at the server');
  assert.ok(backendPath.tunnels > 0, 'the cut-off worker called through its proxy');
  backendPath.partition();
  const [healthy] = startWorkers(t, 1, {prefix, chunks: 8, lockDuration: '2s'});
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {ok: number; failed: number};
  assert.equal(summary.failed, 0);
  assert.equal(summary.ok, records);
  assertEveryRecordOnce(dir, records);
  assert.ok(events(cutLog(), 'chunk:handed-back').length >= 1, `the cut-off worker handed its chunks back:\n${cutLog()}`);
  assert.equal(events(cutLog(), 'chunk:failed').length, 0);
  assert.equal(events(cutLog(), 'worker:backend-down').length, 1, 'one log line for the fault');
  void healthy;
});
