import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {channelArgs, DEFAULT_KEEPALIVE_TIME_MS, DEFAULT_KEEPALIVE_TIMEOUT_MS} from '../../../src/rpc/channel.js';
import {runCli, spawnCli, waitFor, type CliResult} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../../helpers/job.js';
import {startPartitionProxy, startSilentPort} from '../../helpers/partition-proxy.js';
import {startServer} from '../../helpers/server.js';

/**
 * A silent network: packets dropped, no RST, no error. grpc-js sees only calls that time out; the
 * run must pause (an outage), never fail the records, and a resume must complete every record once.
 * Counted at the server: what it received.
 */

interface Summary {
  runId: string;
  status: string;
  total: number;
  ok: number;
  failed: number;
  unfinished: number;
  byStatus: Record<string, number>;
  outages: {pauses: number; pausedMs: number};
  interruptReason?: string;
}
type Line = {line: number; status: string};

function summaryOf(result: CliResult): Summary {
  try {
    return JSON.parse(result.stdout) as Summary;
  } catch {
    throw new Error(`no JSON summary (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  }
}

function records(count: number, extra: Record<string, unknown> = {}): Record<string, unknown>[] {
  return Array.from({length: count}, (_, i) => ({id: `r${i}`, ...extra}));
}

/** Ids the server received more than once: the extra receipts. */
function repeats(ids: readonly string[]): number {
  return ids.length - new Set(ids).size;
}

/** The results file holds one OK line per record. */
function assertEveryRecordOnce(file: string, count: number): void {
  const lines = readJsonlFile(file) as Line[];
  assert.equal(lines.length, count, 'one result line per record');
  assert.equal(new Set(lines.map((l) => l.line)).size, count, 'every record has a result');
  assert.ok(
    lines.every((l) => l.status === 'OK'),
    'every result is OK',
  );
}

test('a 45 s partition with deadline 5s and maxOutage 15s: the run pauses and exits 4 with nothing failed; --resume after the heal completes every record once', async (t) => {
  const server = await startServer(t, {latencyMs: 20});
  const proxy = await startPartitionProxy(t, server.port);
  const dir = tempDir(t);
  const RECORDS = 3000;
  const CONCURRENCY = 50;
  writeJsonl(path.join(dir, 'input.jsonl'), records(RECORDS));
  const job = writeJob(dir, proxy.address, {concurrency: CONCURRENCY, deadline: '5s', maxOutage: '15s', workers: 1});
  const state = path.join(dir, 'state.db');

  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state], {cwd: dir, timeoutMs: 180_000});
  await waitFor(() => server.stats.calls >= 300, 60_000, 'the first 300 calls');
  proxy.partition();
  const partitionedAt = performance.now();
  const result = await first.done;
  const summary = summaryOf(result);
  assert.equal(result.code, 4, result.stderr);
  assert.equal(summary.status, 'interrupted');
  assert.equal(summary.failed, 0, `failed: ${JSON.stringify(summary.byStatus)}`);
  assert.ok(summary.unfinished > 0);
  assert.ok(summary.outages.pauses >= 1, 'the pause is counted');
  assert.match(summary.interruptReason!, /unreachable for .* \(maxOutage\)/);
  assert.match(result.stderr, /waiting for the backend/);
  assert.deepEqual(readJsonlFile(path.join(dir, 'out/failed.jsonl')), [], 'nothing in the failures file');
  const firstLines = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
  assert.ok(
    firstLines.every((l) => l.status === 'OK'),
    'no result line but OK ones',
  );

  // The network comes back 45 s after it went.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, partitionedAt + 45_000 - performance.now())));
  proxy.heal();
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const after = summaryOf(resumed);
  assert.equal(after.runId, summary.runId);
  assert.equal(after.status, 'succeeded');
  assertEveryRecordOnce(path.join(dir, 'out/results.jsonl'), RECORDS);
  await waitFor(() => server.stats.inFlight === 0, 30_000, 'the server to be idle');
  assert.equal(new Set(server.stats.ids).size, RECORDS, 'the server received every record');
  // Sent twice at most: the calls the partition caught (their answers never came back).
  t.diagnostic(
    `first run: ${summary.total} records read, ${summary.ok} OK, ${summary.unfinished} unfinished, paused ${summary.outages.pausedMs}ms; the server received ${server.stats.calls} calls, ${repeats(server.stats.ids)} of them a record again`,
  );
  assert.ok(repeats(server.stats.ids) <= CONCURRENCY, `${repeats(server.stats.ids)} records received twice`);
});

for (const transport of ['grpc-js', 'h2'] as const) {
  test(`a partition shorter than maxOutage (transport ${transport}): the run pauses, goes on by itself after the heal, and every record ends OK once`, async (t) => {
    const server = await startServer(t, {latencyMs: 20});
    const proxy = await startPartitionProxy(t, server.port);
    const dir = tempDir(t);
    const RECORDS = 1500;
    const CONCURRENCY = 20;
    writeJsonl(path.join(dir, 'input.jsonl'), records(RECORDS));
    const job = writeJob(dir, proxy.address, {concurrency: CONCURRENCY, deadline: '2s', maxOutage: '2m', workers: 1, transport});
    const run = spawnCli(['run', job, '--json', '--state', path.join(dir, 'state.db')], {
      cwd: dir,
      timeoutMs: 180_000,
      env: {GRPC_BATCH_LOG: 'info'},
    });
    let stderr = '';
    run.child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitFor(() => server.stats.calls >= 200, 60_000, 'the first 200 calls');
    proxy.partition();
    await waitFor(() => /waiting for the backend/.test(stderr), 60_000, 'the pause');
    const before = server.stats.calls;
    proxy.heal();
    const result = await run.done;
    const summary = summaryOf(result);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(summary.ok, RECORDS, JSON.stringify(summary.byStatus));
    assert.ok(summary.outages.pauses >= 1);
    assert.match(result.stderr, /the backend is back after/);
    assert.ok(server.stats.calls > before, 'calls went on after the heal');
    assertEveryRecordOnce(path.join(dir, 'out/results.jsonl'), RECORDS);
    assert.equal(new Set(server.stats.ids).size, RECORDS);
    assert.ok(repeats(server.stats.ids) <= CONCURRENCY, `${repeats(server.stats.ids)} records received twice`);
  });
}

test('a port that accepts TCP and never speaks HTTP/2: the run pauses and exits 4 with nothing failed; --resume against a server on that port completes every record', async (t) => {
  const silent = await startSilentPort(t);
  const dir = tempDir(t);
  const RECORDS = 200;
  writeJsonl(path.join(dir, 'input.jsonl'), records(RECORDS));
  const job = writeJob(dir, `127.0.0.1:${silent.port}`, {concurrency: 20, deadline: '2s', maxOutage: '3s', workers: 1});
  const state = path.join(dir, 'state.db');
  const first = await runCli(['run', job, '--json', '--no-progress', '--state', state], {cwd: dir, timeoutMs: 120_000});
  const summary = summaryOf(first);
  assert.equal(first.code, 4, first.stderr);
  assert.equal(summary.failed, 0, `failed: ${JSON.stringify(summary.byStatus)}`);
  assert.equal(summary.unfinished, summary.total);
  assert.ok(silent.connections > 0, 'the port was connected to');
  assert.match(
    first.stderr,
    /waiting for the backend: no connection to the backend: calls timed out .*hint: nothing answers at 127\.0\.0\.1:\d+, not even with an error/,
  );
  assert.deepEqual(readJsonlFile(path.join(dir, 'out/failed.jsonl')), []);

  await silent.close();
  const server = await startServer(t, {address: `127.0.0.1:${silent.port}`});
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  assertEveryRecordOnce(path.join(dir, 'out/results.jsonl'), RECORDS);
  assert.equal(server.stats.calls, RECORDS, 'each record received once');
});

test('a port that never speaks HTTP/2 and no deadline: the connect time-out pauses the run, which exits 4 with nothing failed', async (t) => {
  const silent = await startSilentPort(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), records(50));
  const job = writeJob(dir, `127.0.0.1:${silent.port}`, {concurrency: 10, deadline: 0, maxOutage: '2s', workers: 1});
  const result = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {
    cwd: dir,
    timeoutMs: 120_000,
  });
  const summary = summaryOf(result);
  assert.equal(result.code, 4, result.stderr);
  assert.equal(summary.failed, 0);
  assert.equal(summary.unfinished, summary.total);
  assert.match(summary.interruptReason!, /no connection after 20\.0s/);
});

test('no deadline and a partition: the keepalive of channelOptions notices the silent connection; the run pauses and every record ends OK after the heal', async (t) => {
  const server = await startServer(t, {latencyMs: 20});
  const proxy = await startPartitionProxy(t, server.port);
  const dir = tempDir(t);
  const RECORDS = 600;
  writeJsonl(path.join(dir, 'input.jsonl'), records(RECORDS));
  const job = writeJob(dir, proxy.address, {
    concurrency: 10,
    deadline: 0,
    maxOutage: '2m',
    workers: 1,
    channelOptions: {'grpc.keepalive_time_ms': 1000, 'grpc.keepalive_timeout_ms': 1000},
  });
  const run = spawnCli(['run', job, '--json', '--state', path.join(dir, 'state.db')], {
    cwd: dir,
    timeoutMs: 120_000,
    env: {GRPC_BATCH_LOG: 'info'},
  });
  let stderr = '';
  run.child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor(() => server.stats.calls >= 100, 60_000, 'the first 100 calls');
  proxy.partition();
  await waitFor(() => /waiting for the backend/.test(stderr), 60_000, 'the pause');
  proxy.heal();
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(summaryOf(result).ok, RECORDS);
  assertEveryRecordOnce(path.join(dir, 'out/results.jsonl'), RECORDS);
  assert.ok(repeats(server.stats.ids) <= 10);
});

test("channels get a keepalive by default, and the job's channelOptions override it", () => {
  const defaults = channelArgs({});
  assert.equal(defaults['grpc.keepalive_time_ms'], DEFAULT_KEEPALIVE_TIME_MS);
  assert.equal(defaults['grpc.keepalive_timeout_ms'], DEFAULT_KEEPALIVE_TIMEOUT_MS);
  assert.equal(defaults['grpc.keepalive_permit_without_calls'], undefined, 'no pings without calls: servers refuse them by default');
  const given = channelArgs({'grpc.keepalive_time_ms': 0, 'grpc.keepalive_timeout_ms': 5000});
  assert.equal(given['grpc.keepalive_time_ms'], 0);
  assert.equal(given['grpc.keepalive_timeout_ms'], 5000);
});

test('a backend slow for some records while it answers the others: those records fail DEADLINE_EXCEEDED as before, with no pause', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  // Every 10th record takes 3 s against a 1 s deadline; the others answer at once.
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 200}, (_, i) => ({id: `r${i}`, ...(i % 10 === 0 ? {latencyMs: 3000} : {})})),
  );
  const job = writeJob(dir, server.address, {concurrency: 20, deadline: '1s', maxOutage: '1m', workers: 1});
  const result = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {
    cwd: dir,
    timeoutMs: 120_000,
  });
  const summary = summaryOf(result);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(summary.byStatus['DEADLINE_EXCEEDED'], 20);
  assert.equal(summary.ok, 180);
  assert.equal(summary.outages.pauses, 0);
  assert.equal(readJsonlFile(path.join(dir, 'out/failed.jsonl')).length, 20);
});

for (const transport of ['grpc-js', 'h2'] as const) {
  test(`a backend up but slower than the deadline for every record (transport ${transport}): the records fail DEADLINE_EXCEEDED (the probe finds it answering), with no pause`, async (t) => {
    const server = await startServer(t, {latencyMs: 1500});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), records(30));
    const job = writeJob(dir, server.address, {concurrency: 10, deadline: '500ms', maxOutage: '1m', workers: 1, transport});
    const result = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {
      cwd: dir,
      timeoutMs: 120_000,
    });
    const summary = summaryOf(result);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(summary.byStatus['DEADLINE_EXCEEDED'], 30);
    assert.equal(summary.outages.pauses, 0);
    assert.equal(server.stats.calls, 30, 'each record sent once');
  });
}

// --- a host that drops SYNs: a network namespace of the test's own (root only) ---------------------

/** Why the namespace test cannot run here, or undefined. */
function noNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (creates a network namespace)';
  try {
    execFileSync('ip', ['-V'], {stdio: 'ignore'});
  } catch {
    return 'needs the ip command (iproute2)';
  }
  return undefined;
}

/**
 * A network namespace with a veth pair: the test's server listens on the host end (10.213.X.1),
 * the CLI runs inside the namespace (10.213.X.2). `dropSyns()` adds a blackhole route to the CLI's
 * address on the host side: SYNs arrive and are never answered, as from a host that drops them.
 * Everything is removed when the test ends.
 */
function makeNamespace(t: TestContext): {name: string; serverIp: string; dropSyns(): void; heal(): void} {
  const id = process.pid % 100_000;
  const name = `gbsyn${id}`;
  const octet = process.pid % 256;
  const serverIp = `10.213.${octet}.1`;
  const clientIp = `10.213.${octet}.2`;
  const ip = (...args: string[]) => execFileSync('ip', args, {stdio: ['ignore', 'ignore', 'pipe']});
  let blackhole = false;
  const heal = () => {
    if (!blackhole) return;
    blackhole = false;
    ip('route', 'del', 'blackhole', `${clientIp}/32`);
  };
  t.after(() => {
    try {
      heal();
    } finally {
      ip('netns', 'del', name); // takes the veth pair with it
    }
  });
  ip('netns', 'add', name);
  ip('link', 'add', `gbs${id}h`, 'type', 'veth', 'peer', 'name', `gbs${id}n`, 'netns', name);
  ip('addr', 'add', `${serverIp}/30`, 'dev', `gbs${id}h`);
  ip('link', 'set', `gbs${id}h`, 'up');
  ip('-n', name, 'addr', 'add', `${clientIp}/30`, 'dev', `gbs${id}n`);
  ip('-n', name, 'link', 'set', `gbs${id}n`, 'up');
  ip('-n', name, 'link', 'set', 'lo', 'up');
  return {
    name,
    serverIp,
    dropSyns() {
      ip('route', 'add', 'blackhole', `${clientIp}/32`);
      blackhole = true;
    },
    heal,
  };
}

test('a host that drops SYNs (a network namespace): the run pauses and exits 4 with nothing failed and nothing sent; --resume after the heal completes every record once', {
  skip: noNamespaces(),
}, async (t) => {
  const ns = makeNamespace(t);
  const server = await startServer(t, {address: `${ns.serverIp}:0`});
  const dir = tempDir(t);
  const RECORDS = 200;
  writeJsonl(path.join(dir, 'input.jsonl'), records(RECORDS));
  const job = writeJob(dir, server.address, {concurrency: 20, deadline: '2s', maxOutage: '4s', workers: 1});
  const state = path.join(dir, 'state.db');
  ns.dropSyns();
  const first = await runCli(['run', job, '--json', '--no-progress', '--state', state], {
    cwd: dir,
    timeoutMs: 120_000,
    prefix: ['ip', 'netns', 'exec', ns.name],
  });
  const summary = summaryOf(first);
  assert.equal(first.code, 4, first.stderr);
  assert.equal(summary.failed, 0, `failed: ${JSON.stringify(summary.byStatus)}`);
  assert.equal(summary.unfinished, summary.total);
  assert.equal(server.stats.calls, 0, 'nothing reached the server');
  assert.deepEqual(readJsonlFile(path.join(dir, 'out/failed.jsonl')), []);

  ns.heal();
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {
    cwd: dir,
    timeoutMs: 120_000,
    prefix: ['ip', 'netns', 'exec', ns.name],
  });
  assert.equal(resumed.code, 0, resumed.stderr);
  assertEveryRecordOnce(path.join(dir, 'out/results.jsonl'), RECORDS);
  assert.equal(server.stats.calls, RECORDS, 'each record received once');
});
