import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli} from '../helpers/cli.js';
import {startH2StreamServer} from '../helpers/h2-stream-server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

type Line = {
  line: number;
  status: string;
  attempts: number;
  code?: number;
  error?: string;
  response?: {id?: string; count?: number; ids?: string[]};
};
type Summary = {status: string; total: number; ok: number; failed: number; attempts: number; byStatus: Record<string, number>};

const BIDI = 'demo.v1.DemoService/ProcessStream';
const BATCH = 'demo.v1.DemoService/ProcessBatch';

async function run(dir: string, job: string) {
  const result = await runCli(['run', job, '--json', '--no-progress'], {cwd: dir});
  const summary = result.stdout ? (JSON.parse(result.stdout) as Summary) : undefined;
  const results = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
  return {result, summary, results, byLine: new Map(results.map((r) => [r.line, r]))};
}

test('grpc-batch run on a bidi method: every record answered in its own result line, over the streams asked for', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 300}, (_, i) => ({id: `r${i + 1}`, latencyMs: i % 3})),
  );
  const {result, summary, results, byLine} = await run(dir, writeJob(dir, server.address, {method: BIDI, concurrency: 30, streams: 3}));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summary?.ok, 300);
  assert.equal(results.length, 300);
  for (let line = 1; line <= 300; line++) assert.equal(byLine.get(line)?.response?.id, `r${line}`, `line ${line} has its own answer`);
  assert.equal(server.stats.streams, 3);
  assert.equal(server.stats.calls, 300);
  assert.ok(server.stats.maxInFlight <= 30);
});

test('a bidi stream the server ends mid-run: its records are retried by the retry policy, each ends with one result line', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  // Every 50th record ends its stream with UNAVAILABLE on its first attempt.
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 300}, (_, i) => ({id: `r${i + 1}`, failFirstAttempts: i % 50 === 49 ? 1 : 0})),
  );
  const {result, summary, results, byLine} = await run(
    dir,
    writeJob(dir, server.address, {method: BIDI, concurrency: 40, streams: 2, retry: {maxAttempts: 3, initialBackoff: '1ms'}}),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summary?.ok, 300);
  assert.equal(results.length, 300);
  assert.equal(byLine.size, 300);
  for (let line = 1; line <= 300; line++) assert.equal(byLine.get(line)?.response?.id, `r${line}`);
  assert.ok(summary!.attempts > 300, 'the records of the broken streams went out again');
  // Attempts count sends: a record sent on a stream the server had just ended never reached it.
  assert.ok(server.stats.calls <= summary!.attempts);
  assert.ok(server.stats.streams > 2, 'broken streams were replaced');
});

test('a bidi stream reset mid-run without retries: the unanswered records are in the failures file, exactly as input', async (t) => {
  const server = await startH2StreamServer(t, {how: 'reset', breakAfter: 25, breaks: 1});
  const dir = tempDir(t);
  const input = Array.from({length: 200}, (_, i) => ({id: `r${i + 1}`}));
  writeJsonl(path.join(dir, 'input.jsonl'), input);
  const {result, summary, results} = await run(dir, writeJob(dir, server.address, {method: BIDI, concurrency: 20, streams: 2}));
  assert.equal(result.code, 1, result.stderr);
  assert.equal(results.length, 200);
  const failed = results.filter((r) => r.status !== 'OK');
  assert.ok(failed.length >= 1);
  assert.ok(
    failed.every((r) => r.status === 'INTERNAL' && /the stream ended before this record's answer/.test(r.error!)),
    JSON.stringify(failed[0]),
  );
  assert.equal(summary?.failed, failed.length);
  const failures = readFileSync(path.join(dir, 'out/failed.jsonl'), 'utf8').trim().split('\n');
  assert.deepEqual(failures.sort(), failed.map((r) => JSON.stringify(input[r.line - 1])).sort());
  assert.equal(summary!.ok + summary!.failed, 200);
});

test('a bidi stream reset mid-run with INTERNAL retryable: every record ends OK, with one result line each', async (t) => {
  const server = await startH2StreamServer(t, {how: 'reset', breakAfter: 25, breaks: 2});
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 200}, (_, i) => ({id: `r${i + 1}`})),
  );
  const retry = {maxAttempts: 3, initialBackoff: '1ms', retryableStatusCodes: ['UNAVAILABLE', 'INTERNAL']};
  const {result, summary, results, byLine} = await run(
    dir,
    writeJob(dir, server.address, {method: BIDI, concurrency: 20, streams: 2, retry}),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summary?.ok, 200);
  assert.equal(byLine.size, 200);
  assert.equal(results.length, 200);
  for (let line = 1; line <= 200; line++) assert.equal(byLine.get(line)?.response?.id, `r${line}`);
  assert.equal(server.counts.broken, 2);
  // The record each reset stream was reading reached the server twice; the others behind it, once or twice.
  assert.ok([...server.seen.values()].filter((n) => n > 1).length >= 2);
  assert.ok(summary!.attempts > 200, 'the unanswered records of the reset streams went out again');
  assert.ok([...server.seen.values()].reduce((a, b) => a + b, 0) <= summary!.attempts);
});

test('grpc-batch run on a client-streaming method: records go in batches of batchSize, each gets its batch response', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 95}, (_, i) => ({id: `r${i + 1}`})),
  );
  const {result, summary, results} = await run(dir, writeJob(dir, server.address, {method: BATCH, concurrency: 20, batchSize: 10}));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summary?.ok, 95);
  assert.equal(results.length, 95);
  for (const line of results) assert.ok(line.response?.ids?.includes(`r${line.line}`), `line ${line.line} is in its batch`);
  assert.equal(server.stats.calls, 95);
  assert.ok(server.stats.streams >= 10, `at least ceil(95 / 10) calls, got ${server.stats.streams}`);
  assert.ok(results.every((line) => line.response!.count! <= 10));
});

test('a bidi run on 2 worker threads: each thread has its share of the streams, every record answered once', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 400}, (_, i) => ({id: `r${i + 1}`})),
  );
  const {result, summary, results, byLine} = await run(
    dir,
    writeJob(dir, server.address, {method: BIDI, concurrency: 40, streams: 4, workers: 2}),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summary?.ok, 400);
  assert.equal(results.length, 400);
  for (let line = 1; line <= 400; line++) assert.equal(byLine.get(line)?.response?.id, `r${line}`);
  assert.equal(server.stats.streams, 4, 'two streams per worker thread');
  assert.equal(server.stats.calls, 400);
});
