import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

test('history shows a stopped run against the size of its input, and every --json gives times as ISO strings', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 1000}, (_, i) => ({id: `r${i}`, latencyMs: 20})),
  );
  const job = writeJob(dir, server.address, {
    concurrency: 5,
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
    schedule: '0 3 * * *',
    timezone: 'UTC',
  });
  const state = path.join(dir, 'state.db');
  const cli = spawnCli(['run', job, '--no-progress', '--json', '--state', state], {cwd: dir});
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 20, 30_000, 'calls at the server');
  cli.child.kill('SIGINT');
  const {stdout} = await cli.done;
  const summary = JSON.parse(stdout) as {runId: string; total: number; ok: number; inputRecords: number};
  assert.equal(summary.inputRecords, 1000);
  assert.ok(summary.total < 1000);

  const table = await runCli(['history', '--state', state], {cwd: dir});
  assert.match(table.stdout, new RegExp(`^${summary.runId} .* cancelled +${summary.ok}/0/0/1000 +SIGINT$`, 'm'));

  const history = JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as Record<string, unknown>[];
  assert.equal(history[0]!['inputRecords'], 1000);
  assert.equal(history[0]!['total'], summary.total);
  const list = JSON.parse((await runCli(['list', job, '--json', '--state', state], {cwd: dir})).stdout) as {
    next: string[];
    last: Record<string, unknown>;
  }[];
  for (const times of [history[0]!, list[0]!.last]) {
    for (const key of ['createdAt', 'startedAt', 'endedAt']) assert.match(String(times[key]), ISO, `${key}: ${String(times[key])}`);
  }
  for (const next of list[0]!.next) assert.match(next, ISO);
});
