import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import Database from 'better-sqlite3';
import {MIGRATIONS} from '../../src/state/migrations.js';
import {LEASE_MS, resolveStatePath, StateStore} from '../../src/state/store.js';
import {reclaimDeadRuns} from '../../src/state/lease.js';
import {RunFilesLock} from '../../src/util/file-lock.js';
import {tempDir} from '../helpers/job.js';
import {runCli} from '../helpers/cli.js';

const STORE_MODULE = fileURLToPath(new URL('../../src/state/store.ts', import.meta.url));
const LEASE_MODULE = fileURLToPath(new URL('../../src/state/lease.ts', import.meta.url));
const LOCK_MODULE = fileURLToPath(new URL('../../src/util/file-lock.ts', import.meta.url));
const TSX_ESM = import.meta.resolve('tsx/esm');

test('creates and migrates a new database in WAL mode to the latest schema version', (t) => {
  const file = path.join(tempDir(t), 'nested', 'state.db');
  const store = StateStore.open(file);
  t.after(() => store.close());
  assert.equal(store.schemaVersion, MIGRATIONS.at(-1)!.version);
  const raw = new Database(file, {readonly: true});
  t.after(() => raw.close());
  assert.equal(raw.pragma('journal_mode', {simple: true}), 'wal');
});

test('applies only the migrations a database lacks, and refuses one newer than it knows', (t) => {
  const file = path.join(tempDir(t), 'state.db');
  StateStore.open(file).close();
  const latest = MIGRATIONS.length;
  const next = [...MIGRATIONS, {version: latest + 1, description: 'test', sql: 'CREATE TABLE later_table (id TEXT PRIMARY KEY)'}];
  const upgraded = StateStore.open(file, {migrations: next});
  assert.equal(upgraded.schemaVersion, next.length);
  upgraded.close();
  assert.throws(
    () => StateStore.open(file),
    new RegExp(`schema version ${latest + 1} is newer than this grpc-batch knows \\(${latest}\\)`),
  );
});

test('records started, finished and skipped runs and lists them newest first', (t) => {
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  store.startRun({runId: 'r1', job: 'a', trigger: 'schedule', scheduledAt: 1000, startedAt: 1001});
  store.finishRun('r1', {
    status: 'failed',
    endedAt: 2000,
    total: 3,
    inputRecords: 5,
    ok: 2,
    failed: 1,
    invalid: 0,
    byStatus: {OK: 2, UNAVAILABLE: 1},
    output: '/out.jsonl',
    failures: '/failed.jsonl',
  });
  store.recordSkipped({runId: 'r2', job: 'a', trigger: 'schedule', scheduledAt: 3000, at: 3000, reason: 'still running'});
  store.startRun({runId: 'r3', job: 'b', trigger: 'manual', startedAt: Date.now() + 4000, owner: 'me'});
  assert.deepEqual(
    store.listRuns().map((r) => r.runId),
    ['r3', 'r2', 'r1'],
  );
  assert.deepEqual(
    store.listRuns({job: 'a', limit: 1}).map((r) => r.runId),
    ['r2'],
  );
  const r1 = store.getRun('r1')!;
  assert.deepEqual(
    {...r1, host: undefined, pid: undefined},
    {
      runId: 'r1',
      job: 'a',
      trigger: 'schedule',
      scheduledAt: 1000,
      createdAt: 1001,
      startedAt: 1001,
      endedAt: 2000,
      status: 'failed',
      reason: undefined,
      total: 3,
      inputRecords: 5,
      ok: 2,
      failed: 1,
      invalid: 0,
      byStatus: {OK: 2, UNAVAILABLE: 1},
      output: '/out.jsonl',
      failures: '/failed.jsonl',
      host: undefined,
      pid: undefined,
      owner: undefined,
      heartbeatAt: 1001,
    },
  );
  assert.equal(store.getRun('r2')!.reason, 'still running');
  assert.equal(store.getRun('r3')!.status, 'running');
});

test('pruneRuns keeps the newest runs of a job and never deletes one that is running or may be resumed', (t) => {
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const info = {jobFile: '/job.yaml', output: '/out.jsonl', failures: '/failed.jsonl'};
  // Oldest first: r0 stopped by maxFailures (resumable with the limit raised), r1 interrupted (resumable),
  // r2 failed, r3 cancelled (resumable), r4 skipped, r5 succeeded, r6 running.
  store.startRun({runId: 'r0', job: 'a', trigger: 'schedule', startedAt: -1});
  store.saveResumeInfo('r0', info, -1);
  store.finishRun('r0', {status: 'failed', endedAt: -1, reason: 'maxFailures: 11 records failed, more than 10', stop: 'maxFailures'});
  const statuses = ['interrupted', 'failed', 'cancelled', 'skipped', 'succeeded', 'running'] as const;
  statuses.forEach((status, i) => {
    const runId = `r${i + 1}`;
    if (status === 'skipped') return store.recordSkipped({runId, job: 'a', trigger: 'schedule', at: i, reason: 'busy'});
    store.startRun({runId, job: 'a', trigger: 'schedule', startedAt: i});
    store.saveResumeInfo(runId, info, i);
    if (status !== 'running') store.finishRun(runId, {status, endedAt: i});
  });
  store.startRun({runId: 'other', job: 'b', trigger: 'manual', startedAt: 0});
  store.finishRun('other', {status: 'succeeded', endedAt: 0});

  assert.equal(store.pruneRuns('a', 2), 2, 'r2 (failed) and r4 (skipped) go; r0, r1 and r3 may be resumed');
  assert.deepEqual(
    store.listRuns({job: 'a'}).map((r) => r.runId),
    ['r6', 'r5', 'r3', 'r1', 'r0'],
  );
  assert.ok(store.getResumeInfo('r0'), 'a run stopped by maxFailures keeps what --resume needs');
  assert.equal(store.getResumeInfo('r2'), undefined, 'the checkpoint of a deleted run goes with it');
  assert.ok(store.getResumeInfo('r1'), 'a resumable run keeps its checkpoint');
  assert.equal(store.findResumableRun('a')?.runId, 'r3');
  assert.equal(store.listRuns({job: 'b'}).length, 1, 'other jobs are untouched');
  assert.equal(store.pruneRuns('a', 2), 0, 'nothing more to delete');
});

test('a run stopped by maxFailures or maxInvalid is known by its stored kind, whatever its message says', (t) => {
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const info = {jobFile: '/job.yaml', output: '/out.jsonl', failures: '/failed.jsonl'};
  const finish = (runId: string, at: number, outcome: {reason: string; stop?: 'maxFailures' | 'maxInvalid'}) => {
    store.startRun({runId, job: 'a', trigger: 'manual', startedAt: at});
    store.saveResumeInfo(runId, info, at);
    store.finishRun(runId, {status: 'failed', endedAt: at, ...outcome});
  };
  // Reworded messages: the kind alone says these may be resumed.
  finish('reworded-failures', 1, {reason: 'too many records failed (11 > 10)', stop: 'maxFailures'});
  finish('reworded-invalid', 2, {reason: 'the input had 5 bad lines', stop: 'maxInvalid'});
  // A message that reads like a threshold stop, without the kind: a plain failed run.
  finish('text-only', 3, {reason: 'maxFailures: 11 failed records, more than the job allows (10)'});
  store.startRun({runId: 'newest', job: 'a', trigger: 'manual', startedAt: 4});
  store.finishRun('newest', {status: 'succeeded', endedAt: 4});

  assert.equal(store.getRun('reworded-failures')!.stop, 'maxFailures');
  assert.equal(store.getRun('reworded-invalid')!.stop, 'maxInvalid');
  assert.equal(store.getRun('text-only')!.stop, undefined);
  assert.equal(store.pruneRuns('a', 1), 1, 'only the plain failed run goes');
  assert.deepEqual(
    store.listRuns({job: 'a'}).map((r) => r.runId),
    ['newest', 'reworded-invalid', 'reworded-failures'],
  );
  assert.equal(store.claimRun('reworded-failures', 'me'), true, 'a maxFailures stop can be claimed to resume');
  const claimed = store.getRun('reworded-failures')!;
  assert.deepEqual(
    [claimed.status, claimed.reason, claimed.stop],
    ['running', undefined, undefined],
    'a claimed run forgets why it stopped',
  );
});

test('migration 6 gives the runs of older versions their stop kind, derived once from their status and message', (t) => {
  const file = path.join(tempDir(t), 'state.db');
  StateStore.open(file, {migrations: MIGRATIONS.filter((m) => m.version <= 5)}).close();
  const raw = new Database(file);
  const insert = raw.prepare(
    "INSERT INTO runs (run_id, job, trigger, created_at, started_at, ended_at, status, reason, host, pid) VALUES (?, 'a', 'manual', ?, ?, ?, ?, ?, 'h', 1)",
  );
  const rows: [string, string, string | null][] = [
    ['failures', 'failed', 'maxFailures: 3 failed records, more than the job allows (2)'],
    ['invalid', 'failed', 'maxInvalid: 1 invalid records, more than the job allows (0)'],
    ['failed', 'failed', null],
    ['lease', 'interrupted', 'its owner stopped renewing its lease (the process ended without recording the run)'],
    ['unlocked', 'interrupted', 'the process that ran it ended without recording the run (its files were no longer locked)'],
    ['cancelled', 'cancelled', 'SIGINT'],
    ['error', 'error', 'boom'],
    ['succeeded', 'succeeded', null],
  ];
  rows.forEach(([runId, status, reason], i) => {
    insert.run(runId, i, i, i, status, reason);
    raw
      .prepare("INSERT INTO checkpoints (run_id, job_file, output, failures, updated_at) VALUES (?, '/job.yaml', '/out', '/failed', 0)")
      .run(runId);
  });
  raw.close();

  const store = StateStore.open(file);
  t.after(() => store.close());
  assert.deepEqual(Object.fromEntries(rows.map(([runId]) => [runId, store.getRun(runId)!.stop])), {
    failures: 'maxFailures',
    invalid: 'maxInvalid',
    failed: undefined,
    lease: 'ownerGone',
    unlocked: 'ownerGone',
    cancelled: 'signal',
    error: 'error',
    succeeded: undefined,
  });
  assert.equal(store.pruneRuns('a', 0), 2, 'the plain failed and the succeeded runs go; those stopped by a threshold stay');
  assert.ok(store.getRun('failures') && store.getRun('invalid'));
});

test("migration 7 drops the checkpoints' unread low-water mark and finished lines, and keeps what --resume reads", (t) => {
  const file = path.join(tempDir(t), 'state.db');
  const old = StateStore.open(file, {migrations: MIGRATIONS.filter((m) => m.version <= 6)});
  old.startRun({
    runId: 'r1',
    job: 'a',
    trigger: 'manual',
    startedAt: 1,
    resume: {jobFile: '/job.yaml', output: '/out.jsonl', failures: '/failed.jsonl'},
  });
  old.close();
  const raw = new Database(file);
  raw.prepare("UPDATE checkpoints SET low_water = 7, done_above = '[9]', results = 8 WHERE run_id = 'r1'").run();
  raw.close();

  const store = StateStore.open(file);
  t.after(() => store.close());
  const columns = new Database(file, {readonly: true});
  t.after(() => columns.close());
  const names = (columns.pragma('table_info(checkpoints)') as {name: string}[]).map((c) => c.name);
  assert.ok(!names.includes('low_water') && !names.includes('done_above'), names.join(', '));
  assert.deepEqual([store.getResumeInfo('r1')?.output, store.getResumeInfo('r1')?.results], ['/out.jsonl', 8]);
  store.saveCheckpoint('r1', {results: 12});
  assert.equal(store.getResumeInfo('r1')?.results, 12);
});

test('history and last fired ticks survive closing and reopening the database', (t) => {
  const file = path.join(tempDir(t), 'state.db');
  const first = StateStore.open(file);
  first.startRun({runId: 'r1', job: 'a', trigger: 'manual', startedAt: 1});
  first.finishRun('r1', {status: 'succeeded', endedAt: 2});
  first.setLastTick('a', 12345);
  first.close();
  const second = StateStore.open(file, {readonly: true});
  t.after(() => second.close());
  assert.equal(second.listRuns()[0]!.status, 'succeeded');
  assert.equal(second.getLastTick('a'), 12345);
  assert.equal(second.getLastTick('unknown'), undefined);
});

test('a running run whose lease ran out is interrupted by whoever finds it, and reads as interrupted before that', (t) => {
  const store = StateStore.open(path.join(tempDir(t), 'state.db'));
  t.after(() => store.close());
  const now = Date.now();
  store.startRun({runId: 'stale', job: 'a', trigger: 'schedule', startedAt: now - LEASE_MS - 1000, owner: 'pod-a/1/aa'});
  store.startRun({runId: 'live', job: 'a', trigger: 'manual', startedAt: now - LEASE_MS - 1000, owner: 'pod-b/1/bb'});
  assert.equal(store.renewLease('live', 'pod-b/1/bb', now), true);
  assert.equal(store.renewLease('live', 'someone-else', now), false, 'only the owner renews');
  assert.equal(store.getRun('stale')!.status, 'interrupted', 'history shows it interrupted before anyone records it');
  assert.equal(store.markInterrupted(now), 1);
  assert.match(store.getRun('stale')!.reason!, /lease/);
  assert.equal(store.getRun('live')!.status, 'running', "a renewed lease keeps the run its owner's");
  assert.equal(store.claimRun('live', 'me', {now}), false, 'a live owner keeps its run');
  assert.equal(store.claimRun('stale', 'me', {now}), true);
  assert.equal(store.claimRun('stale', 'third', {now}), false, 'one owner per run: the second claim fails');
  assert.equal(store.getRun('stale')!.owner, 'me');
  assert.equal(store.finishRun('stale', {status: 'succeeded', endedAt: now}, 'third'), false, 'only the owner records the end');
  assert.equal(store.finishRun('stale', {status: 'succeeded', endedAt: now}, 'me'), true);
});

test('a running run whose files are no longer locked (its process died, any host, any pid) is interrupted at once', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'state.db');
  const script = path.join(dir, 'crash.mts');
  const output = path.join(dir, 'out', 'crashed.jsonl');
  writeFileSync(
    script,
    `import {StateStore} from ${JSON.stringify(STORE_MODULE)};
import {RunFilesLock} from ${JSON.stringify(LOCK_MODULE)};
RunFilesLock.acquire({output: ${JSON.stringify(output)}, failures: ${JSON.stringify(output + '.failed')}});
const store = StateStore.open(${JSON.stringify(file)});
store.startRun({runId: 'crashed', job: 'a', trigger: 'schedule', startedAt: Date.now(), owner: 'x', resume: {jobFile: '/job.yaml', output: ${JSON.stringify(output)}, failures: ${JSON.stringify(output + '.failed')}}});
process.exit(0);`,
  );
  await runNode(script);
  const store = StateStore.open(file);
  t.after(() => store.close());
  const mine = {output: path.join(dir, 'out', 'mine.jsonl'), failures: path.join(dir, 'out', 'mine.failed.jsonl')};
  const lock = RunFilesLock.acquire(mine);
  t.after(() => lock.release());
  store.startRun({runId: 'mine', job: 'a', trigger: 'manual', startedAt: Date.now(), owner: 'y', resume: {jobFile: '/job.yaml', ...mine}});
  assert.equal(reclaimDeadRuns(store), 1);
  assert.equal(store.getRun('crashed')!.status, 'interrupted');
  assert.equal(store.getRun('mine')!.status, 'running', 'its files are locked by a live process (this one)');
  assert.throws(() => RunFilesLock.acquire(mine), /mine\.jsonl is being written by another run/);
});

test('two processes writing the same database at once lose nothing and leave it intact', async (t) => {
  const file = path.join(tempDir(t), 'state.db');
  StateStore.open(file).close();
  const script = path.join(path.dirname(file), 'writer.mts');
  writeFileSync(
    script,
    `import {StateStore} from ${JSON.stringify(STORE_MODULE)};
import {retryBusy} from ${JSON.stringify(LEASE_MODULE)};
const store = StateStore.open(${JSON.stringify(file)});
const who = process.argv[2];
// The busy timeout is short (the event loop must not wait): a locked write is retried on timers.
for (let i = 0; i < 300; i++) {
  await retryBusy(store, () => store.startRun({runId: who + i, job: who, trigger: 'manual', startedAt: i}));
  await retryBusy(store, () => store.finishRun(who + i, {status: 'succeeded', endedAt: i + 1, total: 1, ok: 1, failed: 0, invalid: 0}));
  await retryBusy(store, () => store.setLastTick('shared', i));
}
store.close();`,
  );
  await Promise.all([runNode(script, 'one'), runNode(script, 'two')]);
  const store = StateStore.open(file);
  t.after(() => store.close());
  assert.equal(store.listRuns({job: 'one'}).length, 300);
  assert.equal(store.listRuns({job: 'two'}).length, 300);
  assert.ok(store.listRuns().every((r) => r.status === 'succeeded'));
  const raw = new Database(file, {readonly: true});
  t.after(() => raw.close());
  assert.equal(raw.pragma('integrity_check', {simple: true}), 'ok');
});

test('the state path comes from the flag, then GRPC_BATCH_STATE, then the default', () => {
  assert.deepEqual(resolveStatePath('/x/s.db', {GRPC_BATCH_STATE: '/y/s.db'}), {path: '/x/s.db', explicit: true});
  assert.deepEqual(resolveStatePath(undefined, {GRPC_BATCH_STATE: '/y/s.db'}), {path: '/y/s.db', explicit: true});
  assert.deepEqual(resolveStatePath(undefined, {}), {path: path.resolve('.grpc-batch/state.db'), explicit: false});
});

function runNode(script: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`--import=${TSX_ESM}`, script, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {...process.env, NODE_TEST_CONTEXT: undefined, NODE_OPTIONS: undefined} as NodeJS.ProcessEnv,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script} exited ${code}: ${stderr}`))));
  });
}

test('grpc-batch history shows a run whose owner stopped renewing its lease as interrupted, with why', async (t) => {
  const file = path.join(tempDir(t), 'state.db');
  const store = StateStore.open(file);
  store.startRun({runId: 'gone', job: 'a', trigger: 'manual', startedAt: Date.now() - LEASE_MS - 5000, owner: 'pod-a/1/aa'});
  store.close();
  const result = await runCli(['history', '--json', '--state', file]);
  assert.equal(result.code, 0, result.stderr);
  const [run] = JSON.parse(result.stdout) as {runId: string; status: string; reason: string}[];
  assert.deepEqual([run!.runId, run!.status], ['gone', 'interrupted']);
  assert.match(run!.reason, /stopped renewing its lease/);
});
