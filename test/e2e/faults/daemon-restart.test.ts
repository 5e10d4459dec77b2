import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {runCli, waitFor} from '../../helpers/cli.js';
import {event, podWrap, startDaemon, writeDaemonJob} from '../../helpers/daemon.js';
import {tempDir, writeJsonl} from '../../helpers/job.js';
import {startServer} from '../../helpers/server.js';

interface HistoryRow {
  runId: string;
  status: string;
  total?: number;
  ok?: number;
  output?: string;
  host: string;
  pid: number;
}

async function history(state: string, dir: string): Promise<HistoryRow[]> {
  return JSON.parse((await runCli(['history', '--json', '--state', state], {cwd: dir})).stdout) as HistoryRow[];
}

/** A daemon killed with -9 mid-run in pod A, started again in pod B: B resumes the run and completes it. */
async function killAndRestart(t: TestContext, podA: string, podB: string): Promise<void> {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 400;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: 10})),
  );
  writeDaemonJob(dir, 'nightly', server.address, {schedule: '* * * * * *', concurrency: 4});
  const state = path.join(dir, 'state.db');
  const first = startDaemon(t, [dir, '--state', state], dir, {wrap: podWrap(podA)});
  const started = await first.waitFor(event('run:started', 'nightly'));
  await waitFor(() => server.stats.calls >= 60, 30_000, '60 calls');
  first.signal('SIGKILL'); // unshare dies, and with --kill-child the daemon, PID 1 of its namespace
  await first.exited;
  const before = (await history(state, dir)).find((r) => r.runId === started.runId)!;
  assert.deepEqual([before.host, before.pid], [podA, 1], 'the run was recorded by PID 1 of pod A');
  // No new runs from now on: only the resume may send anything.
  writeDaemonJob(dir, 'nightly', server.address, {schedule: '* * * * * *', concurrency: 4, enabled: false});
  const second = startDaemon(t, [dir, '--state', state], dir, {wrap: podWrap(podB)});
  const resuming = await second.waitFor(event('run:resuming', 'nightly'));
  assert.equal(resuming.runId, started.runId);
  const finished = await second.waitFor((l) => event('run:finished', 'nightly')(l) && l.runId === started.runId, 60_000);
  assert.equal(finished['status'], 'succeeded');
  second.signal('SIGTERM');
  await second.exited;
  const run = (await history(state, dir)).find((r) => r.runId === started.runId)!;
  assert.deepEqual([run.status, run.total, run.ok, run.host, run.pid], ['succeeded', RECORDS, RECORDS, podB, 1]);
  const lines = readFileSync(run.output!, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as {line: number}).line);
  assert.equal(lines.length, RECORDS);
  assert.equal(new Set(lines).size, RECORDS);
  const sent = new Map<string, number>();
  for (const id of server.stats.ids) sent.set(id, (sent.get(id) ?? 0) + 1);
  assert.equal(sent.size, RECORDS);
  assert.ok([...sent.values()].filter((n) => n > 1).length <= 4, 'at most the calls in flight were sent twice');
}

test('a daemon killed with -9 and restarted as PID 1 under another hostname (a new pod) resumes and completes the run', async (t) => {
  await killAndRestart(t, 'pod-a', 'pod-b');
});

test('a daemon killed with -9 and restarted as PID 1 again under the same hostname (a restarted container) resumes and completes the run', async (t) => {
  await killAndRestart(t, 'pod', 'pod');
});

test('--grace running out cancels the calls in flight without a result; the next start resends them: every record OK', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 12;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`, latencyMs: i < 2 ? 0 : 1500})),
  );
  writeDaemonJob(dir, 'slow', server.address, {schedule: '* * * * * *', concurrency: 10});
  const state = path.join(dir, 'state.db');
  const first = startDaemon(t, [dir, '--state', state, '--grace', '200ms'], dir);
  const started = await first.waitFor(event('run:started', 'slow'));
  await waitFor(() => server.stats.inFlight === 10, 30_000, '10 calls in flight');
  first.signal('SIGTERM');
  assert.equal((await first.exited).code, 0);
  await waitFor(() => server.stats.byStatus['CANCELLED'] === 10, 10_000, 'the server saw 10 calls cancelled');
  const cut = (await history(state, dir)).find((r) => r.runId === started.runId)!;
  assert.equal(cut.status, 'interrupted');
  assert.equal(readFileSync(cut.output!, 'utf8').split('\n').filter(Boolean).length, 2, 'only the two answered records have a result line');

  writeDaemonJob(dir, 'slow', server.address, {schedule: '* * * * * *', concurrency: 10, enabled: false});
  const second = startDaemon(t, [dir, '--state', state], dir);
  const finished = await second.waitFor((l) => event('run:finished', 'slow')(l) && l.runId === started.runId, 30_000);
  assert.equal(finished['status'], 'succeeded');
  second.signal('SIGTERM');
  await second.exited;
  const run = (await history(state, dir)).find((r) => r.runId === started.runId)!;
  assert.deepEqual([run.status, run.total, run.ok], ['succeeded', RECORDS, RECORDS]);
  const results = readFileSync(run.output!, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as {line: number; status: string});
  assert.equal(results.length, RECORDS);
  assert.ok(
    results.every((r) => r.status === 'OK'),
    'no CANCELLED result: every record ends OK',
  );
});
