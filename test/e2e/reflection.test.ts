import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {createMethodHandle} from '../../src/schema/method-handle.js';
import {loadByReflection} from '../../src/rpc/reflection-client.js';
import {runCli} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJsonl} from '../helpers/job.js';
import {ECHO, startSchemaServer} from '../helpers/schema-server.js';

const CANON = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'json', 'cases.json'), 'utf8')) as {
  cases: {name: string; binary: string; json: Record<string, unknown>}[];
};

function writeJob(dir: string, job: Record<string, unknown>): string {
  const file = path.join(dir, 'job.json');
  writeFileSync(
    file,
    JSON.stringify(
      {name: 'refl', method: ECHO, input: 'input.jsonl', output: 'out/results.jsonl', failures: 'out/failed.jsonl', ...job},
      null,
      2,
    ),
  );
  return file;
}

test("a job with no proto validates and runs from the server's reflection (v1)", async (t) => {
  const server = await startSchemaServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [
    {i64: '-9223372036854775808', byU64: {'18446744073709551615': 'max'}, ratio: 0.1},
    {tags: ['a']},
  ]);
  const job = writeJob(dir, {target: server.address});
  const validated = await runCli(['validate', job]);
  assert.equal(validated.code, 0, validated.stderr);
  assert.match(
    validated.stdout,
    /jsonfx\.v1\.JsonService\/Echo on 127\.0\.0\.1:\d+ \(schema: server reflection \(v1\) at 127\.0\.0\.1:\d+\), 2 records valid/,
  );
  assert.equal(server.calls.length, 0, 'validate sends no call of the method');
  const ran = await runCli(['run', job, '--json', '--no-progress']);
  assert.equal(ran.code, 0, ran.stderr);
  const results = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as {line: number; response: unknown}[];
  assert.deepEqual(
    results.sort((a, b) => a.line - b.line).map((r) => r.response),
    [{ratio: 0.1, i64: '-9223372036854775808', byU64: {'18446744073709551615': 'max'}}, {tags: ['a']}],
  );
  assert.equal(server.calls.length, 2);
});

test('a misspelled method or service, with reflection, stops before anything is sent (exit 2)', async (t) => {
  const server = await startSchemaServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{}]);
  const method = await runCli(['run', writeJob(dir, {target: server.address, method: 'jsonfx.v1.JsonService/Ecko'}), '--no-progress']);
  assert.equal(method.code, 2);
  assert.match(
    method.stderr,
    /method: service "jsonfx\.v1\.JsonService" has no method "Ecko" \(did you mean "Echo"\?\); methods: Echo, Watch/,
  );
  const service = await runCli(['run', writeJob(dir, {target: server.address, method: 'jsonfx.v1.JsonServise/Echo'}), '--no-progress']);
  assert.equal(service.code, 2);
  assert.match(
    service.stderr,
    /method: unknown service "jsonfx\.v1\.JsonServise" \(did you mean "jsonfx\.v1\.JsonService"\?\); services of 127\.0\.0\.1:\d+ \(server reflection\): demo\.v1\.DemoService, jsonfx\.v1\.JsonService/,
  );
  const streaming = await runCli([
    'run',
    writeJob(dir, {target: server.address, method: 'jsonfx.v1.JsonService/Watch', streams: 4}),
    '--no-progress',
  ]);
  assert.equal(streaming.code, 2);
  assert.match(
    streaming.stderr,
    /streams: applies to bidi-streaming methods only; "jsonfx\.v1\.JsonService\/Watch" is a server-streaming method: remove the key/,
  );
  assert.equal(server.calls.length, 0);
});

test('a server with only v1alpha reflection is asked over v1alpha', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'v1alpha'});
  const schema = await loadByReflection({target: server.address}, 'jsonfx.v1.JsonService');
  assert.match(schema.origin, /^server reflection \(v1alpha\) at 127\.0\.0\.1:\d+$/);
  assert.ok(schema.services.includes('jsonfx.v1.JsonService'));
});

test('a server without reflection: exit 2, and the message says to give proto or protoset', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{}]);
  const result = await runCli(['validate', writeJob(dir, {target: server.address})]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /proto: no proto or protoset is given, and the server at 127\.0\.0\.1:\d+ does not offer server reflection \(v1 or v1alpha: UNIMPLEMENTED\); give proto: \(with importPaths\) or protoset:/,
  );
});

test("reflection calls carry the job's fixed metadata, or reflectionMetadata when given", async (t) => {
  const server = await startSchemaServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{snakeCaseName: 'x'}]);
  const withJobs = await runCli([
    'validate',
    writeJob(dir, {target: server.address, metadata: {authorization: 'Bearer job', 'x-id': 'req-{{snakeCaseName}}'}}),
  ]);
  assert.equal(withJobs.code, 0, withJobs.stderr);
  assert.equal(server.reflectionMetadata.at(-1)!['authorization'], 'Bearer job');
  assert.equal(server.reflectionMetadata.at(-1)!['x-id'], undefined, 'a templated value depends on a record: not sent to reflection');
  const own = await runCli([
    'validate',
    writeJob(dir, {
      target: server.address,
      metadata: {authorization: 'Bearer job'},
      reflectionMetadata: {authorization: 'Bearer reflection'},
    }),
  ]);
  assert.equal(own.code, 0, own.stderr);
  assert.equal(server.reflectionMetadata.at(-1)!['authorization'], 'Bearer reflection');
});

test('descriptors served by @grpc/reflection (protobufjs-made) print maps, 64-bit keys and float32 as Python does', async (t) => {
  const server = await startSchemaServer(t);
  const schema = await loadByReflection({target: server.address}, 'jsonfx.v1.JsonService');
  const handle = createMethodHandle(schema, ECHO);
  for (const canon of CANON.cases) {
    const printed = JSON.parse(JSON.stringify(handle.decodeResponse(Buffer.from(canon.binary, 'base64')))) as Record<string, unknown>;
    if (canon.name === 'names') {
      // protobufjs's toDescriptor, which @grpc/reflection serves, drops json_name: the proto name's JSON form is all it can give.
      const {customJson, ...rest} = canon.json;
      assert.deepEqual(printed, {...rest, custom: customJson});
    } else {
      assert.deepEqual(printed, canon.json, canon.name);
    }
  }
});
