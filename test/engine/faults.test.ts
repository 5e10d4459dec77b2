import assert from 'node:assert/strict';
import path from 'node:path';
import {PassThrough} from 'node:stream';
import {test} from 'node:test';
import {startDemoServer} from '../../src/demo/server.js';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';

test('survives the server going down for 2 s mid-run: every record ends OK', async (t) => {
  const first = await startServer(t);
  const port = first.port;
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 400}, (_, i) => ({id: `r${i}`, latencyMs: 5})),
  );
  const loaded = await loadJob(
    writeJob(dir, first.address, {
      concurrency: 20,
      deadline: '15s',
      waitForReady: true,
      retry: {maxAttempts: 5, initialBackoff: '50ms', maxBackoff: '500ms', retryableStatusCodes: ['UNAVAILABLE', 'CANCELLED']},
    }),
  );
  let seen = 0;
  let restarted: Promise<unknown> | undefined;
  const job = {
    ...loaded,
    spec: {
      ...loaded.spec,
      onResult: () => {
        if (++seen !== 100) return;
        restarted = first
          .stop(0)
          .then(() => new Promise((resolve) => setTimeout(resolve, 2000)))
          .then(() => startDemoServer({address: `127.0.0.1:${port}`}))
          .then((second) => (t.after(() => second.stop(200)), second));
      },
    },
  };
  const summary = await runJob(job);
  const second = (await restarted) as Awaited<ReturnType<typeof startDemoServer>>;
  assert.equal(summary.total, 400);
  assert.equal(summary.ok, 400, JSON.stringify(summary.byStatus));
  assert.ok(second.stats.calls > 0, 'the restarted server took calls');
  assert.ok(first.stats.calls + second.stats.calls >= 400);
});

test('completes every record against a server that fails 30% of calls with UNAVAILABLE', async (t) => {
  const server = await startServer(t, {unavailableRate: 0.3});
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 500}, (_, i) => ({id: `r${i}`})),
  );
  const summary = await runJob(
    await loadJob(
      writeJob(dir, server.address, {
        concurrency: 50,
        retry: {maxAttempts: 20, initialBackoff: '1ms', maxBackoff: '10ms'},
      }),
    ),
  );
  assert.equal(summary.ok, 500, JSON.stringify(summary));
  assert.ok(summary.retried > 0);
  assert.equal(summary.retriesThrottled, 0);
  assert.equal(server.stats.byStatus['UNAVAILABLE'], summary.attempts - 500);
});

test('maxFailures stops the run with a reason once passed', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 1000}, (_, i) => ({id: `r${i}`, failCode: 13})),
  );
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {concurrency: 5, maxFailures: 10})));
  assert.equal(summary.status, 'failed');
  assert.match(summary.abortReason!, /maxFailures: 11 failed records, more than the job allows \(10\)/);
  assert.equal(summary.stop, 'maxFailures');
  assert.ok(summary.total < 30, `sent ${summary.total}`);
  assert.equal(server.stats.calls, summary.total);
  assert.equal(readJsonlFile(summary.failures!).length, summary.total);
});

test('maxInvalid stops the run with a reason once passed', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 100}, (_, i) => (i % 2 ? '{"id": 1}' : {id: `r${i}`})),
  );
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {concurrency: 1, maxInvalid: 3})));
  assert.equal(summary.status, 'failed');
  assert.equal(summary.invalid, 4);
  assert.match(summary.abortReason!, /maxInvalid: 4 invalid records/);
  assert.equal(summary.stop, 'maxInvalid');
  assert.ok(summary.lastLine < 100);
});

test('a stop is honoured while the run waits for more input on stdin', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const stdin = new PassThrough();
  stdin.write('{"id":"a"}\n{"id":"b"}\n'); // and then nothing more, never ended
  const stop = new AbortController();
  const loaded = await loadJob(writeJob(dir, server.address, {input: '-'}));
  let seen = 0;
  const job = {...loaded, spec: {...loaded.spec, onResult: () => void (++seen === 2 && setTimeout(() => stop.abort('SIGINT'), 20))}};
  const summary = await runJob(job, {stdin, signal: stop.signal});
  assert.equal(summary.status, 'cancelled');
  assert.equal(summary.ok, 2);
});
