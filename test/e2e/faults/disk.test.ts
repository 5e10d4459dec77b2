import assert from 'node:assert/strict';
import {execFileSync, spawn} from 'node:child_process';
import {mkdtempSync, rmdirSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {PACKAGE_ROOT} from '../../../src/util/paths.js';
import {StateStore} from '../../../src/state/store.js';
import {runCli, spawnCli, waitFor} from '../../helpers/cli.js';
import {event, startDaemon, writeDaemonJob} from '../../helpers/daemon.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../../helpers/job.js';
import {startServer} from '../../helpers/server.js';

/** A fresh tmpfs of `size`; unmounted and removed when the test ends. */
function mountTmpfs(t: TestContext, size: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'grpc-batch-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  t.after(() => {
    execFileSync('umount', [dir]);
    rmdirSync(dir);
  });
  return dir;
}

test('a full disk under the results file: exit 3 naming the file and ENOSPC, summary printed, run recorded interrupted; --resume completes once there is room', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const out = mountTmpfs(t, '2m');
  const RECORDS = 4000;
  // Each response echoes its 1 KiB id: about 4 MiB of results for a 2 MiB disk.
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}-${'x'.repeat(1000)}`})),
  );
  const job = writeJob(dir, server.address, {concurrency: 20, output: `${out}/{runId}.jsonl`, failures: `${out}/{runId}.failed.jsonl`});
  const state = path.join(dir, 'state.db');
  const full = await runCli(['run', job, '--json', '--no-progress', '--state', state], {timeoutMs: 60_000});
  assert.equal(full.code, 3, full.stderr);
  assert.match(full.stderr, /grpc-batch-tmpfs-\w+\/[^ ]+\.jsonl: ENOSPC: no space left on device/);
  assert.doesNotMatch(full.stderr, /this is a bug/);
  const partial = JSON.parse(full.stdout) as {runId: string; output: string; total: number};
  assert.ok(partial.total < RECORDS, 'the run stopped');
  const store = StateStore.open(state, {readonly: true});
  const run = store.getRun(partial.runId)!;
  store.close();
  assert.equal(run.status, 'interrupted');
  assert.match(run.reason!, /ENOSPC/);
  assert.equal(run.stop, 'io');
  assert.ok(readJsonlFile(partial.output).length > 0, 'what fitted is whole lines only (no line cut in two)');

  execFileSync('mount', ['-o', 'remount,size=64m', out]);
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {timeoutMs: 60_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {runId: string; ok: number};
  assert.deepEqual([summary.runId, summary.ok], [partial.runId, RECORDS]);
  const lines = readJsonlFile(partial.output) as {line: number; status: string}[];
  assert.equal(lines.length, RECORDS, 'one result line per record');
  assert.equal(new Set(lines.map((l) => l.line)).size, RECORDS);
  assert.equal(new Set(server.stats.ids).size, RECORDS, 'every record was sent');
});

/** Another process takes the state database's write lock and holds it for `holdMs`. */
function holdStateLock(t: TestContext, file: string, holdMs: number): {locked: Promise<void>; released: Promise<void>} {
  const script = `const Database = require(${JSON.stringify(path.join(PACKAGE_ROOT, 'node_modules', 'better-sqlite3'))});
const db = new Database(${JSON.stringify(file)});
db.exec('BEGIN IMMEDIATE');
db.exec("UPDATE job_ticks SET updated_at = updated_at");
console.log('locked');
setTimeout(() => { db.exec('COMMIT'); console.log('released'); db.close(); }, ${holdMs});`;
  const child = spawn(process.execPath, ['-e', script], {stdio: ['ignore', 'pipe', 'inherit']});
  t.after(() => void child.kill('SIGKILL'));
  let out = '';
  const seen = (word: string) =>
    new Promise<void>((resolve) =>
      child.stdout.setEncoding('utf8').on('data', (c: string) => ((out += c), out.includes(word) && resolve())),
    );
  return {locked: seen('locked'), released: seen('released')};
}

/** Calls the server answered in each second while `during` runs. */
async function callsPerSecond(server: {stats: {calls: number}}, during: Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  let done = false;
  void during.then(() => (done = true));
  let last = server.stats.calls;
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    samples.push(server.stats.calls - last);
    last = server.stats.calls;
  }
  return samples;
}

test('another process holding the state database locked past the busy timeout: calls keep flowing every second, none times out, the run is recorded', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 6000;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: 10})),
  );
  const job = writeJob(dir, server.address, {
    concurrency: 10,
    deadline: '1s',
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const state = path.join(dir, 'state.db');
  const cli = spawnCli(['run', job, '--json', '--no-progress', '--state', state]);
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 300, 30_000, '300 calls');
  const lock = holdStateLock(t, state, 3500);
  await lock.locked;
  const perSecond = await callsPerSecond(server, lock.released);
  assert.ok(
    perSecond.length >= 3 && perSecond.every((n) => n > 0),
    `calls per second while the database was locked: ${perSecond.join(', ')}`,
  );
  const result = await cli.done;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {runId: string; ok: number; byStatus: Record<string, number>};
  assert.deepEqual(summary.byStatus, {OK: RECORDS}, 'no DEADLINE_EXCEEDED');
  const store = StateStore.open(state, {readonly: true});
  t.after(() => store.close());
  assert.equal(store.getRun(summary.runId)!.status, 'succeeded', 'its end was recorded once the lock was released');
});

test('the daemon keeps answering /healthz and its run keeps calling while another process holds the state database', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 6000}, (_, i) => ({id: `r${i + 1}`, latencyMs: 10})),
  );
  writeDaemonJob(dir, 'steady', server.address, {schedule: '0 0 1 1 *', concurrency: 10, deadline: '1s'});
  const state = path.join(dir, 'state.db');
  const daemon = startDaemon(t, [dir, '--state', state, '--http', '127.0.0.1:0'], dir);
  await daemon.waitFor(event('scheduler:started'));
  const base = `http://${(await daemon.waitFor(event('http:listening'))).address as string}`;
  assert.equal((await fetch(`${base}/jobs/steady/run`, {method: 'POST'})).status, 202);
  await waitFor(() => server.stats.calls >= 300, 30_000, '300 calls');
  const lock = holdStateLock(t, state, 3500);
  await lock.locked;
  const health: number[] = [];
  const probing = (async () => {
    let released = false;
    void lock.released.then(() => (released = true));
    while (!released) {
      health.push((await fetch(`${base}/healthz`, {signal: AbortSignal.timeout(1000)})).status);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  const perSecond = await callsPerSecond(server, lock.released);
  await probing;
  assert.ok(health.length >= 5 && health.every((s) => s === 200), `/healthz answers: ${health.join(', ')}`);
  assert.ok(
    perSecond.every((n) => n > 0),
    `calls per second: ${perSecond.join(', ')}`,
  );
  const finished = await daemon.waitFor(event('run:finished', 'steady'), 60_000);
  assert.equal(finished['status'], 'succeeded');
  daemon.signal('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
});

test("the state database's disk fills up mid-run: exit 3 naming the state database, nothing failed for it; --resume completes once there is room", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const stateDir = mountTmpfs(t, '1m');
  const state = path.join(stateDir, 'state.db');
  const RECORDS = 20_000;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: 5})),
  );
  const job = writeJob(dir, server.address, {concurrency: 20, output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const cli = spawnCli(['run', job, '--json', '--no-progress', '--state', state]);
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 1000, 30_000, '1,000 calls');
  // The next checkpoint appends to the database's write-ahead log: no room left for it.
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${path.join(stateDir, 'filler')}`, 'bs=64k'], {stdio: 'ignore'});
  } catch {
    // dd stops at ENOSPC: the disk is full
  }
  const full = await cli.done;
  assert.equal(full.code, 3, full.stderr);
  assert.match(full.stderr, /state database .*state\.db.*SQLITE_FULL|state database .*state\.db.*full/i);
  assert.doesNotMatch(full.stderr, /this is a bug/);
  assert.match(
    full.stderr,
    /its end could not be recorded, and --resume takes it as interrupted/,
    'it does not claim a record the full disk refused',
  );
  const partial = JSON.parse(full.stdout) as {runId: string; total: number; failed: number; output: string};
  assert.ok(partial.total < RECORDS, 'the run stopped');
  assert.equal(partial.failed, 0, 'no record failed for the full disk');

  rmSync(path.join(stateDir, 'filler'));
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {timeoutMs: 60_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {runId: string; ok: number};
  assert.deepEqual([summary.runId, summary.ok], [partial.runId, RECORDS]);
  const lines = (readJsonlFile(partial.output) as {line: number}[]).map((l) => l.line);
  assert.equal(lines.length, RECORDS, 'one result line per record');
  assert.equal(new Set(lines).size, RECORDS);
  assert.equal(new Set(server.stats.ids).size, RECORDS, 'every record was sent');
  assert.ok(server.stats.calls - RECORDS <= 20, `${server.stats.calls - RECORDS} records sent twice (bound: the 20 in flight)`);
});
