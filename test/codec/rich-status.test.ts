import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';
import {loadProtoFiles} from '../../src/schema/source-proto.js';
import {readJsonlFile, tempDir, TRANSPORTS, writeJsonl} from '../helpers/job.js';
import {ECHO, JSON_PROTO, startSchemaServer} from '../helpers/schema-server.js';

/** Types a server uses to build a google.rpc.Status, as grpc-go's status.WithDetails does. */
const types = loadProtoFiles([
  path.join(PACKAGE_ROOT, 'proto', 'google', 'rpc', 'error_details.proto'),
  path.join(PACKAGE_ROOT, 'proto', 'google', 'rpc', 'status.proto'),
  JSON_PROTO,
]).root;
const pack = (name: string, value: Record<string, unknown>) => {
  const type = types.lookupType(name);
  return {type_url: `type.googleapis.com/${name}`, value: type.encode(type.fromObject(value)).finish()};
};
function statusTrailer(code: grpc.status, message: string, details: {type_url: string; value: Uint8Array}[]): grpc.Metadata {
  const Status = types.lookupType('google.rpc.Status');
  const trailers = new grpc.Metadata();
  trailers.set('grpc-status-details-bin', Buffer.from(Status.encode(Status.fromObject({code, message, details})).finish()));
  trailers.set('x-trailer', 'bye');
  return trailers;
}

function writeJob(dir: string, job: Record<string, unknown>): string {
  const file = path.join(dir, 'job.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        name: 'rich',
        proto: JSON_PROTO,
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

for (const transport of TRANSPORTS) {
  test(`grpc-status-details-bin is decoded into the results line: BadRequest, ErrorInfo, a schema type, an unknown type left packed (transport ${transport})`, async (t) => {
    const details = [
      pack('google.rpc.BadRequest', {field_violations: [{field: 'tags[0]', description: 'must not be empty', reason: 'EMPTY'}]}),
      pack('google.rpc.ErrorInfo', {reason: 'TAG_EMPTY', domain: 'jsonfx.example', metadata: {tag_index: '0'}}),
      pack('jsonfx.v1.Inner', {note: "the schema's own detail type", big: '-5'}),
      {type_url: 'type.googleapis.com/acme.v1.Secret', value: Buffer.from('zz')},
    ];
    const headers = new grpc.Metadata();
    headers.set('x-served-by', 'test');
    const server = await startSchemaServer(t, {
      reflection: 'none',
      answer: () => ({
        headers,
        error: {
          code: grpc.status.INVALID_ARGUMENT,
          details: 'bad tags',
          trailers: statusTrailer(grpc.status.INVALID_ARGUMENT, 'bad tags', details),
        },
      }),
    });
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{tags: ['']}]);
    const summary = await runJob(await loadJob(writeJob(dir, {transport, target: server.address, recordMetadata: true})));
    assert.equal(summary.failed, 1);
    const [result] = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as Record<string, unknown>[];
    assert.equal(result!['status'], 'INVALID_ARGUMENT');
    assert.deepEqual(result!['statusDetails'], {
      code: 3,
      message: 'bad tags',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [{field: 'tags[0]', description: 'must not be empty', reason: 'EMPTY'}],
        },
        {'@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'TAG_EMPTY', domain: 'jsonfx.example', metadata: {tag_index: '0'}},
        {'@type': 'type.googleapis.com/jsonfx.v1.Inner', note: "the schema's own detail type", big: '-5'},
        {'@type': 'type.googleapis.com/acme.v1.Secret', value: 'eno='},
      ],
    });
    assert.equal((result!['headers'] as Record<string, string>)['x-served-by'], 'test');
    assert.equal((result!['trailers'] as Record<string, string>)['x-trailer'], 'bye');
    assert.equal(
      (result!['trailers'] as Record<string, string>)['grpc-status-details-bin'],
      undefined,
      'decoded already: not repeated as base64',
    );
  });
}

for (const transport of TRANSPORTS) {
  test(`without recordMetadata no headers or trailers are written; an OK call records them when asked (transport ${transport})`, async (t) => {
    const headers = new grpc.Metadata();
    headers.set('x-served-by', 'test');
    headers.add('x-many', 'a');
    headers.add('x-many', 'b');
    const server = await startSchemaServer(t, {reflection: 'none', answer: (_call, request) => ({headers, response: request})});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{tags: ['x']}]);
    await runJob(await loadJob(writeJob(dir, {transport, target: server.address})));
    const [plain] = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as Record<string, unknown>[];
    assert.equal(plain!['headers'], undefined);
    await runJob(
      await loadJob(
        writeJob(dir, {
          transport,
          target: server.address,
          recordMetadata: true,
          output: 'out/recorded.jsonl',
          failures: 'out/recorded.failed.jsonl',
        }),
      ),
    );
    const [recorded] = readJsonlFile(path.join(dir, 'out', 'recorded.jsonl')) as Record<string, Record<string, unknown>>[];
    assert.equal(recorded!['headers']!['x-served-by'], 'test');
    // HTTP/2 (Node's http2, as grpc-js reads it) joins a header sent twice with ", ".
    assert.equal(recorded!['headers']!['x-many'], 'a, b');
    assert.equal(typeof recorded!['headers']!['content-type'], 'string');
    assert.deepEqual(recorded!['response'], {tags: ['x']});
  });
}

for (const transport of TRANSPORTS) {
  test(`RetryInfo.retryDelay is the next backoff: the server sees the retry no sooner than it asked, though maxBackoff is 1ms (transport ${transport})`, async (t) => {
    const server = await startSchemaServer(t, {
      reflection: 'none',
      answer: (call, request) =>
        call.attempt === 1
          ? {
              error: {
                code: grpc.status.RESOURCE_EXHAUSTED,
                details: 'slow down',
                trailers: statusTrailer(grpc.status.RESOURCE_EXHAUSTED, 'slow down', [
                  pack('google.rpc.RetryInfo', {retry_delay: {seconds: 0, nanos: 400_000_000}}),
                ]),
              },
            }
          : {response: request},
    });
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{tags: ['x']}]);
    const summary = await runJob(
      await loadJob(
        writeJob(dir, {
          transport,
          target: server.address,
          retry: {maxAttempts: 2, initialBackoff: '1ms', maxBackoff: '1ms', retryableStatusCodes: ['RESOURCE_EXHAUSTED']},
        }),
      ),
    );
    assert.equal(summary.ok, 1);
    assert.equal(server.calls.length, 2);
    // A lower bound only: a loaded machine can make the gap longer, never shorter.
    assert.ok(server.calls[1]!.at - server.calls[0]!.at >= 390, `retried after ${server.calls[1]!.at - server.calls[0]!.at} ms`);
  });
}
