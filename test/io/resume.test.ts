import assert from 'node:assert/strict';
import {appendFileSync, readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';

test('a resumed run sends only the records without a result and appends to both files', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 600}, (_, i) => ({id: `r${i}`, latencyMs: 1, ...(i % 10 === 0 ? {failCode: 5} : {})})),
  );
  const loaded = await loadJob(
    writeJob(dir, server.address, {concurrency: 8, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'}),
  );
  const stop = new AbortController();
  let seen = 0;
  const first = await runJob(
    {...loaded, spec: {...loaded.spec, onResult: () => void (++seen === 200 && stop.abort('SIGTERM'))}},
    {runId: 'run-1', signal: stop.signal},
  );
  assert.equal(first.status, 'cancelled');
  // A crash in the middle of a write leaves half a line behind; the resume must cut it off.
  appendFileSync(first.output, '{"line":99999,"status":"O');
  const checkpoints: unknown[] = [];
  const second = await runJob(loaded, {runId: 'run-1', resume: true, onCheckpoint: (c) => checkpoints.push(c)});
  assert.equal(second.output, first.output);
  assert.equal(second.total, 600);
  assert.equal(second.ok, 540);
  assert.deepEqual(second.byStatus, {OK: 540, NOT_FOUND: 60});
  const results = readJsonlFile(second.output) as {line: number}[];
  assert.deepEqual(
    results.map((r) => r.line).sort((a, b) => a - b),
    Array.from({length: 600}, (_, i) => i + 1),
    'one result line per record',
  );
  assert.equal(server.stats.calls, 600, 'no record sent twice after a graceful stop');
  assert.equal(readFileSync(second.failures!, 'utf8').split('\n').filter(Boolean).length, 60);
  assert.deepEqual(checkpoints.at(-1), {results: 600}, 'the last checkpoint counts every result line in the file');
});

test('resuming a run that read standard input is refused', async (t) => {
  const dir = tempDir(t);
  const loaded = await loadJob(writeJob(dir, '127.0.0.1:1', {input: '-'}));
  await assert.rejects(runJob(loaded, {runId: 'x', resume: true}), /standard input cannot be resumed/);
});
