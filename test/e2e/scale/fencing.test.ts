import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {appendFileSync, cpSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {Queue} from 'bullmq';
import Database from 'better-sqlite3';
import {spawnCli, waitFor} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {REDIS_URL, redisPrefix, startWorkers, stderrOf, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

/**
 * Two coordinators that cannot see each other's file locks (two hosts; here a mount namespace of
 * the second's own, `unshare -m`, with a folder bind-mounted over the first's): only the Redis
 * lease and its generation keep them apart. Needs root (or CAP_SYS_ADMIN) for the namespace.
 */
const NAMESPACES = spawnSync('unshare', ['-m', '--propagation', 'private', 'true']).status === 0;
const SKIP = NAMESPACES ? false : 'needs unshare -m (root or CAP_SYS_ADMIN) to give a coordinator file locks the other cannot see';

/** The command prefix that runs the CLI with `from` bind-mounted over `over` (and in it, when it is the working folder). */
function mountedOver(from: string, over: string): string[] {
  return [
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$1" "$2" && cd "$PWD" && shift 2 && exec "$@"',
    'sh',
    from,
    over,
  ];
}

function writeInput(file: string, records: number): void {
  writeFileSync(file, Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i + 1}`})).join('\n') + '\n');
}

/** What the state database says of a run: its status and owner, and its checkpoint. */
function stateRow(file: string, runId?: string): {run_id: string; status: string; owner: string | null; results: number | null} {
  const db = new Database(file, {readonly: true, fileMustExist: true});
  try {
    return db
      .prepare(
        `SELECT runs.run_id, runs.status, runs.owner, checkpoints.results FROM runs JOIN checkpoints USING (run_id)${runId ? ' WHERE run_id = ?' : ''} ORDER BY runs.created_at DESC`,
      )
      .get(...(runId ? [runId] : [])) as never;
  } finally {
    db.close();
  }
}

test('two coordinators with a copy of one state database: the second generation wins and the first, frozen past its lease, writes nothing after (exit 3)', {
  skip: SKIP,
}, async (t) => {
  const server = await startServer(t, {latencyMs: 5});
  const {prefix, redis} = await redisPrefix(t);
  const dirA = tempDir(t);
  const dirB = tempDir(t);
  const records = 4000;
  writeInput(path.join(dirA, 'input.jsonl'), records);
  const workers = startWorkers(t, 2, {prefix, chunks: 2});
  await workersReady(workers);
  const jobFile = writeJob(dirA, server.address, {concurrency: 8});
  const args = [
    '--redis',
    REDIS_URL,
    '--prefix',
    prefix,
    '--chunk-size',
    '200',
    '--no-progress',
    '--json',
    '--log-format',
    'json',
    '--state',
    path.join(dirA, 'state.db'),
  ];
  const a = spawnCli(['run', jobFile, ...args], {cwd: dirA, timeoutMs: 180_000, env: {GRPC_BATCH_LOG: 'info'}});
  t.after(() => {
    a.child.kill('SIGCONT');
    a.child.kill('SIGKILL');
  });
  const resultsA = path.join(dirA, 'out/results.jsonl');
  await waitFor(() => readJsonlFile(resultsA).length >= 600, 90_000, 'the first coordinator to merge 600 results');
  // Frozen (a long GC pause, a VM stall) between two merges: a merge its check let through before
  // the freeze would finish after it (a check and a file write are not one step). The workers are
  // held meanwhile, and the freeze comes once every chunk they finished is merged.
  const queue = new Queue('chunks', {connection: redis, prefix});
  t.after(() => queue.close());
  for (const worker of workers) worker.child.kill('SIGSTOP');
  let quiet = 0;
  while (quiet < 3) {
    quiet = (await queue.getJobCounts('completed')).completed === 0 ? quiet + 1 : 0;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  a.child.kill('SIGSTOP');
  for (const worker of workers) worker.child.kill('SIGCONT');
  const runId = stateRow(path.join(dirA, 'state.db')).run_id;
  // The second coordinator's host: a copy of the folder, state database and results included, at the same path.
  cpSync(dirA, dirB, {recursive: true});
  const frozenBytes = readFileSync(resultsA);
  const frozenRow = stateRow(path.join(dirA, 'state.db'), runId);
  const b = spawnCli(['run', jobFile, ...args, '--resume'], {
    cwd: dirA,
    timeoutMs: 180_000,
    prefix: mountedOver(dirB, dirA),
    env: {GRPC_BATCH_LOG: 'info'},
  });
  t.after(() => b.child.kill('SIGKILL'));
  const resumed = await b.done;
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as {ok: number}).ok, records);
  assert.match(resumed.stderr, /"event":"run:lease".*"generation":2/);
  const lines = (readJsonlFile(path.join(dirB, 'out/results.jsonl')) as {line: number}[]).map((l) => l.line);
  assert.equal(lines.length, records, "one result line per record (the second coordinator's file)");
  assert.equal(new Set(lines).size, records);
  const callsAtEnd = server.stats.calls;
  // The first wakes up: it finds another generation at its first check, stops at once, exit 3.
  a.child.kill('SIGCONT');
  const first = await a.done;
  assert.equal(first.code, 3, first.stderr);
  assert.match(first.stderr, /was taken over by another coordinator|is no longer in Redis/);
  assert.match(first.stderr, /wrote nothing more/);
  const partial = JSON.parse(first.stdout) as {status: string};
  assert.equal(partial.status, 'interrupted', 'its summary on stdout (--json)');
  // Nothing written after the takeover: not a byte of its results file, not its state database (no checkpoint, no end)...
  assert.ok(readFileSync(resultsA).equals(frozenBytes), 'the first coordinator wrote to its results file after the takeover');
  assert.deepEqual(
    stateRow(path.join(dirA, 'state.db'), runId),
    frozenRow,
    'the first coordinator wrote to its state database after the takeover',
  );
  // ...and nothing queued again: no call after the second's end, no chunk left in Redis.
  assert.deepEqual(await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized'), {
    waiting: 0,
    active: 0,
    delayed: 0,
    prioritized: 0,
  });
  assert.equal(server.stats.calls, callsAtEnd, 'calls made after the first coordinator woke up');
  // Repeats: the chunks in flight at the freeze (at most 8 of 200), run again once by a worker whose lock lapsed while held.
  assert.ok(callsAtEnd - records <= 2 * 8 * 200, `${callsAtEnd - records} calls repeated`);
  t.diagnostic(`calls ${callsAtEnd} for ${records} records`);
});

test('a second --resume of a live distributed run, on a host that cannot see its file locks, is refused (exit 2) and changes nothing: the live run stays running and completes', {
  skip: SKIP,
}, async (t) => {
  const server = await startServer(t, {latencyMs: 40});
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  const copy = tempDir(t);
  const records = 2400;
  writeInput(path.join(dir, 'input.jsonl'), records);
  const workers = startWorkers(t, 1, {prefix, chunks: 4});
  await workersReady(workers);
  const jobFile = writeJob(dir, server.address, {concurrency: 4});
  const state = path.join(dir, 'state.db');
  const args = ['--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', '100', '--no-progress', '--json', '--state', state];
  const live = spawnCli(['run', jobFile, ...args], {cwd: dir, timeoutMs: 180_000});
  t.after(() => live.child.kill('SIGKILL'));
  const liveLog = stderrOf(live);
  const results = path.join(dir, 'out/results.jsonl');
  await waitFor(() => readJsonlFile(results).length >= 100, 90_000, 'the live run to merge its first chunk');
  const before = stateRow(state);
  assert.equal(before.status, 'running');
  // The other host's view of out/: a copy (its locks are not the live run's), with lines to spare
  // so the resume's check of the results file against the checkpoint passes whenever it reads it.
  mkdirSync(path.join(copy, 'out'));
  cpSync(path.join(dir, 'out'), path.join(copy, 'out'), {recursive: true});
  const last = readFileSync(results, 'utf8').trimEnd().split('\n').at(-1)!;
  appendFileSync(path.join(copy, 'out/results.jsonl'), `${last}\n`.repeat(records));
  // The state database is shared (the same file): only the Redis lease keeps the second out.
  const second = spawnCli(['run', jobFile, ...args, '--resume'], {
    cwd: dir,
    timeoutMs: 120_000,
    prefix: mountedOver(path.join(copy, 'out'), path.join(dir, 'out')),
  });
  t.after(() => second.child.kill('SIGKILL'));
  const refused = await second.done;
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, new RegExp(`run ${before.run_id} is driven by another coordinator \\(pid ${live.child.pid} on `));
  const after = stateRow(state);
  assert.equal(after.status, 'running', 'the live run is still recorded running');
  assert.equal(after.owner, before.owner, 'and still owned by the live coordinator');
  const done = await live.done;
  assert.equal(done.code, 0, `${done.stderr}${liveLog()}`);
  assert.equal((JSON.parse(done.stdout) as {ok: number}).ok, records);
  assert.equal(stateRow(state).status, 'succeeded', "the live run's end is recorded");
  assert.doesNotMatch(liveLog(), /state:lease-lost/);
});
