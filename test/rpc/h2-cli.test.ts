import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {startDemoServer, type DemoServer} from '../../src/demo/server.js';
import {loadJob} from '../../src/jobs/load.js';
import {runJob} from '../../src/run/run.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

/** `--transport h2` end to end: the CLI as a user runs it, against the demo server (grpc-js). */

/** OK records, failing ones (NOT_FOUND), records retried to OK, invalid lines. */
function writeMixedInput(file: string, records: number): void {
  const lines: string[] = [];
  for (let i = 1; i <= records; i++) {
    if (i % 83 === 0) lines.push('not json');
    else if (i % 31 === 0) lines.push(JSON.stringify({id: `r${i}`, failCode: 5}));
    else if (i % 29 === 0) lines.push(JSON.stringify({id: `r${i}`, failFirstAttempts: 1}));
    else lines.push(JSON.stringify({id: `r${i}`, payload: 'p'.repeat(i % 40), count: i}));
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

/** Result lines without their timing, sorted: what must not depend on the transport. */
const comparable = (file: string) => (readJsonlFile(file) as Record<string, unknown>[]).map((r) => JSON.stringify({...r, latencyMs: undefined})).sort();
const sortedText = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).sort();

test('--transport h2 gives the results and failures files of the grpc-js transport, with 1 and 2 worker threads', async (t) => {
  const runs: {transport: string; workers: number; dir: string; calls: number}[] = [];
  for (const [transport, workers] of [['grpc-js', 1], ['h2', 1], ['h2', 2]] as const) {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeMixedInput(path.join(dir, 'input.jsonl'), 2000);
    const job = writeJob(dir, server.address, {concurrency: 50, retry: {maxAttempts: 2, initialBackoff: '1ms'}});
    const result = await runCli(['run', job, '--transport', transport, '--workers', String(workers), '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
    assert.equal(result.code, 1, result.stderr); // some records fail on purpose
    const summary = JSON.parse(result.stdout) as {ok: number; failed: number; invalid: number};
    assert.ok(summary.ok > 1800 && summary.failed > 0 && summary.invalid > 0, result.stdout);
    const agent = String(server.stats.lastMetadata?.['user-agent'] ?? '');
    assert.equal(/grpc-batch-h2/.test(agent), transport === 'h2', `the calls came from ${transport}: user-agent ${agent}`);
    runs.push({transport, workers, dir, calls: server.stats.calls});
  }
  const [reference, ...others] = runs;
  for (const other of others) {
    assert.equal(other.calls, reference!.calls, `calls at the server, h2 with ${other.workers} workers`);
    assert.deepEqual(comparable(path.join(other.dir, 'out/results.jsonl')), comparable(path.join(reference!.dir, 'out/results.jsonl')), `results of h2 with ${other.workers} workers`);
    assert.deepEqual(sortedText(path.join(other.dir, 'out/failed.jsonl')), sortedText(path.join(reference!.dir, 'out/failed.jsonl')), `failures of h2 with ${other.workers} workers`);
  }
});

test('h2 refuses at validation (exit 2, key named, nothing sent) a streaming method, a unix: target and a channel option it does not read', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{method: 'demo.v1.DemoService/ProcessStream'}, /transport: the h2 transport sends unary calls only; "demo.v1.DemoService\/ProcessStream" is a bidi method: use transport: grpc-js/],
    [{target: 'unix:/tmp/nope.sock'}, /target: the h2 transport does not connect to unix: sockets yet; use transport: grpc-js/],
    [{channelOptions: {'grpc.enable_retries': 0}}, /channelOptions\.grpc\.enable_retries: the h2 transport does not support this channel option; remove it, or use transport: grpc-js/],
  ];
  for (const [extra, message] of cases) {
    const job = writeJob(dir, server.address, {transport: 'h2', ...extra});
    const result = await runCli(['run', job, '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir});
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, message);
  }
  const flag = await runCli(['run', writeJob(dir, server.address), '--transport', 'h3'], {cwd: dir});
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /--transport.*h3.*grpc-js, h2/);
  assert.equal(server.stats.calls, 0);
});

test('h2, a dead backend: the run waits maxOutage and exits 4; the resume completes', async (t) => {
  const probe = await startDemoServer();
  const port = probe.port;
  await probe.stop(0);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: 300}, (_, i) => ({id: `r${i}`})));
  const jobFile = writeJob(dir, `127.0.0.1:${port}`, {concurrency: 20, maxOutage: '2s', transport: 'h2'});
  const state = path.join(dir, 'state.db');
  const first = await runCli(['run', jobFile, '--state', state, '--no-progress'], {cwd: dir, timeoutMs: 60_000});
  assert.equal(first.code, 4, first.stderr);
  assert.match(first.stdout, /interrupted/);
  assert.match(first.stderr, /waiting for the backend.*ECONNREFUSED/);
  const server = await startDemoServer({address: `127.0.0.1:${port}`});
  t.after(() => server.stop(200));
  const second = await runCli(['run', jobFile, '--resume', '--state', state, '--no-progress', '--json'], {cwd: dir, timeoutMs: 60_000});
  assert.equal(second.code, 0, second.stderr);
  const failed = readJsonlFile(path.join(dir, 'out/failed.jsonl'));
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as {line: number}[]).map((r) => r.line);
  assert.equal(new Set(lines).size, 300, 'every record has a result');
  assert.ok(failed.length <= 20, `${failed.length} records failed`);
});

test('h2, kill -9 mid-run, then --resume: one result per record, at most the calls in flight sent twice', async (t) => {
  const records = 8000;
  const concurrency = 50;
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: records}, (_, i) => ({id: `r${i + 1}`})));
  const job = writeJob(dir, server.address, {concurrency, transport: 'h2', output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const state = path.join(dir, 'state.db');
  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state]);
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 2000, 60_000, '2,000 calls at the server');
  first.child.kill('SIGKILL');
  assert.equal((await first.done).signal, 'SIGKILL');
  assert.ok(server.stats.calls < records, 'killed before the end');
  const second = spawnCli(['run', job, '--json', '--no-progress', '--state', state, '--resume']);
  t.after(() => second.child.kill('SIGKILL'));
  const resumed = await second.done;
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {total: number; ok: number; output: string};
  assert.equal(summary.ok, records);
  const lines = (readJsonlFile(summary.output) as {line: number}[]).map((r) => r.line);
  assert.equal(lines.length, records);
  assert.equal(new Set(lines).size, records);
  const seen = new Map<string, number>();
  for (const id of server.stats.ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.equal(seen.size, records);
  const twice = [...seen.values()].filter((n) => n > 1).length;
  assert.ok(twice <= concurrency, `${twice} records sent twice`);
  assert.match(String(server.stats.lastMetadata?.['user-agent']), /grpc-batch-h2/);
});

test('h2, default settings: the server stopped for 1 s mid-run and restarted on its port, every record ends OK', async (t) => {
  const first = await startServer(t);
  const port = first.port;
  const dir = tempDir(t);
  const records = 5000;
  writeJsonl(path.join(dir, 'input.jsonl'), Array.from({length: records}, (_, i) => ({id: `r${i}`})));
  const loaded = await loadJob(writeJob(dir, first.address, {transport: 'h2'}));
  let seen = 0;
  let second: DemoServer | undefined;
  let restarted: Promise<void> | undefined;
  const job = {...loaded, spec: {...loaded.spec, onResult: () => {
    if (++seen !== 1000) return;
    restarted = first.stop(0).then(() => new Promise((resolve) => setTimeout(resolve, 1000)))
      .then(() => startDemoServer({address: `127.0.0.1:${port}`}))
      .then((server) => {
        second = server;
        t.after(() => server.stop(200));
      });
  }}};
  const summary = await runJob(job);
  await restarted;
  assert.equal(summary.ok, records, JSON.stringify(summary.byStatus));
  assert.ok(second!.stats.calls > 0, 'the restarted server took calls');
  assert.ok(summary.outages.pauses >= 1, 'the pause is counted');
  assert.match(String(second!.stats.lastMetadata?.['user-agent']), /grpc-batch-h2/);
});
