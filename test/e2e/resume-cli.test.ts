import assert from 'node:assert/strict';
import {appendFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import Database from 'better-sqlite3';
import {startServer} from '../helpers/server.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';

test('--resume refuses when there is nothing to resume, a finished run, and an unknown run', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
  const job = writeJob(dir, server.address, {output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const state = path.join(dir, 'state.db');

  const nothing = await runCli(['run', job, '--resume', '--state', state], {cwd: dir});
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /no unfinished run of job "test" to resume/);

  const done = await runCli(['run', job, '--json', '--state', state], {cwd: dir});
  assert.equal(done.code, 0, done.stderr);
  const {runId} = JSON.parse(done.stdout) as {runId: string};
  const finished = await runCli(['run', job, '--resume', runId, '--state', state], {cwd: dir});
  assert.equal(finished.code, 2);
  assert.match(finished.stderr, new RegExp(`run ${runId} is finished \\(succeeded\\); there is nothing to resume`));

  const unknown = await runCli(['run', job, '--resume', 'no-such-run', '--state', state], {cwd: dir});
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /run no-such-run is not in the state database/);
  assert.equal(server.stats.calls, 2, 'only the one complete run sent anything');
});

test('--resume refuses a run whose input changed since it started', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const input = writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 400}, (_, i) => ({id: `s${i}`, latencyMs: 50})),
  );
  const job = writeJob(dir, server.address, {concurrency: 2, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const state = path.join(dir, 'state.db');
  const first = spawnCli(['run', job, '--no-progress', '--state', state], {cwd: dir});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 4, 30_000, 'calls at the server');
  first.child.kill('SIGKILL');
  await first.done;
  appendFileSync(input, '{"id":"late"}\n');
  const calls = server.stats.calls;
  const resumed = await runCli(['run', job, '--resume', '--state', state], {cwd: dir});
  assert.equal(resumed.code, 2);
  assert.match(
    resumed.stderr,
    /input\.jsonl changed since run \S+ started \(size \d+ -> \d+ bytes\); resuming would skip the wrong records/,
  );
  assert.equal(server.stats.calls, calls);
});

test('a run stopped by maxFailures is resumed with the printed command, which raises the limit; no record is sent twice', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 120}, (_, i) => (i % 20 === 19 ? {id: `r${i}`, failCode: 3} : {id: `r${i}`})),
  );
  const job = writeJob(dir, server.address, {
    concurrency: 1,
    maxFailures: 2,
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const state = path.join(dir, 'state.db');
  const first = await runCli(['run', job, '--state', state, '--no-progress'], {cwd: dir});
  assert.equal(first.code, 1, first.stderr);
  assert.match(
    first.stdout,
    /aborted {3}maxFailures: 3 failed records, more than the job allows \(2\); records after input line 60 were not sent/,
  );
  const runId = /\(run (\S+)\)/.exec(first.stdout)![1]!;
  const next = /^ {2}next {6}(grpc-batch run .*)$/m.exec(first.stdout)?.[1];
  assert.equal(next, `grpc-batch run ${job} --state ${state} --resume ${runId} --max-failures 10`);
  assert.match(first.stdout, /continues run \S+ with the 60 records without a result yet, allowing up to 10 failed records/);

  const refused = await runCli(['run', job, '--state', state, '--resume'], {cwd: dir});
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    new RegExp(
      `run ${runId} already has 3 failed records, more than maxFailures \\(2\\); resuming it would stop again at once: raise the limit for this run with --max-failures 10`,
    ),
  );
  assert.equal(server.stats.calls, 60);

  const resumed = await runCli([...next!.split(' ').slice(1), '--json'], {cwd: dir});
  assert.equal(resumed.code, 1, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {runId: string; total: number; ok: number; failed: number; abortReason?: string};
  assert.deepEqual([summary.runId, summary.total, summary.ok, summary.failed, summary.abortReason], [runId, 120, 114, 6, undefined]);
  assert.equal(server.stats.calls, 120, 'every record sent once');
  assert.equal(new Set(server.stats.ids).size, 120);
});

test('a run stopped by maxFailures is still found and resumed when its recorded message was reworded', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 40}, (_, i) => (i % 10 === 9 ? {id: `r${i}`, failCode: 3} : {id: `r${i}`})),
  );
  const job = writeJob(dir, server.address, {
    concurrency: 1,
    maxFailures: 1,
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const state = path.join(dir, 'state.db');
  const first = await runCli(['run', job, '--state', state, '--no-progress', '--json'], {cwd: dir});
  assert.equal(first.code, 1, first.stderr);
  const stopped = JSON.parse(first.stdout) as {runId: string; stop?: string};
  assert.equal(stopped.stop, 'maxFailures');
  // A later version words the message differently: resume and pruning read the stored kind, not the words.
  const db = new Database(state);
  assert.equal(db.prepare("UPDATE runs SET reason = 'gave up: too many failed records' WHERE run_id = ?").run(stopped.runId).changes, 1);
  db.close();

  const resumed = await runCli(['run', job, '--state', state, '--resume', '--max-failures', '10', '--json'], {cwd: dir});
  assert.equal(resumed.code, 1, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {runId: string; total: number; failed: number; stop?: string};
  assert.deepEqual([summary.runId, summary.total, summary.failed, summary.stop], [stopped.runId, 40, 4, undefined]);
  assert.equal(server.stats.calls, 40, 'every record sent once');
});

test('--max-failures and --max-invalid override the job keys on any run', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 40}, (_, i) => (i % 4 === 0 ? {id: `r${i}`, count: 'x'} : {id: `r${i}`, failCode: i % 4 === 1 ? 3 : 0})),
  );
  const job = writeJob(dir, server.address, {
    concurrency: 1,
    maxFailures: 1,
    maxInvalid: 1,
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const strict = await runCli(['run', job, '--json', '--max-invalid', '0', '--max-failures', '100'], {cwd: dir});
  assert.match(
    (JSON.parse(strict.stdout) as {abortReason: string}).abortReason,
    /^maxInvalid: 1 invalid records, more than the job allows \(0\)/,
  );
  const loose = await runCli(['run', job, '--json', '--max-invalid', '100', '--max-failures', '100'], {cwd: dir});
  const summary = JSON.parse(loose.stdout) as {total: number; failed: number; invalid: number; abortReason?: string};
  assert.deepEqual([summary.total, summary.failed, summary.invalid, summary.abortReason], [40, 10, 10, undefined]);
});
