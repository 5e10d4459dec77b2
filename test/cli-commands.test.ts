import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {startServer} from './helpers/server.js';
import {tempDir, writeJob, writeJsonl} from './helpers/job.js';
import {runCli} from './helpers/cli.js';

test('demo runs a job against its own loopback server and reports the sequential estimate', async () => {
  const result = await runCli(['demo', '-n', '300', '--latency', '1ms', '-c', '20', '--json'], {timeoutMs: 60_000});
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {total: number; ok: number; retried: number; byStatus: Record<string, number>; sequentialEstimateMs: number};
  assert.equal(summary.total, 300);
  assert.equal(summary.ok, 300);
  assert.ok(summary.retried > 0, 'the demo input has transient UNAVAILABLEs that retries fix');
  assert.ok(summary.sequentialEstimateMs > 0);
});

test('run --dry-run checks every record and sends nothing; exit 1 when a record is invalid', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b', count: 'x'}, {id: 'c'}]);
  const job = writeJob(dir, server.address);
  const bad = await runCli(['run', job, '--dry-run', '--json'], {cwd: dir});
  assert.equal(bad.code, 1);
  assert.deepEqual(JSON.parse(bad.stdout), {job: 'test', dryRun: true, target: server.address, method: 'demo.v1.DemoService/Process', total: 3, invalid: 1});
  assert.match(bad.stderr, /input\.jsonl:2: count: expected an integer/);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'c'}]);
  const good = await runCli(['run', job, '--dry-run'], {cwd: dir});
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /dry run, nothing sent: 2 records, 0 invalid/);
  assert.equal(server.stats.calls, 0);
});
