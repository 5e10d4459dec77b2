import assert from 'node:assert/strict';
import {mkdirSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {ValidationError} from '../../src/errors.js';
import {parseDuration} from '../../src/util/duration.js';
import {loadJob} from '../../src/config/load.js';
import {runCli} from '../helpers/cli.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';

/** The issues loadJob throws for a job file written in `dir`, as `key: message` lines. */
async function issuesOf(file: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const error = await loadJob(file, {}, env).catch((e: unknown) => e);
  assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
  return error.issues.map((i) => `${i.path}: ${i.message}`);
}

test('a missing ${VAR} is listed with the other problems of the job, not instead of them', async (t) => {
  const dir = tempDir(t);
  const file = writeJob(dir, '127.0.0.1:50051', {input: '${GB_NEVER_SET}.jsonl', concurrency: 0, deadline: 'ten'});
  const issues = await issuesOf(file);
  assert.deepEqual(issues.sort(), [
    'concurrency: expected an integer from 1 to 100000, got 0 (number)',
    'deadline: expected a duration like 500ms, 10s, 1m30s or 1h, or a number of milliseconds; got "ten" (string)',
    'input: environment variable GB_NEVER_SET is not set (write ${GB_NEVER_SET:-default} for a default)',
  ]);
});

test('an empty variable is said to be empty, not unset; ${VAR:-} allows it', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const file = writeJob(dir, '127.0.0.1:50051', {metadata: {authorization: 'Bearer ${API_TOKEN}'}});
  assert.deepEqual(await issuesOf(file, {API_TOKEN: ''}), [
    'metadata.authorization: environment variable API_TOKEN is set but empty (write ${API_TOKEN:-} if empty is meant, or ${API_TOKEN:-default} for a default)',
  ]);
  const allowed = writeJob(dir, '127.0.0.1:50051', {metadata: {'x-tenant': 't${SUFFIX:-}'}}, 'allowed.yaml');
  assert.equal((await loadJob(allowed, {}, {SUFFIX: ''})).spec.metadata['x-tenant'], 't');
});

test('$VAR without braces is sent as written, with a warning that says how to write it', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const file = writeJob(dir, '127.0.0.1:50051', {metadata: {authorization: 'Bearer $API_TOKEN', 'x-price': '$$5'}});
  const job = await loadJob(file, {}, {API_TOKEN: 'secret'});
  assert.equal(job.spec.metadata['authorization'], 'Bearer $API_TOKEN');
  assert.deepEqual(
    job.warnings.map((w) => `${w.path}: ${w.message}`),
    [
      'metadata.authorization: "$API_TOKEN" is sent as written: write ${API_TOKEN} for the environment variable, or $$API_TOKEN for a literal $',
    ],
  );
  const result = await runCli(['validate', file], {cwd: dir, env: {API_TOKEN: 'secret'}});
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /^warning: job\.yaml: metadata\.authorization: "\$API_TOKEN" is sent as written/m);
});

test('a proto import that is not found says to add its folder to importPaths', async (t) => {
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'svc.proto'),
    'syntax = "proto3";\npackage a.v1;\nimport "common/types.proto";\nservice S { rpc M (common.Req) returns (common.Req); }\n',
  );
  writeJsonl(path.join(dir, 'input.jsonl'), [{}]);
  const file = writeJob(dir, '127.0.0.1:50051', {proto: 'svc.proto', method: 'a.v1.S/M'});
  const [issue] = await issuesOf(file);
  assert.match(
    issue!,
    /^proto: imports "common\/types\.proto", which is not in \S+: add the folder that holds common\/types\.proto to importPaths/,
  );
  mkdirSync(path.join(dir, 'vendor', 'common'), {recursive: true});
  writeFileSync(path.join(dir, 'vendor', 'common', 'types.proto'), 'syntax = "proto3";\npackage common;\nmessage Req { string id = 1; }\n');
  const fixed = writeJob(dir, '127.0.0.1:50051', {proto: 'svc.proto', method: 'a.v1.S/M', importPaths: ['vendor']}, 'fixed.yaml');
  assert.equal((await loadJob(fixed)).method.requestType, 'common.Req');
});

test('GRPC_BATCH_LOG with an unknown level is a usage error naming the levels, not a crash', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const file = writeJob(dir, '127.0.0.1:50051');
  for (const args of [
    ['run', file],
    ['daemon', file],
  ]) {
    const result = await runCli(args, {cwd: dir, env: {GRPC_BATCH_LOG: 'verbose'}});
    assert.equal(result.code, 2, result.stderr);
    assert.equal(
      result.stderr,
      'grpc-batch: GRPC_BATCH_LOG: expected one of trace, debug, info, warn, error, fatal, silent, got "verbose"\n',
    );
  }
});

test('durations: 1m30s, a bare number of milliseconds as a flag too, and units out of order refused', async (t) => {
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1h15m'), 4_500_000);
  assert.equal(parseDuration('2s500ms'), 2500);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration(10), 10);
  assert.equal(parseDuration('30s1m'), undefined);
  assert.equal(parseDuration('1m1m'), undefined);
  assert.equal(parseDuration('10'), undefined, 'a string needs a unit; a number is milliseconds');
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const file = writeJob(dir, '127.0.0.1:50051', {deadline: '1m30s'});
  assert.equal((await loadJob(file)).spec.deadlineMs, 90_000);
  const bare = await runCli(['run', file, '-d', '10', '--dry-run', '--json'], {cwd: dir});
  assert.equal(bare.code, 0, bare.stderr);
  const compound = await runCli(['run', file, '-d', '1m30s', '--dry-run'], {cwd: dir});
  assert.equal(compound.code, 0, compound.stderr);
  const wrong = await runCli(['run', file, '-d', '30s1m'], {cwd: dir});
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /--deadline.*expected a duration like 500ms, 10s, 1m30s or 1h, or a number of milliseconds, got "30s1m"/);
});

test('the known keys are listed once, and only when no key is suggested', async (t) => {
  const dir = tempDir(t);
  const file = writeJob(dir, '127.0.0.1:50051', {concurrancy: 5, colour: 'red', flavour: 'mint', retry: {maxAtempts: 3}});
  const issues = await issuesOf(file);
  assert.ok(issues.includes('concurrancy: unknown key (did you mean "concurrency"?)'), issues.join('\n'));
  assert.ok(issues.includes('retry.maxAtempts: unknown key (did you mean "maxAttempts"?)'), issues.join('\n'));
  const listed = issues.filter((i) => i.includes('known keys'));
  assert.equal(listed.length, 1, issues.join('\n'));
  assert.match(listed[0]!, /^(colour|flavour): unknown key; known keys: name, target, proto/);
});

test('a status name given by one of its words is suggested: DEADLINE for DEADLINE_EXCEEDED', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const file = writeJob(dir, '127.0.0.1:50051', {retry: {retryableStatusCodes: ['UNAVAILABLE', 'DEADLINE', 'exhausted']}});
  const issues = await issuesOf(file);
  assert.deepEqual(issues, [
    'retry.retryableStatusCodes[1]: expected a status name like UNAVAILABLE or a number 0-16, got "DEADLINE" (string) (did you mean "DEADLINE_EXCEEDED"?)',
    'retry.retryableStatusCodes[2]: expected a status name like UNAVAILABLE or a number 0-16, got "exhausted" (string) (did you mean "RESOURCE_EXHAUSTED"?)',
  ]);
});

test('a pretty-printed or UTF-16 input gets the command that fixes it, in validate and in the run log', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'pretty.jsonl'), '{\n  "id": "a"\n}\n');
  writeFileSync(
    path.join(dir, 'utf16.jsonl'),
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"id":"a"}\n{"id":"b"}\n', 'utf16le')]),
  );
  const file = writeJob(dir, '127.0.0.1:50051');
  const pretty = await runCli(['validate', file, '-i', 'pretty.jsonl'], {cwd: dir});
  assert.match(
    pretty.stderr,
    /pretty\.jsonl: hint: pretty\.jsonl looks like pretty-printed JSON; the input is JSONL, one request per line: jq -c \. pretty\.jsonl > pretty-lines\.jsonl/,
  );
  const utf16 = await runCli(['validate', file, '-i', 'utf16.jsonl'], {cwd: dir});
  assert.match(
    utf16.stderr,
    /utf16\.jsonl: hint: utf16\.jsonl looks like UTF-16 text; grpc-batch reads UTF-8: iconv -f UTF-16 -t UTF-8 utf16\.jsonl > utf16-utf8\.jsonl/,
  );
  const run = await runCli(['run', file, '-i', 'pretty.jsonl', '--no-progress', '-o', 'out/p.jsonl'], {cwd: dir});
  assert.equal(run.code, 1);
  const hints = run.stderr.split('\n').filter((l) => l.includes('"input:hint"'));
  assert.equal(hints.length, 1, run.stderr);
  assert.match(hints[0]!, /looks like pretty-printed JSON/);
});
