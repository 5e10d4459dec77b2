import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {runCli} from '../helpers/cli.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');

test('validate --connect says the target answers, or why it does not; nothing is sent either way', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const ok = await runCli(['validate', writeJob(dir, server.address), '--connect'], {cwd: dir});
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(
    ok.stdout,
    new RegExp(
      `ok: demo\\.v1\\.DemoService/Process on ${server.address} \\(schema: proto \\S+demo\\.proto\\), 1 record valid; ${server.address} answers \\(it has no health service \\(UNIMPLEMENTED\\), but it answers gRPC\\)`,
    ),
  );
  await server.stop(0);
  const down = await runCli(['validate', writeJob(dir, server.address), '--connect'], {cwd: dir});
  assert.equal(down.code, 2);
  assert.match(
    down.stderr,
    /grpc-batch: the target does not answer:\n {2}job\.yaml: target: 127\.0\.0\.1:\d+ does not answer: UNAVAILABLE: connect ECONNREFUSED 127\.0\.0\.1:\d+ \(hint: nothing is listening at/,
  );
  assert.equal(server.stats.calls, 0, 'the health check is not a record');
});

test('run --preflight checks the target before reading the input: exit 2 and no file when it does not answer', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
  const job = writeJob(dir, server.address, {
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
    tls: {ca: path.join(TLS, 'ca.pem')},
  });
  const refused = await runCli(['run', job, '--preflight', '--no-progress'], {cwd: dir});
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /the target does not answer; nothing was sent:\n.*does not answer: UNAVAILABLE: TLS: wrong version number \(hint: the server speaks plaintext, not TLS/,
  );
  assert.equal(existsSync(path.join(dir, 'out')), false, 'no results file');
  const plain = writeJob(dir, server.address, {output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'}, 'plain.yaml');
  const ran = await runCli(['run', plain, '--preflight', '--json'], {cwd: dir});
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal((JSON.parse(ran.stdout) as {ok: number}).ok, 2);
  assert.equal(server.stats.calls, 2);
});

/** [job keys, key, words]: each refused by validate (and run) before anything is sent. */
const BAD_JOBS: readonly [Record<string, unknown>, string, string][] = [
  [{target: 'http://127.0.0.1:50051'}, 'target', 'expected host:port, not a URL: write 127.0.0.1:50051'],
  [{target: '127.0.0.1'}, 'target', 'got no port in "127.0.0.1" (grpc-js would use 443)'],
  [{target: '127.0.0.1:99999'}, 'target', 'expected a port from 1 to 65535, got "99999"'],
  [{target: '/run/app.sock'}, 'target', 'write unix:/run/app.sock'],
  [{tls: {ca: path.join(TLS, 'ca.key')}}, 'tls.ca', 'is it tls.key?'],
  [
    {tls: {ca: path.join(TLS, 'ca.pem'), cert: path.join(TLS, 'client.key'), key: path.join(TLS, 'client.pem')}},
    'tls.cert',
    'is it tls.key?',
  ],
  [{output: 'blocker/results-{runId}.jsonl'}, 'output', 'blocker is a file, not a folder'],
];

test('validate checks targets, PEM kinds and that the files can be written', {concurrency: 4}, async (t) => {
  const server = await startServer(t);
  await Promise.all(
    BAD_JOBS.map(([keys, key, words], index) =>
      t.test(`${key}: ${words}`, async (t) => {
        const dir = tempDir(t);
        writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
        writeFileSync(path.join(dir, 'blocker'), 'a file in the way');
        const job = writeJob(dir, server.address, keys, `job${index}.yaml`);
        for (const command of ['validate', 'run']) {
          const result = await runCli([command, job], {cwd: dir});
          assert.equal(result.code, 2, `${command}: ${result.stderr}`);
          assert.ok(result.stderr.includes(`job${index}.yaml: ${key}: `) && result.stderr.includes(words), `${command}:\n${result.stderr}`);
          assert.doesNotMatch(result.stderr, /this is a bug/);
        }
      }),
    ),
  );
  assert.equal(server.stats.calls, 0);
});

test('validate says which input records are invalid under its own title, with a hint for a JSON array', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), '[\n  {"id": "a"},\n  {"id": "b"}\n]\n');
  const job = writeJob(dir, '127.0.0.1:50051');
  const result = await runCli(['validate', job], {cwd: dir});
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^grpc-batch: 3 input records of 4 are not valid; nothing was sent:\n/);
  assert.doesNotMatch(result.stderr, /the job is not valid/);
  assert.match(
    result.stderr,
    /input\.jsonl: hint: input\.jsonl looks like a JSON array; the input is JSONL, one request per line: jq -c '\.\[\]' input\.jsonl > input-lines\.jsonl/,
  );
});

test('a results file without {runId} is never overwritten: the second run is refused and the first results stay', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = writeJob(dir, server.address);
  const first = await runCli(['run', job, '--output', 'out/today.jsonl'], {cwd: dir});
  assert.equal(first.code, 0, first.stderr);
  const before = readFileSync(path.join(dir, 'out/today.jsonl'), 'utf8');
  const second = await runCli(['run', job, '--output', 'out/today.jsonl'], {cwd: dir});
  assert.equal(second.code, 2);
  assert.match(
    second.stderr,
    /grpc-batch: the run cannot write its files; nothing was sent:\n {2}job\.yaml: output: \S+out\/today\.jsonl already holds an earlier run's results, and it is never overwritten: put \{runId\} in the path \(today-\{runId\}\.jsonl\)/,
  );
  assert.equal(readFileSync(path.join(dir, 'out/today.jsonl'), 'utf8'), before);
  assert.equal(server.stats.calls, 1);
});

test('default results go to ./out of the working folder, or --out-dir; a read-only job folder is never written', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const jobs = path.join(dir, 'jobs');
  mkdirSync(jobs);
  writeJsonl(path.join(jobs, 'input.jsonl'), [{id: 'a'}]);
  writeJob(jobs, server.address, {output: undefined, failures: undefined});
  const readOnly = spawnSync('mount', ['-o', 'bind,ro', jobs, jobs]);
  if (readOnly.status !== 0) return t.skip(`cannot make a read-only bind mount here (${readOnly.stderr.toString().trim()}): needs root`);
  try {
    await runsBesideAReadOnlyJobFolder(dir, jobs);
  } finally {
    spawnSync('umount', [jobs]);
  }
});

/** With the job folder mounted read-only: runs write to the working folder's out/ or --out-dir; validate names an unwritable --out-dir. */
async function runsBesideAReadOnlyJobFolder(dir: string, jobs: string): Promise<void> {
  const work = path.join(dir, 'work');
  mkdirSync(work);
  const here = await runCli(['run', path.join(jobs, 'job.yaml'), '--json'], {cwd: work});
  assert.equal(here.code, 0, here.stderr);
  assert.match((JSON.parse(here.stdout) as {output: string}).output, new RegExp(`^${work}/out/test-\\S+\\.jsonl$`));
  const there = await runCli(['run', path.join(jobs, 'job.yaml'), '--json', '--out-dir', '../results'], {cwd: work});
  assert.match((JSON.parse(there.stdout) as {output: string}).output, new RegExp(`^${dir}/results/test-\\S+\\.jsonl$`));
  const inJobs = await runCli(['validate', path.join(jobs, 'job.yaml'), '--out-dir', jobs], {cwd: work});
  assert.equal(inJobs.code, 2);
  assert.match(
    inJobs.stderr,
    /output: cannot create \S+ in \S+jobs: read-only file system \(EROFS\); set output to a writable place, or use --out-dir for the default files/,
  );
}

test('every problem is listed at once, a misspelled method among them, by validate and by run', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = writeJob(dir, '127.0.0.1:50051', {method: 'demo.v1.DemoService/Proces', concurrancy: 3, deadline: 'ten seconds'});
  for (const command of ['validate', 'run']) {
    const result = await runCli([command, job], {cwd: dir});
    assert.equal(result.code, 2, `${command}: ${result.stderr}`);
    assert.match(result.stderr, /job\.yaml: concurrancy: unknown key \(did you mean "concurrency"\?\)/, command);
    assert.match(result.stderr, /job\.yaml: deadline: expected a duration/, command);
    assert.match(
      result.stderr,
      /job\.yaml: method: service "demo\.v1\.DemoService" has no method "Proces" \(did you mean "Process"\?\)/,
      command,
    );
  }
});

test('validate refuses the output paths that run refuses: a fixed path that already has lines, /dev/null', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  mkdirSync(path.join(dir, 'out'));
  writeFileSync(path.join(dir, 'out', 'today.jsonl'), '{"line":1}\n');
  const fixed = writeJob(dir, server.address, {output: 'out/today.jsonl'}, 'fixed.yaml');
  const devNull = writeJob(dir, server.address, {output: '/dev/null', failures: 'out/{runId}.failed.jsonl'}, 'null.yaml');
  for (const command of ['validate', 'run']) {
    const held = await runCli([command, fixed], {cwd: dir});
    assert.equal(held.code, 2, `${command}: ${held.stderr}`);
    assert.match(
      held.stderr,
      /fixed\.yaml: output: \S+out\/today\.jsonl already holds an earlier run's results, and it is never overwritten: put \{runId\} in the path/,
      command,
    );
    const sink = await runCli([command, devNull], {cwd: dir});
    assert.equal(sink.code, 2, `${command}: ${sink.stderr}`);
    assert.match(
      sink.stderr,
      /null\.yaml: output: \/dev\/null is a character device, not a regular file: a run syncs its results and failures to disk at each checkpoint and --resume reads them back/,
      command,
    );
  }
  assert.equal(readFileSync(path.join(dir, 'out', 'today.jsonl'), 'utf8'), '{"line":1}\n');
  assert.equal(server.stats.calls, 0);
});
