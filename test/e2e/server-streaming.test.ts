import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {LEDGER_METHOD, LEDGER_PROTO, startLedgerServer} from '../helpers/ledger-server.js';

const RECORDS = 1000;
const CONCURRENCY = 20;
const countOf = (i: number) => (i * 7) % 51; // 0 to 50 replies

test('a server-streaming method over 1,000 records with 0-50 replies each: kill -9 and --resume write every reply once, in order', async (t) => {
  const server = await startLedgerServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({account: `a${i + 1}`, count: countOf(i + 1)})),
  );
  const job = writeJob(dir, server.address, {
    proto: LEDGER_PROTO,
    method: LEDGER_METHOD,
    concurrency: CONCURRENCY,
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const state = path.join(dir, 'state.db');
  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state], {cwd: dir, timeoutMs: 240_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 300, 180_000, '300 calls at the server');
  first.child.kill('SIGKILL');
  assert.equal((await first.done).signal, 'SIGKILL');
  assert.ok(server.stats.calls < RECORDS, 'killed before the end');

  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {cwd: dir, timeoutMs: 240_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {ok: number; total: number; output: string; replies: number};
  assert.deepEqual([summary.total, summary.ok], [RECORDS, RECORDS]);
  let replies = 0;
  for (let line = 1; line <= RECORDS; line++) replies += countOf(line);
  assert.equal(summary.replies, replies, 'the summary counts the replies, those written before the kill included');
  const results = readJsonlFile(summary.output) as {line: number; response: {account: string; index?: number}[]}[];
  assert.equal(results.length, RECORDS, 'one results line per record');
  assert.equal(new Set(results.map((r) => r.line)).size, RECORDS);
  for (const result of results) {
    const expected = Array.from({length: countOf(result.line)}, (_, index) => index);
    assert.deepEqual(
      result.response.map((entry) => entry.index ?? 0),
      expected,
      `line ${result.line}: every reply once, in order`,
    );
    assert.ok(result.response.every((entry) => entry.account === `a${result.line}`));
  }
  assert.equal(server.stats.byAccount.size, RECORDS, 'every record was sent');
  const twice = [...server.stats.byAccount.values()].filter((n) => n > 1).length;
  assert.ok(twice <= CONCURRENCY, `${twice} records were sent twice; at most the ${CONCURRENCY} in flight may be`);
});

test('maxRepliesPerRecord fails a record whose stream has more replies; the key is refused for a method that is not server-streaming', async (t) => {
  const server = await startLedgerServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [
    {account: 'small', count: 3},
    {account: 'big', count: 40},
  ]);
  const job = writeJob(dir, server.address, {proto: LEDGER_PROTO, method: LEDGER_METHOD, maxRepliesPerRecord: 10, retry: {maxAttempts: 1}});
  const run = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
  assert.equal(run.code, 1, run.stderr);
  const results = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as {
    line: number;
    status: string;
    error?: string;
    response?: unknown[];
  }[];
  const byLine = new Map(results.map((r) => [r.line, r]));
  assert.equal(byLine.get(1)?.response?.length, 3);
  assert.equal(byLine.get(2)?.status, 'RESOURCE_EXHAUSTED');
  assert.match(byLine.get(2)?.error ?? '', /more than maxRepliesPerRecord \(10\) replies/);

  const unary = writeJob(dir, server.address, {maxRepliesPerRecord: 10}, 'unary.yaml');
  const refused = await runCli(['run', unary, '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /maxRepliesPerRecord: applies to server-streaming methods only; "demo\.v1\.DemoService\/Process" is a unary method/,
  );
});
