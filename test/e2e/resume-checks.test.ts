import assert from 'node:assert/strict';
import {readFileSync, renameSync, statSync, utimesSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {loadJob, type LoadedJob} from '../../src/config/load.js';
import {DEMO_METHOD} from '../../src/util/paths.js';
import {jobChange, recordedJob} from '../../src/state/resumable.js';
import {startServer} from '../helpers/server.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';

const MiB = 1024 * 1024;
const FILES = {output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'};
/** 120 records, every 20th failing: with `maxFailures: 2` and one call at a time the run stops after line 60, resumable. */
const RECORDS = Array.from({length: 120}, (_, i) => (i % 20 === 19 ? {id: `r${i}`, failCode: 3} : {id: `r${i}`}));

/** A run of `job` stopped by maxFailures after 60 of 120 records (exit 1): its run id. */
async function stoppedRun(t: TestContext, extra: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const server = await startServer(t);
  const dir = tempDir(t);
  const input = writeJsonl(path.join(dir, 'input.jsonl'), RECORDS);
  const jobFields = {concurrency: 1, maxFailures: 2, ...FILES, ...extra};
  const job = writeJob(dir, server.address, jobFields);
  const state = path.join(dir, 'state.db');
  const first = await runCli(['run', job, '--state', state, '--no-progress'], {cwd: dir, env});
  assert.equal(first.code, 1, first.stderr);
  const runId = /\(run (\S+)\)/.exec(first.stdout)![1]!;
  assert.equal(server.stats.calls, 60);
  return {server, dir, input, job, jobFields, state, runId, results: path.join(dir, 'out', `${runId}.jsonl`)};
}

test("a job module's credential-looking metadata is compared by presence; other keys by a hash of their value", async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const loaded = await loadJob(
    writeJob(dir, '127.0.0.1:1', {metadata: {'x-tenant': 'acme', authorization: 'Bearer ${TOKEN}'}}),
    {},
    {TOKEN: 'one'},
  );
  const asModule = (metadata: Record<string, string>): LoadedJob => ({
    ...loaded,
    spec: {...loaded.spec, file: path.join(dir, 'job.ts'), metadata},
    unexpanded: {dir, metadata, tls: undefined},
  });
  const recorded = recordedJob(asModule({'x-tenant': 'acme', authorization: 'Bearer one'}));
  assert.equal(recorded.metadata['authorization'], 'set');
  assert.doesNotMatch(JSON.stringify(recorded), /acme|one/);
  assert.equal(
    jobChange('r1', recorded, asModule({'x-tenant': 'acme', authorization: 'Bearer two'})),
    undefined,
    'a rotated token is no change',
  );
  assert.equal(
    jobChange('r1', recorded, asModule({'x-tenant': 'globex', authorization: 'Bearer two'})),
    'metadata changed since run r1 started: x-tenant changed',
  );
  assert.equal(jobChange('r1', recorded, asModule({'x-tenant': 'acme'})), 'metadata changed since run r1 started: authorization removed');
  // A job file: the value as written (${TOKEN}, not the token) is hashed.
  const file = recordedJob(loaded);
  const rotated = await loadJob(loaded.spec.file, {}, {TOKEN: 'two'});
  assert.equal(jobChange('r1', file, rotated), undefined);
  assert.notEqual(file.metadata['authorization'], 'set');
});

test('--resume of a run that read standard input (-i -) is refused, and its next step says it cannot be resumed', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  // The job's own input is another data set: a resume must not take it for what -i - read.
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 50}, (_, i) => ({id: `other${i}`})),
  );
  const job = writeJob(dir, server.address, {concurrency: 1, maxFailures: 2, ...FILES});
  const state = path.join(dir, 'state.db');
  const stdin = RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const first = await runCli(['run', job, '-i', '-', '--state', state, '--no-progress'], {cwd: dir, stdin});
  assert.equal(first.code, 1, first.stderr);
  const runId = /\(run (\S+)\)/.exec(first.stdout)![1]!;
  assert.match(first.stdout, /the run cannot be resumed \(it read standard input/);
  assert.doesNotMatch(first.stdout, /--resume/);
  assert.equal(server.stats.calls, 60);

  const resumed = await runCli(['run', job, '--state', state, '--resume', '--max-failures', '100'], {cwd: dir});
  assert.equal(resumed.code, 2, resumed.stdout);
  assert.match(
    resumed.stderr,
    new RegExp(`run ${runId} read standard input: its records are gone and it cannot be resumed; save the input to a file`),
  );
  assert.equal(server.stats.calls, 60, 'nothing sent');
  assert.ok(!server.stats.ids.some((id) => id.startsWith('other')), "the job's own input was not sent under the run");
});

test('--resume refuses a job whose method or metadata changed since the run started, naming the difference', async (t) => {
  const env = {TOKEN: 'one'};
  const run = await stoppedRun(t, {metadata: {'x-tenant': 'acme', authorization: 'Bearer ${TOKEN}'}}, env);
  const resume = ['run', run.job, '--state', run.state, '--resume', '--max-failures', '100'];

  writeJob(run.dir, run.server.address, {
    ...run.jobFields,
    metadata: {'x-tenant': 'acme', authorization: 'Bearer ${TOKEN}'},
    method: DEMO_METHOD.replace(/Process$/, 'ProcessBatch'),
  });
  const method = await runCli(resume, {cwd: run.dir, env});
  assert.equal(method.code, 2, method.stdout);
  assert.match(
    method.stderr,
    new RegExp(
      `method changed since run ${run.runId} started: demo\\.v1\\.DemoService/Process -> demo\\.v1\\.DemoService/ProcessBatch; .*start a new run`,
    ),
  );

  writeJob(run.dir, run.server.address, {
    ...run.jobFields,
    metadata: {'x-tenant': 'globex', 'x-new': '1', authorization: 'Bearer ${TOKEN}'},
  });
  const metadata = await runCli(resume, {cwd: run.dir, env});
  assert.equal(metadata.code, 2, metadata.stdout);
  assert.match(metadata.stderr, new RegExp(`metadata changed since run ${run.runId} started: x-tenant changed, x-new added`));
  assert.doesNotMatch(metadata.stderr, /globex|acme/, 'values are not shown');
  assert.equal(run.server.stats.calls, 60, 'nothing sent');

  // The job as it was, with its token rotated (the value of ${TOKEN} is not what is compared): resumed.
  writeJob(run.dir, run.server.address, {...run.jobFields, metadata: {'x-tenant': 'acme', authorization: 'Bearer ${TOKEN}'}});
  const same = await runCli([...resume, '--json'], {cwd: run.dir, env: {TOKEN: 'two'}});
  assert.equal(same.code, 1, same.stderr);
  assert.equal((JSON.parse(same.stdout) as {total: number}).total, 120);
  assert.equal(run.server.stats.calls, 120);
  assert.doesNotMatch(readFileSync(run.state).toString('latin1'), /Bearer one|Bearer two/, 'no secret in the state database');
});

test('--resume --input OTHER (or other results files) is refused with why, not ignored', async (t) => {
  const run = await stoppedRun(t, {output: undefined, failures: undefined}); // the default files, under --out-dir
  writeJsonl(path.join(run.dir, 'other.jsonl'), [{id: 'x1'}, {id: 'x2'}]);
  const resumed = await runCli(['run', run.job, '--state', run.state, '--resume', '--max-failures', '100', '--input', 'other.jsonl'], {
    cwd: run.dir,
  });
  assert.equal(resumed.code, 2, resumed.stdout);
  assert.match(
    resumed.stderr,
    new RegExp(
      `--input other\\.jsonl cannot be given with --resume: run ${run.runId} read \\S*input\\.jsonl, and its records are matched to their results by line`,
    ),
  );
  const output = await runCli(['run', run.job, '--state', run.state, '--resume', '--max-failures', '100', '--output', 'elsewhere.jsonl'], {
    cwd: run.dir,
  });
  assert.equal(output.code, 2, output.stdout);
  assert.match(output.stderr, /--output elsewhere\.jsonl cannot be given with --resume/);
  const failures = await runCli(
    ['run', run.job, '--state', run.state, '--resume', '--max-failures', '100', '--failures', 'elsewhere.failed.jsonl'],
    {cwd: run.dir},
  );
  assert.equal(failures.code, 2, failures.stdout);
  assert.match(failures.stderr, /--failures elsewhere\.failed\.jsonl cannot be given with --resume/);
  const outDir = await runCli(['run', run.job, '--state', run.state, '--resume', '--max-failures', '100', '--out-dir', 'other'], {
    cwd: run.dir,
  });
  assert.equal(outDir.code, 2, outDir.stdout);
  assert.match(outDir.stderr, /--out-dir other cannot be given with --resume: run \S+ writes \S+ and \S+, which it appends to/);
  assert.equal(run.server.stats.calls, 60, 'nothing sent');
  // Its own files and input, named again, are honoured.
  const same = await runCli(
    ['run', run.job, '--state', run.state, '--resume', '--max-failures', '100', '--out-dir', 'out', '--input', 'input.jsonl', '--json'],
    {cwd: run.dir},
  );
  assert.equal(same.code, 1, same.stderr);
  assert.equal(run.server.stats.calls, 120, 'every record sent once');
});

test('a results file moved away or cut short before --resume is refused with the numbers; put back, the run completes', async (t) => {
  const run = await stoppedRun(t);
  const resume = ['run', run.job, '--state', run.state, '--resume', '--max-failures', '100'];
  const kept = readFileSync(run.results, 'utf8');
  renameSync(run.results, path.join(run.dir, 'moved.jsonl'));
  const moved = await runCli(resume, {cwd: run.dir});
  assert.equal(moved.code, 2, moved.stdout);
  assert.match(
    moved.stderr,
    new RegExp(
      `run ${run.runId}'s results file \\S+ is gone, but the state database recorded 60 results in it: resuming would send those 60 records again\\. Put the file back, or start a new run`,
    ),
  );

  writeFileSync(run.results, kept.split('\n').slice(0, 30).join('\n') + '\n');
  const short = await runCli(resume, {cwd: run.dir});
  assert.equal(short.code, 2, short.stdout);
  assert.match(
    short.stderr,
    /has 30 result lines, but the state database recorded 60 at the run's last checkpoint: resuming would send 30 records again/,
  );
  assert.equal(run.server.stats.calls, 60, 'nothing sent');

  writeFileSync(run.results, kept);
  const resumed = await runCli([...resume, '--json'], {cwd: run.dir});
  assert.equal(resumed.code, 1, resumed.stderr);
  assert.equal(run.server.stats.calls, 120, 'every record sent once');
  assert.equal(new Set(run.server.stats.ids).size, 120);
});

test('an input edited without changing its size or mtime is refused by --resume (a content hash of what was read)', async (t) => {
  const run = await stoppedRun(t);
  const before = statSync(run.input);
  const text = readFileSync(run.input, 'utf8');
  writeFileSync(run.input, text.replace('"r2"', '"x2"'));
  utimesSync(run.input, before.atime, before.mtime);
  assert.equal(statSync(run.input).size, before.size);
  assert.equal(Math.round(statSync(run.input).mtimeMs), Math.round(before.mtimeMs), 'the mtime is as it was');
  const resumed = await runCli(['run', run.job, '--state', run.state, '--resume', '--max-failures', '100'], {cwd: run.dir});
  assert.equal(resumed.code, 2, resumed.stdout);
  assert.match(
    resumed.stderr,
    new RegExp(`input\\.jsonl changed since run ${run.runId} started: its first \\d+ bytes, which the run read, are not the same`),
  );
  assert.equal(run.server.stats.calls, 60, 'nothing sent');

  // Put back as it was (a new mtime): the content is what counts, so it resumes.
  writeFileSync(run.input, text);
  const again = await runCli(['run', run.job, '--state', run.state, '--resume', '--max-failures', '100', '--json'], {cwd: run.dir});
  assert.equal(again.code, 1, again.stderr);
  assert.equal(run.server.stats.calls, 120);
});

/** 2,000 records, the first 1,000 slow, with a line longer than the default 4 MiB limit at line 1,500. */
function longLineInput(dir: string): void {
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 2000}, (_, i) =>
      i === 1499 ? {id: 'long', payload: 'x'.repeat(5 * MiB)} : {id: `r${i}`, latencyMs: i < 1000 ? 20 : 0},
    ),
  );
}

/** Starts a run with the flags, stops it with SIGINT once calls reach the server; its stdout and run id. */
async function interrupted(
  t: TestContext,
  job: string,
  dir: string,
  state: string,
  flags: readonly string[],
  server: {stats: {calls: number}},
) {
  const cli = spawnCli(['run', job, '--no-progress', '--state', state, ...flags], {cwd: dir, timeoutMs: 120_000});
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 50, 60_000, '50 calls at the server');
  cli.child.kill('SIGINT');
  const {code, stdout, stderr} = await cli.done;
  assert.equal(code, 130, stderr);
  return {stdout, runId: /\(run (\S+)\)/.exec(stdout)![1]!};
}

test('after Ctrl-C the printed --resume keeps --max-line-bytes, --max-failures and --workers, and completes the run with the long line sent', async (t) => {
  const server = await startServer(t, {serverOptions: {'grpc.max_receive_message_length': 16 * MiB}});
  const dir = tempDir(t);
  longLineInput(dir);
  const job = writeJob(dir, server.address, {concurrency: 10, ...FILES});
  const state = path.join(dir, 'state.db');
  const {stdout, runId} = await interrupted(
    t,
    job,
    dir,
    state,
    ['--max-line-bytes', '16MiB', '--max-failures', '5', '--workers', '2'],
    server,
  );
  const next = /^ {2}next {6}(grpc-batch run .*)$/m.exec(stdout)?.[1];
  assert.equal(next, `grpc-batch run ${job} --max-failures 5 --max-line-bytes 16777216 --workers 2 --state ${state} --resume ${runId}`);
  const resumed = await runCli([...next!.split(' ').slice(1), '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {runId: string; ok: number; invalid: number};
  assert.deepEqual([summary.runId, summary.ok, summary.invalid], [runId, 2000, 0]);
  assert.equal(server.stats.ids.filter((id) => id === 'long').length, 1, 'the long line was sent, once');
  assert.equal(server.stats.calls, 2000, 'every record sent once');
});

test('a bare --resume reuses the --max-line-bytes the run started with (recorded at its start)', async (t) => {
  const server = await startServer(t, {serverOptions: {'grpc.max_receive_message_length': 16 * MiB}});
  const dir = tempDir(t);
  longLineInput(dir);
  const job = writeJob(dir, server.address, {concurrency: 10, ...FILES});
  const state = path.join(dir, 'state.db');
  await interrupted(t, job, dir, state, ['--max-line-bytes', '16MiB'], server);
  const resumed = await runCli(['run', job, '--state', state, '--resume', '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout) as {ok: number; invalid: number};
  assert.deepEqual([summary.ok, summary.invalid], [2000, 0]);
  assert.equal(server.stats.ids.filter((id) => id === 'long').length, 1);
  assert.equal(server.stats.calls, 2000);
});
