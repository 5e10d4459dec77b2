import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {readJsonlFile, tempDir, TRANSPORTS, writeJsonl} from '../helpers/job.js';
import {runCli} from '../helpers/cli.js';
import {DEMO_PROTOSET, ECHO, JSON_PROTOSET, startSchemaServer} from '../helpers/schema-server.js';

function writeJob(dir: string, job: Record<string, unknown>): string {
  const file = path.join(dir, 'job.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        name: 'records',
        protoset: [JSON_PROTOSET, DEMO_PROTOSET],
        method: ECHO,
        input: 'input.jsonl',
        output: 'out/results.jsonl',
        failures: 'out/failed.jsonl',
        concurrency: 1,
        ...job,
      },
      null,
      2,
    ),
  );
  return file;
}

type Result = {line: number; status: string; error?: string; response?: unknown};
const byLine = (file: string) => (readJsonlFile(file) as Result[]).sort((a, b) => a.line - b.line);

for (const transport of TRANSPORTS) {
  test(`templated metadata is filled from each record, nested paths too, and seen at the server per record (transport ${transport})`, async (t) => {
    const server = await startSchemaServer(t, {reflection: 'none'});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [
      {snakeCaseName: 'u1', inner: {note: 'acme', big: '7'}},
      {snake_case_name: 'u2', inner: {note: 'globex', big: 9007199254740993n.toString()}},
    ]);
    const job = await loadJob(
      writeJob(dir, {
        transport,
        target: server.address,
        metadata: {'x-request-id': 'req-{{snakeCaseName}}', 'x-tenant': '{{ inner.note }}/{{inner.big}}', 'x-fixed': 'same'},
      }),
    );
    const summary = await runJob(job);
    // The second record names the field as in the proto, the template by its JSON name: the same field.
    assert.equal(summary.ok, 2);
    assert.deepEqual(
      server.calls.map((c) => [c.metadata['x-request-id'], c.metadata['x-tenant'], c.metadata['x-fixed']]),
      [
        ['req-u1', 'acme/7', 'same'],
        ['req-u2', 'globex/9007199254740993', 'same'],
      ],
    );
  });
}

test('a missing templated field is an invalid record with its line number; validate says so and sends nothing', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{inner: {note: 'a'}}, {}, {inner: {}}, {inner: {note: 'é'}}]);
  const result = await runCli(['validate', writeJob(dir, {target: server.address, metadata: {'x-tenant': 't-{{inner.note}}'}})]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /input\.jsonl:2: metadata x-tenant: the record has no field inner\.note for \{\{inner\.note\}\}/);
  assert.match(result.stderr, /input\.jsonl:3: metadata x-tenant: the record has no field inner\.note/);
  assert.match(
    result.stderr,
    /input\.jsonl:4: metadata x-tenant: \{\{…\}\} gave a value that cannot be sent: metadata value of "x-tenant" must be printable ASCII/,
  );
  assert.doesNotMatch(result.stderr, /input\.jsonl:1:/);
  assert.equal(server.calls.length, 0);
});

test('a malformed template is a validation error of the job', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{}]);
  const result = await runCli([
    'validate',
    writeJob(dir, {target: '127.0.0.1:1', metadata: {'x-a': '{{ not a path }}', 'x-b': 'req-{{id'}}),
  ]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /metadata\.x-a: expected \{\{field\}\} or \{\{field\.nested\}\} \(letters, digits and _ separated by dots\), got "\{\{not a path\}\}"/,
  );
  assert.match(
    result.stderr,
    /metadata\.x-b: has a "\{\{" or "\}\}" that is not part of a \{\{field\}\} placeholder \(the "\{\{" at character 5\)/,
  );
  assert.doesNotMatch(result.stderr, /req-\{\{id/, 'the value is not printed: it may hold a secret');
});

for (const transport of TRANSPORTS) {
  test(`envelope records carry their own metadata and deadline; bad envelopes are invalid records (transport ${transport})`, async (t) => {
    // Calls marked x-slow are answered after 2 s: the record's own 50ms deadline ends them first.
    const server = await startSchemaServer(t, {
      reflection: 'none',
      answer: (call, request) => ({response: request, delayMs: call.metadata['x-slow'] ? 2000 : 0}),
    });
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [
      {request: {tags: ['a']}, metadata: {'x-request-id': 'r1', 'x-job': 'overridden'}},
      {request: {tags: ['b']}, deadline: '2s'},
      {request: {tags: ['c']}, deadline: '50ms', metadata: {'x-slow': 'yes'}},
      {tags: ['not an envelope']},
      {request: {tagz: []}},
      {request: {}, deadline: 'soon'},
      {request: {}, metadata: {'grpc-x': '1'}},
      {request: null},
    ]);
    const job = await loadJob(
      writeJob(dir, {
        transport,
        target: server.address,
        inputFormat: 'envelope',
        metadata: {'x-job': 'job', 'x-tag': 'fixed'},
      }),
    );
    const summary = await runJob(job);
    const results = byLine(path.join(dir, 'out', 'results.jsonl'));
    assert.deepEqual(
      results.map((r) => r.status),
      ['OK', 'OK', 'DEADLINE_EXCEEDED', 'INVALID', 'INVALID', 'INVALID', 'INVALID', 'INVALID'],
    );
    assert.deepEqual(results[0]!.response, {tags: ['a']});
    const first = server.calls.find((c) => c.metadata['x-request-id'] === 'r1')!;
    assert.equal(first.metadata['x-job'], 'overridden', 'the envelope wins over the job, key by key');
    assert.equal(first.metadata['x-tag'], 'fixed');
    const second = server.calls.find((c) => c.metadata['x-request-id'] === undefined && c.metadata['x-slow'] === undefined)!;
    assert.equal(second.metadata['x-job'], 'job');
    assert.match(results[3]!.error!, /^tags: unknown envelope key; keys: request \(required\), metadata, deadline$/);
    assert.match(results[4]!.error!, /^request\.tagz: unknown field of Sample \(did you mean "tags"\?\)/);
    assert.match(
      results[5]!.error!,
      /^deadline: expected a duration like 500ms, 10s, 1m30s or 1h, or a number of milliseconds; got "soon"$/,
    );
    assert.match(results[6]!.error!, /^metadata\.grpc-x: metadata key "grpc-x" is reserved/);
    assert.match(results[7]!.error!, /^request: expected a JSON object for Sample, got null$/);
    assert.equal(summary.invalid, 5);
    // The failures file holds the records exactly as input: envelopes, re-runnable.
    const failed = readJsonlFile(path.join(dir, 'out', 'failed.jsonl')) as Record<string, unknown>[];
    assert.ok(failed.every((f) => 'request' in f || 'tags' in f));
  });
}

for (const transport of TRANSPORTS) {
  test(`on worker threads too: templated and envelope metadata reach the server, and a reflection schema is not asked for again (transport ${transport})`, async (t) => {
    const server = await startSchemaServer(t);
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: 20}, (_, i) => ({request: {snakeCaseName: `u${i}`, i64: String(-i)}, metadata: {'x-env': `e${i}`}})),
    );
    const file = path.join(dir, 'job.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'threads',
        transport,
        target: server.address,
        method: ECHO,
        input: 'input.jsonl',
        output: 'out/results.jsonl',
        failures: 'out/failed.jsonl',
        workers: 2,
        concurrency: 4,
        inputFormat: 'envelope',
        recordMetadata: true,
        metadata: {'x-request-id': 'req-{{snakeCaseName}}'},
      }),
    );
    const job = await loadJob(file);
    const streams = server.reflectionMetadata.length;
    assert.ok(streams > 0, 'the job was loaded by reflection');
    const summary = await runJob(job);
    assert.equal(summary.ok, 20);
    const ids = server.calls.map((c) => `${c.metadata['x-request-id']}/${c.metadata['x-env']}`).sort();
    assert.deepEqual(ids, Array.from({length: 20}, (_, i) => `req-u${i}/e${i}`).sort());
    const results = byLine(path.join(dir, 'out', 'results.jsonl')) as (Result & {headers?: Record<string, string>})[];
    assert.deepEqual(results[3]!.response, {snakeCaseName: 'u3', i64: '-3'});
    assert.equal(typeof results[3]!.headers?.['content-type'], 'string');
    assert.equal(server.reflectionMetadata.length, streams, 'the workers use the schema the run loaded');
  });
}
