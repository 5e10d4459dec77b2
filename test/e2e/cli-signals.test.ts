import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';

test('SIGINT stops the run: calls in flight finish, the summary is printed, exit 130', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 5000}, (_, i) => ({id: `r${i}`, latencyMs: 30})),
  );
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
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 100}, (_, i) => ({id: `r${i}`, latencyMs: 60_000})),
  );
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
  const summary = JSON.parse(stdout) as {
    status: string;
    total: number;
    failed: number;
    unfinished: number;
    byStatus: Record<string, number>;
  };
  assert.equal(summary.status, 'cancelled');
  assert.equal(summary.total, 10);
  assert.equal(summary.failed, 0);
  assert.equal(summary.unfinished, 10);
  assert.deepEqual(summary.byStatus, {});
  assert.equal(server.stats.byStatus['CANCELLED'], 10, 'the server saw the calls cancelled');
  assert.equal(readJsonlFile(path.join(dir, 'out/results.jsonl')).length, 0, 'no result: a resume sends them');
  assert.equal(readJsonlFile(path.join(dir, 'out/failed.jsonl')).length, 0);
});

test('after Ctrl-C the summary prints the --resume command for the records not sent, and running it completes the run', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 2000}, (_, i) => ({id: `r${i}`, latencyMs: i < 1000 ? 20 : 0})),
  );
  const job = writeJob(dir, server.address, {concurrency: 10, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const state = path.join(dir, 'state.db');
  const cli = spawnCli(['run', job, '--no-progress', '--state', state], {cwd: dir});
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 50, 30_000, '50 calls at the server');
  cli.child.kill('SIGINT');
  const {code, stdout} = await cli.done;
  assert.equal(code, 130);
  const total = Number(/records {3}(\d+) of 2000 read/.exec(stdout)?.[1]);
  assert.ok(total > 0 && total < 2000, stdout);
  const runId = /\(run (\S+)\)/.exec(stdout)![1]!;
  const next = /^ {2}next {6}(grpc-batch run .*)$/m.exec(stdout)?.[1];
  assert.equal(next, `grpc-batch run ${job} --state ${state} --resume ${runId}`);
  // Records read but not yet sent when the stop came (their turn had not come) have no result either.
  const left = Number(new RegExp(`continues run ${runId} with the (\\d+) records without a result yet`).exec(stdout)?.[1]);
  assert.ok(left >= 2000 - total && left < 2000, stdout);
  assert.doesNotMatch(stdout, /--input/, 'no failures file to re-run: nothing failed');
  const resumed = await runCli([...next!.split(' ').slice(1), '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as {ok: number}).ok, 2000);
  assert.equal(server.stats.calls, 2000);
});

test('a run that crashes says how to resume it', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const jobFile = path.join(dir, 'crash.mjs');
  writeFileSync(
    jobFile,
    `export default {
    name: 'crash', target: ${JSON.stringify(server.address)}, proto: ${JSON.stringify(DEMO_PROTO)}, method: ${JSON.stringify(DEMO_METHOD)},
    concurrency: 1, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl', resultFields: ['id'],
    *requests() { for (let i = 0; i < 20; i++) yield {id: 'r' + i}; },
    onResult(result) { if (result.line === 5 && !process.env.FIXED) throw new Error('the sink is full'); },
  };\n`,
  );
  const state = path.join(dir, 'state.db');
  const crashed = await runCli(['run', jobFile, '--state', state, '--no-progress'], {cwd: dir});
  assert.equal(crashed.code, 3);
  const runId = /run (\S+) of crash aborted: the sink is full/.exec(crashed.stderr)?.[1];
  assert.ok(runId, crashed.stderr);
  assert.match(
    crashed.stderr,
    new RegExp(
      `^next: grpc-batch run ${jobFile} --state ${state} --resume ${runId}\\n {6}continues run ${runId}: records with a result are not sent again$`,
      'm',
    ),
  );
  const resumed = await runCli(['run', jobFile, '--state', state, '--resume', runId!, '--json'], {cwd: dir, env: {FIXED: '1'}});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as {ok: number}).ok, 20);
  assert.equal(server.stats.calls, 20);
});
