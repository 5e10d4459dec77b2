import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {startServer} from '../helpers/server.js';
import {tempDir, writeJob} from '../helpers/job.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';

const MiB = 1024 * 1024;
const RECORDS = 600;
/** Records whose line is longer than the default 4MiB limit: one early, two late (after the stop). */
const LONG = new Set([3, 450, 590]);

test('Ctrl-C of a run started with --max-line-bytes 16MiB --workers 2 prints a --resume that keeps both, and it completes the run', async (t) => {
  const server = await startServer(t, {serverOptions: {'grpc.max_receive_message_length': 16 * MiB}});
  const dir = tempDir(t);
  const long = 'x'.repeat(4 * MiB + 1024);
  const lines = Array.from({length: RECORDS}, (_, i) =>
    JSON.stringify({id: `r${i}`, latencyMs: 20, ...(LONG.has(i) ? {payload: long} : {})}),
  );
  writeFileSync(path.join(dir, 'input.jsonl'), lines.join('\n') + '\n');
  const job = writeJob(dir, server.address, {concurrency: 4, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const state = path.join(dir, 'state.db');
  const cli = spawnCli(['run', job, '--no-progress', '--state', state, '--max-line-bytes', '16MiB', '--workers', '2'], {cwd: dir});
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 30, 60_000, '30 calls at the server');
  cli.child.kill('SIGINT');
  const {code, stdout, stderr} = await cli.done;
  assert.equal(code, 130, stderr);
  const next = /^ {2}next {6}(grpc-batch run .*)$/m.exec(stdout)?.[1];
  assert.ok(next, stdout);
  assert.match(next, / --max-line-bytes \S+/, 'the printed command keeps --max-line-bytes');
  assert.match(next, / --workers 2( |$)/, 'the printed command keeps --workers');
  assert.match(next, / --resume \S+$/);
  const before = server.stats.calls;
  assert.ok(before < RECORDS, `stopped before the end: ${before} calls`);

  const resumed = await runCli([...next.split(' ').slice(1), '--json'], {cwd: dir, timeoutMs: 180_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {ok: number; invalid: number; failed: number};
  assert.equal(summary.invalid, 0, 'no line was refused as too long');
  assert.equal(summary.failed, 0);
  assert.equal(summary.ok, RECORDS);
  const seen = new Map<string, number>();
  for (const id of server.stats.ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.equal(seen.size, RECORDS, 'every record reached the server');
  assert.deepEqual(
    [...seen].filter(([, n]) => n !== 1),
    [],
    'and each once',
  );
  for (const i of LONG) assert.equal(seen.get(`r${i}`), 1, `the long line r${i} was sent`);
});
