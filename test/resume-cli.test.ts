import assert from 'node:assert/strict';
import {appendFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {startServer} from './helpers/server.js';
import {tempDir, writeJob, writeJsonl} from './helpers/job.js';
import {runCli, spawnCli, waitFor} from './helpers/cli.js';

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
  const input = writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: 400}, (_, i) => ({id: `s${i}`, latencyMs: 50})));
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
  assert.match(resumed.stderr, /input\.jsonl changed since run \S+ started \(size \d+ -> \d+ bytes\); resuming would skip the wrong records/);
  assert.equal(server.stats.calls, calls);
});
