import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {PACKAGE_ROOT} from '../../../src/util/paths.js';
import {runCli, spawnCli, waitFor} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../../helpers/job.js';
import {startServer} from '../../helpers/server.js';

/** A proto of thousands of messages around the demo service: seconds to load, like a real monorepo's. */
function writeSlowProto(dir: string): string {
  const messages = Array.from(
    {length: 4000},
    (_, i) => `message M${i} { ${Array.from({length: 12}, (_, j) => `string f${j} = ${j + 1};`).join(' ')} }`,
  );
  const file = path.join(dir, 'big.proto');
  writeFileSync(file, ['syntax = "proto3";', 'package big.v1;', 'import "demo/v1/demo.proto";', ...messages].join('\n'));
  return file;
}

function sentCounts(ids: readonly string[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  return seen;
}

test('two --resume of one run started a second apart (slow-to-load proto): one refuses, one result line per record', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 3000;
  const CONCURRENCY = 20;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: 20})),
  );
  const job = writeJob(dir, server.address, {
    concurrency: CONCURRENCY,
    proto: writeSlowProto(dir),
    importPaths: [path.join(PACKAGE_ROOT, 'proto')],
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const state = path.join(dir, 'state.db');
  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state]);
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 500, 60_000, '500 calls');
  first.child.kill('SIGKILL');
  await first.done;

  const a = spawnCli(['run', job, '--json', '--no-progress', '--state', state, '--resume']);
  t.after(() => a.child.kill('SIGKILL'));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const b = spawnCli(['run', job, '--json', '--no-progress', '--state', state, '--resume']);
  t.after(() => b.child.kill('SIGKILL'));
  const results = await Promise.all([a.done, b.done]);
  const codes = results.map((r) => r.code).sort();
  assert.deepEqual(codes, [0, 2], results.map((r) => r.stderr).join('\n'));
  const refused = results.find((r) => r.code === 2)!;
  assert.match(refused.stderr, /is still running|is being resumed by another process|is being written by another run/);
  const summary = JSON.parse(results.find((r) => r.code === 0)!.stdout) as {total: number; ok: number; output: string};
  assert.equal(summary.ok, RECORDS);
  const lines = (readJsonlFile(summary.output) as {line: number}[]).map((r) => r.line);
  assert.equal(lines.length, RECORDS, 'one result line per record');
  assert.equal(new Set(lines).size, RECORDS);
  const sent = sentCounts(server.stats.ids);
  assert.equal(sent.size, RECORDS);
  const twice = [...sent.values()].filter((n) => n > 1).length;
  assert.ok(twice <= CONCURRENCY, `${twice} records sent twice; only the ${CONCURRENCY} in flight at the kill may be`);
});

test('-t given at the start and omitted at --resume: the resumed run calls the recorded target', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 2000;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: 2})),
  );
  // The job file names a dead address: only -t reaches the server.
  const job = writeJob(dir, '127.0.0.1:1', {concurrency: 10, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const state = path.join(dir, 'state.db');
  const first = spawnCli(['run', job, '-t', server.address, '-c', '4', '--json', '--no-progress', '--state', state]);
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 200, 60_000, '200 calls');
  first.child.kill('SIGKILL');
  await first.done;
  const maxBefore = server.stats.maxInFlight;
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {timeoutMs: 60_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {ok: number; failed: number};
  assert.deepEqual([summary.ok, summary.failed], [RECORDS, 0], 'every record went to the recorded target');
  assert.equal(sentCounts(server.stats.ids).size, RECORDS);
  assert.ok(server.stats.maxInFlight <= 4 && maxBefore <= 4, "the recorded -c 4 held too, not the job file's 10");
});

test('two runs naming one results file: the second refuses before writing anything, the first completes intact', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 20;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    // The first 4 records are quick (the second run starts once they arrived); the rest keep the
    // first run going some 20 s, far longer than a CLI takes to start on a loaded machine.
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: i < 4 ? 300 : 2500})),
  );
  const job = writeJob(dir, server.address, {concurrency: 2, output: 'out/fixed.jsonl', failures: 'out/fixed.failed.jsonl'});
  const state = path.join(dir, 'state.db');
  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state]);
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 4, 30_000, 'the first run going');
  const second = await runCli(['run', job, '--json', '--no-progress', '--state', state]);
  assert.equal(second.code, 2, second.stderr);
  assert.match(second.stderr, /out\/fixed\.jsonl is being written by another run: two runs cannot share a results or failures file/);
  const done = await first.done;
  assert.equal(done.code, 0, done.stderr);
  const bytes = readFileSync(path.join(dir, 'out', 'fixed.jsonl'));
  assert.equal(bytes.indexOf(0), -1, 'no NUL bytes');
  assert.equal(readJsonlFile(path.join(dir, 'out', 'fixed.jsonl')).length, RECORDS);
  assert.equal(server.stats.calls, RECORDS, 'the refused run sent nothing');
});
