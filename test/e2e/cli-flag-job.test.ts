import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');
const pem = (name: string) => readFileSync(path.join(TLS, name));
const tlsFlags = ['--ca', path.join(TLS, 'ca.pem'), '--cert', path.join(TLS, 'client.pem'), '--key', path.join(TLS, 'client.key')];

type Summary = {status: string; ok: number; total: number; output: string; runId: string; next: string[]};
const responses = (file: string) =>
  (readJsonlFile(file) as {line: number; response: unknown}[]).sort((a, b) => a.line - b.line).map((r) => JSON.stringify(r.response));

test('a run without a job file (--target --method --proto -i, -H, mutual TLS) sends the calls of the equivalent job file, and --save-job writes that job', async (t) => {
  const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem'), ca: pem('ca.pem')}});
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 20}, (_, i) => ({id: `r${i}`, payload: 'p'.repeat(i)})),
  );
  const env = {QP_TOKEN: 's3cret'};
  const state = path.join(dir, 'state.db');

  const flagRun = await runCli(
    [
      'run',
      '--target',
      server.address,
      '--method',
      DEMO_METHOD,
      '--proto',
      DEMO_PROTO,
      '-i',
      'input.jsonl',
      '-H',
      'x-demo-echo: hello',
      '-H',
      'Authorization: Bearer ${QP_TOKEN}',
      ...tlsFlags,
      '--save-job',
      'saved/job.yaml',
      '--json',
      '--no-progress',
      '--state',
      state,
    ],
    {cwd: dir, env, timeoutMs: 120_000},
  );
  assert.equal(flagRun.code, 0, flagRun.stderr);
  const bySaved = JSON.parse(flagRun.stdout) as Summary;
  assert.equal(bySaved.ok, 20);
  assert.equal(server.stats.calls, 20);
  assert.equal(server.stats.lastPeerHadCert, true);
  assert.deepEqual([server.stats.lastMetadata?.['x-demo-echo'], server.stats.lastMetadata?.['authorization']], ['hello', 'Bearer s3cret']);

  // The saved job: paths relative to it, the secret as ${QP_TOKEN}, not its value.
  const saved = readFileSync(path.join(dir, 'saved', 'job.yaml'), 'utf8');
  assert.match(saved, /authorization: Bearer \$\{QP_TOKEN\}/);
  assert.doesNotMatch(saved, /s3cret/);
  assert.match(saved, /input: \.\.\/input\.jsonl/);

  const savedRun = await runCli(['run', 'saved/job.yaml', '-o', 'out/saved.jsonl', '--json', '--no-progress', '--state', state], {
    cwd: dir,
    env,
    timeoutMs: 120_000,
  });
  assert.equal(savedRun.code, 0, savedRun.stderr);
  assert.equal(server.stats.calls, 40);
  assert.deepEqual(
    [server.stats.lastMetadata?.['x-demo-echo'], server.stats.lastMetadata?.['authorization'], server.stats.lastPeerHadCert],
    ['hello', 'Bearer s3cret', true],
  );

  const job = writeJob(
    dir,
    server.address,
    {
      name: 'by-hand',
      metadata: {'x-demo-echo': 'hello', authorization: 'Bearer ${QP_TOKEN}'},
      output: 'out/by-hand.jsonl',
      failures: 'out/by-hand.failed.jsonl',
      tls: {ca: path.join(TLS, 'ca.pem'), cert: path.join(TLS, 'client.pem'), key: path.join(TLS, 'client.key')},
    },
    'by-hand.yaml',
  );
  const fileRun = await runCli(['run', job, '--json', '--no-progress', '--state', state], {cwd: dir, env, timeoutMs: 120_000});
  assert.equal(fileRun.code, 0, fileRun.stderr);
  assert.equal(server.stats.calls, 60);
  const byHand = responses((JSON.parse(fileRun.stdout) as Summary).output);
  assert.equal(byHand.length, 20);
  assert.deepEqual(responses(bySaved.output), byHand, 'the same calls, the same answers');
  assert.deepEqual(responses((JSON.parse(savedRun.stdout) as Summary).output), byHand);
});

test("-H on a job-file run adds to the job's metadata (a header named in both: the flag wins)", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = writeJob(dir, server.address, {metadata: {'x-team': 'ledger', 'x-demo-echo': 'from-job'}});
  const run = await runCli(
    ['run', job, '-H', 'x-demo-echo: from-flag', '-H', 'x-extra:  two words ', '--no-progress', '--state', path.join(dir, 'state.db')],
    {cwd: dir, timeoutMs: 120_000},
  );
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(
    server.stats.lastMetadata && {
      team: server.stats.lastMetadata['x-team'],
      echo: server.stats.lastMetadata['x-demo-echo'],
      extra: server.stats.lastMetadata['x-extra'],
    },
    {team: 'ledger', echo: 'from-flag', extra: 'two words'},
  );
});

test('a run without a job file is checked like one: every problem at once, each named by its flag; nothing sent', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const bad = await runCli(
    [
      'run',
      '--method',
      DEMO_METHOD,
      '--proto',
      'missing.proto',
      '-i',
      'nope.jsonl',
      '--ca',
      'nope.pem',
      '-H',
      'x-a: ${QP_UNSET}',
      '--rps',
      '-1',
    ],
    {cwd: dir, timeoutMs: 120_000},
  );
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--rps.*expected a number from 0 and up/); // commander's check of the flag, first
  const many = await runCli(
    ['run', '--method', DEMO_METHOD, '--proto', 'missing.proto', '-i', 'nope.jsonl', '--ca', 'nope.pem', '-H', 'x-a: ${QP_UNSET}'],
    {cwd: dir, timeoutMs: 120_000},
  );
  assert.equal(many.code, 2, many.stderr);
  for (const line of [
    /grpc-batch run: --target: missing/,
    /grpc-batch run: --proto: file not found: .*missing\.proto/,
    /grpc-batch run: --input: file not found: .*nope\.jsonl/,
    /grpc-batch run: --ca: file not found: .*nope\.pem/,
    /grpc-batch run: -H x-a: environment variable QP_UNSET is not set/,
  ])
    assert.match(many.stderr, line);
  const withFile = await runCli(['run', writeJob(dir, server.address), '--method', DEMO_METHOD], {cwd: dir, timeoutMs: 120_000});
  assert.equal(withFile.code, 2);
  assert.match(withFile.stderr, /--method give a job without a job file, and .*job\.yaml is one: put them in it/);
  const none = await runCli(['run'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(none.code, 2);
  assert.match(
    none.stderr,
    /expected a job file \(grpc-batch run job\.yaml\), or the job as flags: grpc-batch run --target HOST:PORT --method/,
  );
  assert.equal(server.stats.calls, 0);
});

test('a run without a job file is recorded with its job: after Ctrl-C, the printed command and --resume RUNID alone finish it, every record sent once', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const RECORDS = 3000;
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i}`, latencyMs: 5})),
  );
  const state = path.join(dir, 'state.db');
  const first = spawnCli(
    [
      'run',
      '-t',
      server.address,
      '--method',
      DEMO_METHOD,
      '--proto',
      DEMO_PROTO,
      '-i',
      'input.jsonl',
      '-c',
      '10',
      '-H',
      'x-demo-echo: e1',
      '--json',
      '--no-progress',
      '--state',
      state,
    ],
    {cwd: dir, timeoutMs: 120_000},
  );
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 200, 60_000, '200 calls at the server');
  first.child.kill('SIGINT');
  const stopped = await first.done;
  assert.equal(stopped.code, 130, stopped.stderr);
  const summary = JSON.parse(stopped.stdout) as Summary;
  assert.ok(summary.total < RECORDS);
  // The next step runs the job as recorded beside the state database (-H included), not the flags.
  const resume = summary.next[0]!;
  assert.match(resume, new RegExp(`^grpc-batch run jobs/DemoService-Process-[0-9a-f]{12}\\.yaml .*--resume ${summary.runId}$`)); // beside --state dir/state.db
  const recorded = readFileSync(path.join(dir, resume.split(' ')[2]!), 'utf8');
  assert.match(recorded, /x-demo-echo: e1/);

  writeFileSync(path.join(dir, 'unrelated.txt'), ''); // the working folder is the same; the job comes from the state database
  const resumed = await runCli(['run', '--resume', summary.runId, '--json', '--no-progress', '--state', state], {
    cwd: dir,
    timeoutMs: 120_000,
  });
  assert.equal(resumed.code, 0, resumed.stderr);
  const done = JSON.parse(resumed.stdout) as Summary;
  assert.deepEqual([done.status, done.total, done.ok, done.runId], ['succeeded', RECORDS, RECORDS, summary.runId]);
  assert.equal(server.stats.lastMetadata?.['x-demo-echo'], 'e1');
  const seen = new Map<string, number>();
  for (const id of server.stats.ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.equal(seen.size, RECORDS);
  assert.ok(
    [...seen.values()].every((n) => n === 1),
    'Ctrl-C let the calls in flight finish: nothing sent twice',
  );
  assert.equal(readJsonlFile(done.output).length, RECORDS);
});

test('a run without a job file resumes with the same flags and --resume', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 2000}, (_, i) => ({id: `r${i}`, latencyMs: 5})),
  );
  const state = path.join(dir, 'state.db');
  const flags = [
    'run',
    '-t',
    server.address,
    '--method',
    DEMO_METHOD,
    '--proto',
    DEMO_PROTO,
    '-i',
    'input.jsonl',
    '-c',
    '10',
    '--json',
    '--no-progress',
    '--state',
    state,
  ];
  const first = spawnCli(flags, {cwd: dir, timeoutMs: 120_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= 200, 60_000, '200 calls at the server');
  first.child.kill('SIGINT');
  assert.equal((await first.done).code, 130);
  const resumed = await runCli([...flags, '--resume'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual([(JSON.parse(resumed.stdout) as Summary).ok, new Set(server.stats.ids).size, server.stats.calls], [2000, 2000, 2000]);
});
