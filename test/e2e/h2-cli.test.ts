import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

/**
 * `--transport h2` end to end: the CLI as a user runs it, against the demo server (grpc-js). The
 * outage, maxOutage, adaptive, pushback, TLS, metadata, rich-error and kill -9/resume tests run on both
 * transports where they are (`for (const transport of TRANSPORTS)`).
 */

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
const comparable = (file: string) =>
  (readJsonlFile(file) as Record<string, unknown>[]).map((r) => JSON.stringify({...r, latencyMs: undefined})).sort();
const sortedText = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).sort();

test('--transport h2 gives the results and failures files of the grpc-js transport, with 1 and 2 worker threads', async (t) => {
  const runs: {transport: string; workers: number; dir: string; calls: number}[] = [];
  for (const [transport, workers] of [
    ['grpc-js', 1],
    ['h2', 1],
    ['h2', 2],
  ] as const) {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeMixedInput(path.join(dir, 'input.jsonl'), 2000);
    const job = writeJob(dir, server.address, {concurrency: 50, retry: {maxAttempts: 2, initialBackoff: '1ms'}});
    const result = await runCli(
      [
        'run',
        job,
        '--transport',
        transport,
        '--workers',
        String(workers),
        '--json',
        '--no-progress',
        '--state',
        path.join(dir, 'state.db'),
      ],
      {cwd: dir, timeoutMs: 120_000},
    );
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
    assert.deepEqual(
      comparable(path.join(other.dir, 'out/results.jsonl')),
      comparable(path.join(reference!.dir, 'out/results.jsonl')),
      `results of h2 with ${other.workers} workers`,
    );
    assert.deepEqual(
      sortedText(path.join(other.dir, 'out/failed.jsonl')),
      sortedText(path.join(reference!.dir, 'out/failed.jsonl')),
      `failures of h2 with ${other.workers} workers`,
    );
  }
});

test('h2 refuses at validation (exit 2, key named, nothing sent) a streaming method, a unix: target and a channel option it does not read', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      {method: 'demo.v1.DemoService/ProcessStream'},
      /transport: the h2 transport sends unary calls only; "demo.v1.DemoService\/ProcessStream" is a bidi method: use transport: grpc-js/,
    ],
    [{target: 'unix:/tmp/nope.sock'}, /target: the h2 transport does not connect to unix: sockets yet; use transport: grpc-js/],
    [
      {channelOptions: {'grpc.enable_retries': 0}},
      /channelOptions\.grpc\.enable_retries: the h2 transport does not support this channel option; remove it, or use transport: grpc-js/,
    ],
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
