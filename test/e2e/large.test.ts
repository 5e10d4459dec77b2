import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {loadMethod} from '../../src/schema/method-handle.js';
import {runCli} from '../helpers/cli.js';
import {readJsonlFile, tempDir} from '../helpers/job.js';
import {ECHO, JSON_PROTO, startSchemaServer} from '../helpers/schema-server.js';

const MiB = 1024 * 1024;
const SIX_MIB = Buffer.alloc(6 * MiB, 0xfb).toString('base64'); // '+' and '/' in it: the standard alphabet

function writeJob(dir: string, job: Record<string, unknown>, name = 'job.json'): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    JSON.stringify(
      {
        name: 'large',
        proto: JSON_PROTO,
        method: ECHO,
        input: 'input.jsonl',
        output: 'out/results.jsonl',
        failures: 'out/failed.jsonl',
        ...job,
      },
      null,
      2,
    ),
  );
  return file;
}

/** Answers with an empty Sample, so only the request is large. */
const small = {answer: () => ({response: Buffer.alloc(0)})};

test('bytes of any size are checked without regular-expression recursion', () => {
  const method = loadMethod({proto: JSON_PROTO, method: ECHO});
  const encoded = method.encodeRequest({blob: Buffer.alloc(20 * MiB, 7).toString('base64url')});
  assert.ok(encoded.length > 20 * MiB);
  assert.throws(() => method.encodeRequest({blob: `${SIX_MIB}!`}), /blob: expected base64 bytes/);
});

test('a 6 MiB request: refused as a line over maxLineBytes by default, sent with --max-line-bytes when the server accepts it', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none', serverOptions: {'grpc.max_receive_message_length': 16 * MiB}, ...small});
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), `${JSON.stringify({blob: SIX_MIB})}\n`);
  const job = writeJob(dir, {target: server.address});
  // validate first: once a run wrote them, it refuses the job's fixed output paths as run does.
  const checked = await runCli(['validate', job, '--max-line-bytes', '16MiB']);
  assert.equal(checked.code, 0, checked.stderr);
  const refused = await runCli(['run', job, '--no-progress']);
  assert.equal(refused.code, 1);
  const [invalid] = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as {status: string; error: string}[];
  assert.equal(invalid!.status, 'INVALID');
  assert.match(invalid!.error, /line is longer than 4194304 bytes \(raise maxLineBytes in the job, or --max-line-bytes/);
  assert.equal(server.calls.length, 0);

  const sent = await runCli([
    'run',
    job,
    '--no-progress',
    '--max-line-bytes',
    '16MiB',
    '--output',
    path.join(dir, 'out', 'sent.jsonl'),
    '--failures',
    path.join(dir, 'out', 'sent.failed.jsonl'),
  ]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(server.calls.length, 1);
  assert.ok(server.calls[0]!.bytes > 6 * MiB, `the server got ${server.calls[0]!.bytes} bytes`);
});

test('maxLineBytes in the job; a server at its default 4 MiB limit fails the call with RESOURCE_EXHAUSTED, as is', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none', ...small});
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), `${JSON.stringify({blob: SIX_MIB})}\n`);
  const result = await runCli(['run', writeJob(dir, {target: server.address, maxLineBytes: '10MB'}), '--no-progress']);
  assert.equal(result.code, 1);
  const [failed] = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as {status: string}[];
  assert.equal(failed!.status, 'RESOURCE_EXHAUSTED');
  assert.equal(server.calls.length, 0);
});

test('channelOptions grpc.max_send_message_length below the request stops it at the client', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none', serverOptions: {'grpc.max_receive_message_length': 16 * MiB}, ...small});
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), `${JSON.stringify({blob: SIX_MIB})}\n`);
  const result = await runCli([
    'run',
    writeJob(dir, {target: server.address, maxLineBytes: '10MB', channelOptions: {'grpc.max_send_message_length': MiB}}),
    '--no-progress',
  ]);
  assert.equal(result.code, 1);
  const [failed] = readJsonlFile(path.join(dir, 'out', 'results.jsonl')) as {status: string; error: string}[];
  assert.equal(failed!.status, 'RESOURCE_EXHAUSTED');
  assert.match(failed!.error, /size larger than 1048576/);
  assert.equal(server.calls.length, 0);
});

test("a 6 MiB request from a job module's requests() is sent (no stack overflow)", async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none', serverOptions: {'grpc.max_receive_message_length': 16 * MiB}, ...small});
  const dir = tempDir(t);
  const file = path.join(dir, 'job.mjs');
  writeFileSync(
    file,
    `export default {name: 'module', target: ${JSON.stringify(server.address)}, proto: ${JSON.stringify(JSON_PROTO)}, method: ${JSON.stringify(ECHO)},
    output: 'out/results.jsonl', failures: 'out/failed.jsonl',
    *requests() { yield {blob: Buffer.alloc(${6 * MiB}, 0xfb).toString('base64')}; }};\n`,
  );
  const result = await runCli(['run', file, '--no-progress']);
  assert.equal(result.code, 0, result.stderr);
  assert.ok(server.calls[0]!.bytes > 6 * MiB);
});

test('a bad maxLineBytes is a validation error naming the key', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), '{}\n');
  for (const [value, message] of [
    ['lots', /maxLineBytes: expected a size like 16MiB, 64MB, 512KiB or a number of bytes, got "lots" \(string\)/],
    [0, /maxLineBytes: expected a size like 16MiB/],
    ['1GiB', /maxLineBytes: expected at most 512MiB/],
  ] as const) {
    const result = await runCli(['validate', writeJob(dir, {target: '127.0.0.1:1', maxLineBytes: value})]);
    assert.equal(result.code, 2, String(value));
    assert.match(result.stderr, message);
  }
  const flag = await runCli(['run', writeJob(dir, {target: '127.0.0.1:1'}), '--max-line-bytes', 'huge']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /--max-line-bytes.*expected a size like 16MiB/);
});
