import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
// What a program gets from `import {run, loadJob} from 'grpc-batch'` (package.json "exports" points at its build).
import {loadJob, run, UsageError, type LoadedJob} from '../../src/index.js';
import {runCli, waitFor} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

type HistoryRun = {runId: string; job: string; status: string; total?: number; ok?: number};

async function history(state: string): Promise<HistoryRun[]> {
  const listed = await runCli(['history', '--state', state, '--json'], {timeoutMs: 60_000});
  assert.equal(listed.code, 0, listed.stderr);
  return JSON.parse(listed.stdout) as HistoryRun[];
}

/** The job, with an `onResult` that holds every result after the `after`th until `gate` opens: the run waits there, its slots held. */
function heldAfter(job: LoadedJob, after: number): {job: LoadedJob; seen: () => number; open: () => void} {
  let seen = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  return {job: {...job, spec: {...job.spec, onResult: () => (++seen >= after ? gate : undefined)}}, seen: () => seen, open};
}

test("the library's run does what grpc-batch run does: recorded, leased, stopped by an AbortSignal, resumed to completion", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 300;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`})),
  );
  const jobFile = writeJob(dir, server.address, {concurrency: 4}); // one results file: out/results.jsonl
  const state = path.join(dir, 'state.db');
  const job = await loadJob(jobFile);

  const held = heldAfter(job, 100);
  const stop = new AbortController();
  const first = run(held.job, {state, runId: 'lib-1', signal: stop.signal});
  t.after(() => held.open());
  await waitFor(() => held.seen() >= 100, 60_000, 'the first 100 results');

  // While it runs: recorded, and held (its lease and its files' lock) against the library and the CLI alike.
  const running = (await history(state)).find((r) => r.runId === 'lib-1');
  assert.equal(running?.status, 'running', 'history shows the run while it runs');
  await assert.rejects(
    run(job, {state, resume: 'lib-1'}),
    (error: unknown) => error instanceof UsageError && /run lib-1 is still running/.test(error.message),
  );
  await assert.rejects(
    run(job, {state}),
    (error: unknown) => error instanceof UsageError && /results\.jsonl is being written by another run/.test(error.message),
  );
  const cli = await runCli(['run', jobFile, '--json', '--no-progress', '--state', state, '--resume', 'lib-1'], {timeoutMs: 60_000});
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, /run lib-1 is still running/);
  const calls = server.stats.calls;

  stop.abort('stopped by the program');
  held.open();
  const stopped = await first;
  assert.equal(stopped.status, 'cancelled');
  assert.equal(stopped.stopReason, 'stopped by the program');
  assert.ok(stopped.total < RECORDS, `the run stopped early (${stopped.total} of ${RECORDS})`);
  assert.equal(server.stats.calls, calls, 'the refused runs sent nothing');
  const ended = (await history(state)).filter((r) => r.job === 'test');
  assert.deepEqual(
    ended.map((r) => [r.runId, r.status]),
    [['lib-1', 'cancelled']],
    'one run recorded, cancelled; the refused ones left nothing',
  );

  const resumed = await run(job, {state, resume: true});
  assert.equal(resumed.runId, 'lib-1');
  assert.equal(resumed.status, 'succeeded');
  assert.deepEqual([resumed.total, resumed.ok], [RECORDS, RECORDS], 'the summary counts the whole run');
  const sent = new Map<string, number>();
  for (const id of server.stats.ids) sent.set(id, (sent.get(id) ?? 0) + 1);
  assert.equal(sent.size, RECORDS, 'every record reached the server');
  assert.deepEqual(
    [...sent.values()].filter((n) => n > 1),
    [],
    'each record once',
  );
  const lines = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as {line: number}[]).map((r) => r.line);
  assert.deepEqual(
    lines.sort((a, b) => a - b),
    Array.from({length: RECORDS}, (_, i) => i + 1),
    'one result line per record',
  );
  const done = (await history(state)).find((r) => r.runId === 'lib-1');
  assert.deepEqual([done?.status, done?.ok], ['succeeded', RECORDS]);
});

test("the library's run with state: false records nothing and still locks its files", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 20}, (_, i) => ({id: `r${i + 1}`})),
  );
  const job = await loadJob(writeJob(dir, server.address, {concurrency: 2}));
  const state = path.join(dir, 'state.db');
  const held = heldAfter(job, 2);
  const first = run(held.job, {state: false});
  t.after(() => held.open());
  await waitFor(() => held.seen() >= 2, 60_000, 'two results');
  await assert.rejects(run(job, {state: false}), /results\.jsonl is being written by another run/);
  held.open();
  assert.equal((await first).ok, 20);
  assert.deepEqual(await history(state), [], 'nothing recorded');
});
