import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {startServer} from './helpers/server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from './helpers/job.js';
import {spawnCli, waitFor} from './helpers/cli.js';

test('SIGINT stops the run: calls in flight finish, the summary is printed, exit 130', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: 5000}, (_, i) => ({id: `r${i}`, latencyMs: 30})));
  const job = writeJob(dir, server.address, {concurrency: 10});
  const cli = spawnCli(['run', job, '--json', '--no-progress']);
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 50, 30_000, '50 calls at the server');
  cli.child.kill('SIGINT');
  const {code, stdout} = await cli.done;
  assert.equal(code, 130);
  const summary = JSON.parse(stdout) as {status: string; total: number; ok: number; stopReason: string; lastLine: number};
  assert.equal(summary.status, 'cancelled');
  assert.equal(summary.stopReason, 'SIGINT');
  assert.equal(summary.ok, summary.total, 'the calls in flight were let finish');
  assert.equal(server.stats.calls, summary.total);
  assert.equal(server.stats.byStatus['CANCELLED'] ?? 0, 0);
  assert.ok(summary.total < 5000);
  assert.equal(readJsonlFile(path.join(dir, 'out/results.jsonl')).length, summary.total);
});

test('a second SIGTERM cancels the calls in flight: no result, not failed, left for --resume; exit 143', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: 100}, (_, i) => ({id: `r${i}`, latencyMs: 60_000})));
  const job = writeJob(dir, server.address, {concurrency: 10, deadline: '2m'});
  const cli = spawnCli(['run', job, '--json', '--no-progress']);
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.inFlight === 10, 30_000, '10 calls in flight');
  cli.child.kill('SIGTERM');
  // Two signals sent back to back may reach the process as one; give it time to handle the first.
  await new Promise((resolve) => setTimeout(resolve, 300));
  cli.child.kill('SIGTERM');
  const {code, stdout} = await cli.done;
  assert.equal(code, 143);
  const summary = JSON.parse(stdout) as {status: string; total: number; failed: number; unfinished: number; byStatus: Record<string, number>};
  assert.equal(summary.status, 'cancelled');
  assert.equal(summary.total, 10);
  assert.equal(summary.failed, 0);
  assert.equal(summary.unfinished, 10);
  assert.deepEqual(summary.byStatus, {});
  assert.equal(server.stats.byStatus['CANCELLED'], 10, 'the server saw the calls cancelled');
  assert.equal(readJsonlFile(path.join(dir, 'out/results.jsonl')).length, 0, 'no result: a resume sends them');
  assert.equal(readJsonlFile(path.join(dir, 'out/failed.jsonl')).length, 0);
});
