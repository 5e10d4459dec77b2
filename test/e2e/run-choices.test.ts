import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {autoWorkers} from '../../src/util/cores.js';
import {runCli} from '../helpers/cli.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {DEMO_PROTOSET} from '../helpers/schema-server.js';
import {startServer} from '../helpers/server.js';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');

test('run:started and the --json summary name the workers workers: auto became, the schema source and the transport', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 300}, (_, i) => ({id: `r${i}`})),
  );
  const job = writeJob(dir, server.address, {concurrency: 250});
  const run = await runCli(['run', job, '--json', '--no-progress', '--log-format', 'json', '--state', path.join(dir, 'state.db')], {
    cwd: dir,
    env: {GRPC_BATCH_LOG: 'info'},
    timeoutMs: 120_000,
  });
  assert.equal(run.code, 0, run.stderr);
  const workers = autoWorkers(250); // the cores this machine gives the process, as the run counts them
  const chosen = {
    workers,
    workersSetting: 'auto',
    executor: workers > 1 ? 'worker threads' : 'main thread',
    schema: 'proto',
    transport: {library: 'grpc-js', security: 'plaintext', channels: 1},
  };
  assert.deepEqual((JSON.parse(run.stdout) as {chosen: unknown}).chosen, chosen);
  const started = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l['event'] === 'run:started');
  assert.ok(started, run.stderr);
  assert.deepEqual(
    {
      workers: started['workers'],
      workersSetting: started['workersSetting'],
      executor: started['executor'],
      schema: started['schema'],
      transport: started['transport'],
    },
    chosen,
  );
  assert.match(
    String(started['msg']),
    workers > 1
      ? new RegExp(
          `^run started: ${workers} worker threads \\(workers: auto\\), schema from proto files, grpc-js plaintext over 1 channel each$`,
        )
      : /^run started: the main thread \(workers: auto\), schema from proto files, grpc-js plaintext over 1 channel$/,
  );
});

test('the text summary says it ran on the main thread, from a protoset, over TLS', async (t) => {
  const server = await startServer(t, {
    tls: {key: readFileSync(path.join(TLS, 'server.key')), cert: readFileSync(path.join(TLS, 'server.pem'))},
  });
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
  const job = writeJob(dir, server.address, {
    proto: undefined,
    protoset: DEMO_PROTOSET,
    workers: 1,
    channels: 2,
    tls: {ca: path.join(TLS, 'ca.pem')},
  });
  const run = await runCli(['run', job, '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^ {2}ran on {4}the main thread, schema from protoset files, grpc-js TLS over 2 channels$/m);
  assert.equal(server.stats.calls, 2);
});

test('a run on transport h2 says so in its summary, not grpc-js', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
  const job = writeJob(dir, server.address, {workers: 1, transport: 'h2'});
  const run = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual((JSON.parse(run.stdout) as {chosen: {transport: unknown}}).chosen.transport, {
    library: 'h2',
    security: 'plaintext',
    channels: 1,
  });
  assert.equal(server.stats.calls, 2);
});
