import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {readJsonlFile, tempDir, writeJsonl} from '../helpers/job.js';
import {ECHO, JSON_PROTOSET, startSchemaServer} from '../helpers/schema-server.js';

/** A job of `jsonfx.v1.JsonService/Echo` (test/fixtures/protos/json.proto), whose `custom` field has the JSON name `customJson`. */
function writeJob(dir: string, job: Record<string, unknown>): string {
  const file = path.join(dir, 'job.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        name: 'fields',
        protoset: JSON_PROTOSET,
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

type Result = {line: number; key: Record<string, unknown>; status: string; error?: string};
const byLine = (file: string) => (readJsonlFile(file) as Result[]).sort((a, b) => a.line - b.line);

test('envelopes fill resultFields from their request, as plain records do', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [
    {request: {snakeCaseName: 'u1', inner: {note: 'acme'}}, metadata: {'x-request-id': 'r1'}},
    {request: {snake_case_name: 'u2'}},
    {request: {tagz: []}},
  ]);
  const summary = await runJob(
    await loadJob(writeJob(dir, {target: server.address, inputFormat: 'envelope', resultFields: ['snake_case_name', 'inner.note']})),
  );
  assert.deepEqual([summary.ok, summary.invalid], [2, 1]);
  const results = byLine(path.join(dir, 'out', 'results.jsonl'));
  assert.deepEqual(
    results.map((r) => r.key),
    [{line: 1, snake_case_name: 'u1', 'inner.note': 'acme'}, {line: 2, snake_case_name: 'u2'}, {line: 3}],
  );
});

test('a placeholder finds its field by the proto name or the JSON name (json_name too), however the record spells it', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  // `custom` is declared with json_name = "customJson": proto3 JSON input may spell it either way.
  writeJsonl(path.join(dir, 'input.jsonl'), [
    {custom: 'c1', snake_case_name: 's1', attrs: {tenant: 't1'}},
    {customJson: 'c2', snakeCaseName: 's2', attrs: {tenant: 't2'}},
    {snakeCaseName: 's3', attrs: {tenant: 't3'}},
  ]);
  const job = await loadJob(
    writeJob(dir, {
      target: server.address,
      // A path into a Struct is not in the request type: it is read as written.
      metadata: {'x-a': '{{customJson}}', 'x-b': '{{custom}}/{{snakeCaseName}}', 'x-tenant': '{{attrs.tenant}}'},
    }),
  );
  const summary = await runJob(job);
  assert.deepEqual([summary.ok, summary.invalid], [2, 1]);
  assert.deepEqual(
    server.calls.map((c) => [c.metadata['x-a'], c.metadata['x-b'], c.metadata['x-tenant']]),
    [
      ['c1', 'c1/s1', 't1'],
      ['c2', 'c2/s2', 't2'],
    ],
  );
  const results = byLine(path.join(dir, 'out', 'results.jsonl'));
  assert.equal(results[2]!.error, 'metadata x-a: the record has no field customJson for {{customJson}}');
});

test('in an envelope, a placeholder finds its field in the request by either name', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{request: {custom: 'e1'}}, {request: {customJson: 'e2'}}]);
  const summary = await runJob(
    await loadJob(writeJob(dir, {target: server.address, inputFormat: 'envelope', metadata: {'x-ref': 'ref-{{customJson}}'}})),
  );
  assert.equal(summary.ok, 2, JSON.stringify(summary.errors));
  assert.deepEqual(
    server.calls.map((c) => c.metadata['x-ref']),
    ['ref-e1', 'ref-e2'],
  );
});
