import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {ValidationError, formatIssue} from '../../src/errors.js';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';
import {runCli} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJsonl} from '../helpers/job.js';
import {DEMO_PROTOSET, ECHO, JSON_PROTO, JSON_PROTOSET, startSchemaServer} from '../helpers/schema-server.js';

const FIXTURES = path.join(PACKAGE_ROOT, 'test', 'fixtures');
const TLS = path.join(FIXTURES, 'tls');
const BASE = `target: 127.0.0.1:1\nmethod: ${ECHO}\ninput: "-"\n`;

async function issuesOf(t: import('node:test').TestContext, text: string): Promise<string[]> {
  const file = path.join(tempDir(t), 'job.yaml');
  writeFileSync(file, text);
  try {
    await loadJob(file, {}, {});
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
    return error.issues.map(formatIssue);
  }
  assert.fail('expected the job to be invalid');
}

const CASES: readonly [string, string, readonly string[]][] = [
  [
    'proto and protoset together',
    `${BASE}proto: ${JSON_PROTO}\nprotoset: ${JSON_PROTOSET}\n`,
    ['protoset: give proto or protoset, not both'],
  ],
  [
    'a missing file in a proto list names its index',
    `${BASE}proto: [${JSON_PROTO}, ./nowhere.proto]\n`,
    ['proto[1]: file not found', 'nowhere.proto'],
  ],
  ['an empty proto list', `${BASE}proto: []\n`, ['proto: expected a file or a non-empty list of files, got [] (list)']],
  [
    'a .proto given as a protoset',
    `${BASE}protoset: ${JSON_PROTO}\n`,
    ['protoset:', 'is not a FileDescriptorSet', 'it looks like a .proto source: give it as proto:'],
  ],
  [
    'a protoset without its imports',
    `${BASE.replace(ECHO, 'demo.v1.DemoService/Process')}protoset: ${path.join(FIXTURES, 'protos', 'json.protoset')}\n`,
    ['method: unknown service "demo.v1.DemoService"', 'services in protoset'],
  ],
  [
    'a misspelled jsonNames',
    `${BASE}proto: ${JSON_PROTO}\njsonNames: snake\n`,
    ['jsonNames: expected one of json, proto, got "snake" (string)'],
  ],
  [
    'a misspelled inputFormat',
    `${BASE}proto: ${JSON_PROTO}\ninputFormat: envelop\n`,
    ['inputFormat: expected one of message, envelope, got "envelop" (string)'],
  ],
  [
    'emitDefaults as a string',
    `${BASE}proto: ${JSON_PROTO}\nemitDefaults: "yes"\n`,
    ['emitDefaults: expected true or false, got "yes" (string)'],
  ],
  [
    'recordMetadata as a number',
    `${BASE}proto: ${JSON_PROTO}\nrecordMetadata: 1\n`,
    ['recordMetadata: expected true or false, got 1 (number)'],
  ],
  [
    'a reserved reflectionMetadata key',
    `${BASE}reflectionMetadata: {grpc-timeout: 1}\n`,
    ['reflectionMetadata.grpc-timeout: metadata key "grpc-timeout" is reserved'],
  ],
  [
    'an envelope for a bidi method',
    `target: 127.0.0.1:1\nproto: ${path.join(PACKAGE_ROOT, 'proto', 'demo', 'v1', 'demo.proto')}\nmethod: demo.v1.DemoService/ProcessStream\ninput: "-"\ninputFormat: envelope\n`,
    [
      'inputFormat: envelopes (metadata and deadline per record) apply to unary methods only; "demo.v1.DemoService/ProcessStream" is a bidi method',
    ],
  ],
  [
    'a placeholder for a client-streaming method',
    `target: 127.0.0.1:1\nproto: ${path.join(PACKAGE_ROOT, 'proto', 'demo', 'v1', 'demo.proto')}\nmethod: demo.v1.DemoService/ProcessBatch\ninput: "-"\nmetadata: {x-id: "{{id}}"}\n`,
    ['metadata.x-id: {{field}} placeholders apply to unary methods only'],
  ],
  ['a misspelled new key', `${BASE}proto: ${JSON_PROTO}\nprotosets: x\n`, ['protosets: unknown key (did you mean "protoset"?)']],
];

for (const [name, text, words] of CASES) {
  test(`says what is wrong with ${name}`, async (t) => {
    const issues = await issuesOf(t, text);
    assert.ok(
      issues.some((i) => words.every((w) => i.includes(w))),
      `one issue should hold ${JSON.stringify(words)}; got:\n${issues.join('\n')}`,
    );
  });
}

test('several protosets (one without its imports) make one schema; validate names them', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a', latencyMs: 1}]);
  writeFileSync(
    path.join(dir, 'job.yaml'),
    `target: ${server.address}\nprotoset: [${JSON_PROTOSET}, ${DEMO_PROTOSET}]\nmethod: demo.v1.DemoService/Process\ninput: input.jsonl\n`,
  );
  const result = await runCli(['validate', path.join(dir, 'job.yaml')]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\(schema: protoset \S*json\.protoset, \S*demo\.protoset\), 1 record valid/);
});

test('several proto files, and importPaths with a protoset only warns', async (t) => {
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'job.yaml'),
    `target: 127.0.0.1:1\nproto: [${JSON_PROTO}, ${path.join(PACKAGE_ROOT, 'proto', 'demo', 'v1', 'demo.proto')}]\nmethod: demo.v1.DemoService/Process\ninput: "-"\n`,
  );
  const job = await loadJob(path.join(dir, 'job.yaml'));
  assert.equal(job.method.origin, '2 proto files');
  writeFileSync(
    path.join(dir, 'job.yaml'),
    `target: 127.0.0.1:1\nprotoset: ${JSON_PROTOSET}\nimportPaths: [.]\nmethod: ${ECHO}\ninput: "-"\n`,
  );
  const warned = await loadJob(path.join(dir, 'job.yaml'));
  assert.match(formatIssue(warned.warnings[0]!), /importPaths: only used with proto/);
});

test("jsonNames: proto and emitDefaults: true shape the results; a run's results re-sent as input give the same results", async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  const canon = JSON.parse(readFileSync(path.join(FIXTURES, 'json', 'cases.json'), 'utf8')) as {
    cases: {name: string; json: unknown; protoNames: unknown}[];
  };
  const requests = canon.cases.map((c) => c.json);
  writeJsonl(path.join(dir, 'input.jsonl'), requests);
  const job = (extra: string, input = 'input.jsonl', output = 'out/a.jsonl') => {
    writeFileSync(
      path.join(dir, 'job.yaml'),
      `target: ${server.address}\nproto: ${JSON_PROTO}\nmethod: ${ECHO}\ninput: ${input}\noutput: ${output}\nconcurrency: 1\n${extra}`,
    );
    return path.join(dir, 'job.yaml');
  };
  const responses = (file: string) =>
    (readJsonlFile(path.join(dir, file)) as {line: number; response: unknown}[]).sort((a, b) => a.line - b.line).map((r) => r.response);

  assert.equal((await runJob(await loadJob(job('jsonNames: proto\n')))).ok, requests.length);
  assert.deepEqual(
    responses('out/a.jsonl'),
    canon.cases.map((c) => c.protoNames),
  );

  assert.equal((await runJob(await loadJob(job('emitDefaults: true\n', 'input.jsonl', 'out/b.jsonl')))).ok, requests.length);
  const withDefaults = responses('out/b.jsonl') as Record<string, unknown>[];
  assert.equal(withDefaults.at(-1)!['i64'], '0');
  assert.deepEqual(withDefaults.at(-1)!['byI64'], {});

  // Output -> input: the responses, as written, are valid requests of the same type.
  writeJsonl(path.join(dir, 'again.jsonl'), withDefaults);
  const again = await runJob(await loadJob(job('emitDefaults: true\n', 'again.jsonl', 'out/c.jsonl')));
  assert.equal(again.invalid, 0);
  assert.deepEqual(responses('out/c.jsonl'), withDefaults);
});

test("server reflection over TLS uses the job's tls", async (t) => {
  const server = await startSchemaServer(t, {
    tls: {key: readFileSync(path.join(TLS, 'server.key')), cert: readFileSync(path.join(TLS, 'server.pem'))},
  });
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{tags: ['x']}]);
  const file = path.join(dir, 'job.yaml');
  writeFileSync(
    file,
    `target: ${server.address.replace('127.0.0.1', 'localhost')}\nmethod: ${ECHO}\ninput: input.jsonl\ntls: {ca: ${path.join(TLS, 'ca.pem')}}\n`,
  );
  const result = await runCli(['validate', file]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /schema: server reflection \(v1\) at localhost:\d+/);
  writeFileSync(file, `target: ${server.address.replace('127.0.0.1', 'localhost')}\nmethod: ${ECHO}\ninput: input.jsonl\n`);
  const plaintext = await runCli(['validate', file]);
  assert.equal(plaintext.code, 2);
  assert.match(plaintext.stderr, /target: server reflection at localhost:\d+ failed: 14 UNAVAILABLE/);
});
