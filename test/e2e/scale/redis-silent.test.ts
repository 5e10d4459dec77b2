import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli, spawnCli, waitFor} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {privateRedis, redisPrefix, startWorkers, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

function writeInput(file: string, records: number): void {
  writeFileSync(file, Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`})).join('\n') + '\n');
}

test('Redis silent (SIGSTOP) past maxOutage: the coordinator stops, exit 4 with its --json summary, without hanging on Redis; --resume completes once Redis is back, every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const redis = await privateRedis(t);
  const {prefix} = await redisPrefix(t, redis.url);
  const dir = tempDir(t);
  const records = 3000;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, url: redis.url, chunks: 4, lockDuration: '2s'});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 8, maxOutage: '6s'});
  const args = ['--redis', redis.url, '--prefix', prefix, '--chunk-size', '200', '--no-progress', '--state', path.join(dir, 'state.db')];
  const run = spawnCli(['run', jobFile, ...args, '--json', '--log-format', 'json'], {
    cwd: dir,
    timeoutMs: 120_000,
    env: {GRPC_BATCH_LOG: 'info'},
  });
  t.after(() => run.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 500, 60_000, '500 calls at the server');
  process.kill(redis.pid, 'SIGSTOP');
  t.after(() => process.kill(redis.pid, 'SIGCONT'));
  // Redis stays stopped until the coordinator has exited: its shutdown must not wait for it.
  const stopped = await run.done;
  assert.equal(stopped.timedOut, false, 'the coordinator hung on a silent Redis');
  assert.equal(stopped.code, 4, stopped.stderr);
  const summary = JSON.parse(stopped.stdout) as {status: string; interruptReason: string; ok: number; next: string[]};
  assert.equal(summary.status, 'interrupted');
  assert.match(summary.interruptReason, /Redis at redis:\/\/127\.0\.0\.1:\d+ did not answer for \d+s \(maxOutage 6s\)/);
  assert.match(summary.next.join('\n'), /--resume/);
  assert.ok(summary.ok < records);
  // One structured line per fault: JSON lines only, one backend:down and one run:interrupted.
  const lines = stopped.stderr.split('\n').filter((l) => l !== '');
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('{') && !l.startsWith('next: ') && !l.startsWith('      ')),
    [],
    'every line on stderr is a JSON log line',
  );
  const events = lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as {event?: string}).event);
  assert.equal(events.filter((e) => e === 'backend:down').length, 1, events.join(' '));
  assert.equal(events.filter((e) => e === 'run:interrupted').length, 1, events.join(' '));
  process.kill(redis.pid, 'SIGCONT');
  const resumed = await runCli(['run', jobFile, ...args, '--resume', '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as {ok: number}).ok, records);
  const got = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as {line: number}[]).map((l) => l.line);
  assert.equal(got.length, records, 'one result line per record');
  assert.equal(new Set(got).size, records, 'no record twice in the results');
});
