import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {startServer} from '../helpers/server.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {CLI_COMMAND, runCli} from '../helpers/cli.js';

test('demo runs a job against its own loopback server and reports the sequential estimate', async () => {
  const result = await runCli(['demo', '-n', '300', '--latency', '1ms', '-c', '20', '--json'], {timeoutMs: 60_000});
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {
    total: number;
    ok: number;
    retried: number;
    byStatus: Record<string, number>;
    sequentialEstimateMs: number;
  };
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
  assert.deepEqual(JSON.parse(bad.stdout), {
    job: 'test',
    dryRun: true,
    target: server.address,
    method: 'demo.v1.DemoService/Process',
    total: 3,
    invalid: 1,
  });
  assert.match(bad.stderr, /input\.jsonl:2: count: expected an integer/);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'c'}]);
  const good = await runCli(['run', job, '--dry-run'], {cwd: dir});
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /dry run, nothing sent: 2 records, 0 invalid/);
  assert.equal(server.stats.calls, 0);
});

test('progress: JSON progress lines on stderr when not on a terminal, at --progress-interval', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 60}, (_, i) => ({id: `r${i}`, latencyMs: 20})),
  );
  const result = await runCli(['run', writeJob(dir, server.address, {concurrency: 2}), '--progress-interval', '100ms'], {
    cwd: dir,
    env: {GRPC_BATCH_LOG: 'info'},
  });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stderr
    .split('\n')
    .filter((l) => l.includes('"run:progress"'))
    .map((l) => JSON.parse(l) as {msg: string});
  assert.ok(lines.length >= 3, `progress lines: ${lines.length}`);
  assert.match(lines.at(-1)!.msg, /^progress: 60\/60 done, 60 ok, 0 failed, 0 invalid, 0 in flight, \d+\/s, ETA 0s$/);
});

test('progress: a bar on a terminal', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 40}, (_, i) => ({id: `r${i}`, latencyMs: 20})),
  );
  const job = writeJob(dir, server.address, {concurrency: 2});
  // `script` gives the CLI a pseudo-terminal, so stderr is a TTY as in a shell.
  const cli = `${CLI_COMMAND.map((word) => JSON.stringify(word)).join(' ')} run ${JSON.stringify(job)}`;
  const {spawn} = await import('node:child_process');
  const env = {...process.env, GRPC_BATCH_LOG: 'warn'} as NodeJS.ProcessEnv;
  delete env['NODE_TEST_CONTEXT'];
  delete env['NODE_OPTIONS'];
  // Not spawnSync: the server runs in this process and must go on answering.
  const child = spawn('script', ['-qec', cli, '/dev/null'], {cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe']});
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const result = {status, stdout};
  assert.equal(result.status, 0, result.stdout);
  assert.match(result.stdout, /100% \| 40\/40 \| \d+\/s \| ETA 0s \| failed 0 \| in flight 0/);
  assert.match(result.stdout, /✔ test succeeded/);
});
