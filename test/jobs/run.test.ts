import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob} from '../../src/jobs/load.js';
import {runJob} from '../../src/jobs/run.js';
import {startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';

test('sends every record once and reports them all OK', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: 500}, (_, i) => ({id: `r${i}`})));
  const job = await loadJob(writeJob(dir, server.address, {concurrency: 20}));
  const summary = await runJob(job);
  assert.equal(summary.status, 'succeeded');
  assert.equal(summary.total, 500);
  assert.equal(summary.ok, 500);
  assert.deepEqual(summary.byStatus, {OK: 500});
  assert.equal(server.stats.calls, 500);
  assert.deepEqual(new Set(server.stats.ids), new Set(Array.from({length: 500}, (_, i) => `r${i}`)));
  const results = readJsonlFile(path.join(dir, 'out/results.jsonl')) as {line: number; status: string}[];
  assert.equal(results.length, 500);
  assert.deepEqual(results.map((r) => r.line).sort((a, b) => a - b), Array.from({length: 500}, (_, i) => i + 1));
  assert.equal(summary.failures, undefined);
});

test('never has more calls in flight at the server than the concurrency limit', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: 300}, (_, i) => ({id: `r${i}`, latencyMs: 5})));
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {concurrency: 7})));
  assert.equal(summary.ok, 300);
  assert.equal(server.stats.maxInFlight, 7);
});
