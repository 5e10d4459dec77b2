import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';
import {loadProtoFiles} from '../../src/schema/source-proto.js';
import {readJsonlFile, tempDir, writeJsonl} from '../helpers/job.js';
import {ECHO, JSON_PROTO, startSchemaServer} from '../helpers/schema-server.js';

/** Rich errors (grpc-status-details-bin with RetryInfo) and recorded metadata: the same results lines on h2 as on grpc-js. */

const types = loadProtoFiles([
  path.join(PACKAGE_ROOT, 'proto', 'google', 'rpc', 'error_details.proto'),
  path.join(PACKAGE_ROOT, 'proto', 'google', 'rpc', 'status.proto'),
]).root;

test("h2: a rich error (BadRequest, RetryInfo) and recordMetadata give the results lines of grpc-js, RetryInfo's delay obeyed", async (t) => {
  const Status = types.lookupType('google.rpc.Status');
  const pack = (name: string, value: Record<string, unknown>) => ({
    type_url: `type.googleapis.com/${name}`,
    value: types.lookupType(name).encode(types.lookupType(name).fromObject(value)).finish(),
  });
  const trailers = new grpc.Metadata();
  trailers.set(
    'grpc-status-details-bin',
    Buffer.from(
      Status.encode(
        Status.fromObject({
          code: 3,
          message: 'bad: 100% wrong',
          details: [
            pack('google.rpc.BadRequest', {field_violations: [{field: 'tags[0]', description: 'empty'}]}),
            pack('google.rpc.RetryInfo', {retry_delay: {seconds: 0, nanos: 50_000_000}}),
          ],
        }),
      ).finish(),
    ),
  );
  trailers.set('x-trailer-bin', Buffer.from([1, 2, 3]));
  const headers = new grpc.Metadata();
  headers.set('x-served-by', 'test');
  const lines: Record<string, unknown>[][] = [];
  for (const transport of ['grpc-js', 'h2']) {
    let calls = 0;
    const server = await startSchemaServer(t, {
      reflection: 'none',
      answer: () =>
        ++calls === 1
          ? {headers, error: {code: grpc.status.UNAVAILABLE, details: 'bad: 100% wrong', trailers}}
          : {headers, error: {code: grpc.status.INVALID_ARGUMENT, details: 'bad: 100% wrong', trailers}},
    });
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{tags: ['']}]);
    const file = path.join(dir, 'job.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'rich',
        proto: JSON_PROTO,
        method: ECHO,
        input: 'input.jsonl',
        output: 'out/results.jsonl',
        failures: 'out/failed.jsonl',
        concurrency: 1,
        target: server.address,
        recordMetadata: true,
        transport,
      }),
    );
    const summary = await runJob(await loadJob(file));
    assert.equal(summary.failed, 1);
    assert.equal(calls, 2, "UNAVAILABLE retried once, after RetryInfo's delay");
    lines.push(
      (readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as Record<string, unknown>[]).map((r) => {
        const recorded = r['headers'] as Record<string, unknown> | undefined;
        return {...r, latencyMs: undefined, headers: recorded ? {...recorded, date: undefined} : recorded};
      }),
    );
  }
  assert.deepEqual(lines[1], lines[0]);
  const [line] = lines[1]!;
  assert.equal(line!['status'], 'INVALID_ARGUMENT');
  assert.equal(line!['error'], 'bad: 100% wrong');
  assert.match(JSON.stringify(line), /fieldViolations/);
  assert.match(JSON.stringify(line), /x-trailer-bin/);
});
