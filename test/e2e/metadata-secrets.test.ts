import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {runCli} from '../helpers/cli.js';
import {tempDir, writeJsonl} from '../helpers/job.js';
import {DEMO_PROTOSET, startSchemaServer} from '../helpers/schema-server.js';

/** A YAML job of demo.v1.DemoService/Process at `target` with `metadata` (YAML lines, indented by the caller). */
function writeYamlJob(dir: string, target: string, metadata: string, extra = ''): string {
  writeFileSync(
    path.join(dir, 'job.yaml'),
    [
      'name: secrets',
      `target: ${target}`,
      `protoset: ${DEMO_PROTOSET}`,
      'method: demo.v1.DemoService/Process',
      'input: input.jsonl',
      'output: out/results.jsonl',
      'failures: out/failed.jsonl',
      extra,
      'metadata:',
      metadata,
      '',
    ].join('\n'),
  );
  return 'job.yaml';
}

// One that would be a malformed template, one that would be a well-formed one (and `id` is a field of every record).
const SECRETS = ['s3cr{{et', 'ab{{id}}cd}}'];

test('a secret holding "{{" is sent as it is, beside templated values, on one thread and on two', {concurrency: 2}, async (t) => {
  for (const workers of [1, 2]) {
    for (const secret of SECRETS) {
      await t.test(`workers: ${workers}, secret ${JSON.stringify(secret)}`, async (t) => {
        const server = await startSchemaServer(t, {reflection: 'none'});
        const dir = tempDir(t);
        writeJsonl(
          path.join(dir, 'input.jsonl'),
          Array.from({length: 10}, (_, i) => ({id: `r${i}`})),
        );
        const job = writeYamlJob(
          dir,
          server.address,
          '  authorization: "Bearer ${API_TOKEN}"\n  x-request-id: "req-{{id}}"',
          `workers: ${workers}\nconcurrency: 4`,
        );
        const result = await runCli(['run', job, '--no-progress'], {cwd: dir, env: {API_TOKEN: secret}, timeoutMs: 60_000});
        assert.equal(result.code, 0, result.stderr + result.stdout);
        assert.equal(server.calls.length, 10);
        for (const call of server.calls) assert.equal(call.metadata['authorization'], `Bearer ${secret}`, JSON.stringify(call.metadata));
        assert.deepEqual(
          server.calls.map((c) => c.metadata['x-request-id']).sort(),
          Array.from({length: 10}, (_, i) => `req-r${i}`).sort(),
        );
        assert.ok(!result.stdout.includes(secret) && !result.stderr.includes(secret), 'the secret is printed nowhere');
      });
    }
  }
});

test('an error about a metadata value never prints the secret in it', async (t) => {
  const server = await startSchemaServer(t, {reflection: 'none'});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'r1'}]);
  const secret = 'p4ss{{word!';
  const job = writeYamlJob(
    dir,
    server.address,
    [
      '  x-sig-bin: "${API_TOKEN}"', // not base64
      '  x-token: "${API_TOKEN}-{{ not a path }}"', // a malformed placeholder beside the secret
    ].join('\n'),
  );
  for (const command of ['run', 'validate']) {
    const result = await runCli([command, job], {cwd: dir, env: {API_TOKEN: secret}});
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /metadata\.x-sig-bin: metadata key "x-sig-bin" ends in -bin, so its value must be base64; character 5 of its 11 is not/,
    );
    assert.match(result.stderr, /metadata\.x-token: expected \{\{field\}\} or \{\{field\.nested\}\}.*got "\{\{not a path\}\}"/);
    assert.ok(!result.stderr.includes('p4ss') && !result.stdout.includes('p4ss'), result.stderr);
  }
  assert.equal(server.calls.length, 0);
});
