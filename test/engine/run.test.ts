import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {Readable} from 'node:stream';
import {test} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {assertCameOver, startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, TRANSPORTS, writeJob, writeJsonl} from '../helpers/job.js';

type Line = {line: number; status: string; attempts: number; code?: number; error?: string; response?: {id: string; attempt: number}};

for (const transport of TRANSPORTS) {
  test(`sends every record once and reports them all OK (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: 500}, (_, i) => ({id: `r${i}`})),
    );
    const job = await loadJob(writeJob(dir, server.address, {transport, concurrency: 20}));
    const summary = await runJob(job);
    assert.equal(summary.status, 'succeeded');
    assert.equal(summary.total, 500);
    assert.equal(summary.ok, 500);
    assert.deepEqual(summary.byStatus, {OK: 500});
    assert.equal(summary.attempts, 500);
    assert.equal(server.stats.calls, 500);
    assert.deepEqual(new Set(server.stats.ids), new Set(Array.from({length: 500}, (_, i) => `r${i}`)));
    const results = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
    assert.equal(results.length, 500);
    assert.deepEqual(
      results.map((r) => r.line).sort((a, b) => a - b),
      Array.from({length: 500}, (_, i) => i + 1),
    );
    const first = results.find((r) => r.line === 1)!;
    assert.equal(first.response?.id, 'r0');
    assert.equal(summary.failures, undefined);
    assertCameOver(server, transport);
  });
}

for (const transport of TRANSPORTS) {
  test(`never has more calls in flight at the server than the concurrency limit (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: 300}, (_, i) => ({id: `r${i}`, latencyMs: 5})),
    );
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport, concurrency: 7})));
    assert.equal(summary.ok, 300);
    assert.equal(server.stats.maxInFlight, 7);
  });
}

for (const transport of TRANSPORTS) {
  test(`counts final statuses by name when the server fails some records (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    const records = Array.from({length: 60}, (_, i) => ({id: `r${i}`, failCode: i % 3 === 0 ? 5 : i % 5 === 0 ? 7 : 0}));
    writeJsonl(path.join(dir, 'input.jsonl'), records);
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport})));
    const notFound = records.filter((r) => r.failCode === 5).length;
    const denied = records.filter((r) => r.failCode === 7).length;
    assert.equal(summary.status, 'failed');
    assert.deepEqual(summary.byStatus, {OK: 60 - notFound - denied, NOT_FOUND: notFound, PERMISSION_DENIED: denied});
    assert.equal(summary.failed, notFound + denied);
    const results = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
    const failedLine = results.find((r) => r.line === 1)!;
    assert.equal(failedLine.status, 'NOT_FOUND');
    assert.equal(failedLine.code, 5);
    assert.match(failedLine.error!, /asked to fail with code 5/);
  });
}

for (const transport of TRANSPORTS) {
  test(`retries transient UNAVAILABLE until OK and records the attempts per record (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'once', failFirstAttempts: 1}, {id: 'twice', failFirstAttempts: 2}, {id: 'never'}]);
    const retry = {maxAttempts: 4, initialBackoff: '1ms', maxBackoff: '5ms'};
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport, retry})));
    assert.equal(summary.status, 'succeeded');
    assert.equal(summary.attempts, 2 + 3 + 1);
    assert.equal(summary.retried, 2);
    assert.equal(server.stats.attemptsById.get('twice'), 3);
    const byId = new Map((readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).map((r) => [r.response!.id, r]));
    assert.equal(byId.get('once')!.attempts, 2);
    assert.equal(byId.get('twice')!.attempts, 3);
    assert.equal(byId.get('twice')!.response!.attempt, 3);
    assert.equal(byId.get('never')!.attempts, 1);
  });
}

for (const transport of TRANSPORTS) {
  test(`gives up after maxAttempts and does not retry codes outside retryableStatusCodes (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [
      {id: 'stubborn', failFirstAttempts: 10},
      {id: 'bad', failCode: 3},
    ]);
    const retry = {maxAttempts: 3, initialBackoff: '1ms', maxBackoff: '2ms'};
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport, retry})));
    assert.deepEqual(summary.byStatus, {INVALID_ARGUMENT: 1, UNAVAILABLE: 1});
    assert.equal(server.stats.attemptsById.get('stubborn'), 3);
    assert.equal(server.stats.calls, 3 + 1);
    const results = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
    assert.deepEqual(results.map((r) => [r.line, r.status, r.attempts]).sort(), [
      [1, 'UNAVAILABLE', 3],
      [2, 'INVALID_ARGUMENT', 1],
    ]);
  });
}

for (const transport of TRANSPORTS) {
  test(`ends a call on a slow server with DEADLINE_EXCEEDED (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'slow', latencyMs: 8000}, {id: 'fast'}]);
    // 1 s: the fast call must answer within it even on a machine loaded by two busy loops (100 ms did not).
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport, deadline: '1s'})));
    assert.deepEqual(summary.byStatus, {OK: 1, DEADLINE_EXCEEDED: 1});
    assert.ok(summary.durationMs < 8000, `the run waited for the slow call: ${summary.durationMs}ms`);
  });
}

test('reports invalid records with their line numbers and still sends the rest', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [
    '{"id":"a"}',
    '{"id":',
    '{"id":"b","count":"many"}',
    '{"id":"c","colour":"red"}',
    '{"id":"d"}',
  ]);
  const summary = await runJob(await loadJob(writeJob(dir, server.address)));
  assert.equal(summary.status, 'failed');
  assert.equal(summary.total, 5);
  assert.equal(summary.ok, 2);
  assert.equal(summary.invalid, 3);
  assert.equal(server.stats.calls, 2);
  const results = (readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]).filter((r) => r.status === 'INVALID');
  assert.deepEqual(results.map((r) => r.line).sort(), [2, 3, 4]);
  assert.match(results.find((r) => r.line === 2)!.error!, /not JSON/);
  assert.match(results.find((r) => r.line === 3)!.error!, /count: expected an integer/);
  assert.match(results.find((r) => r.line === 4)!.error!, /colour: unknown field/);
  assert.deepEqual(
    readFileSync(path.join(dir, 'out/failed.jsonl'), 'utf8').split('\n').filter(Boolean).sort(),
    ['{"id":', '{"id":"b","count":"many"}', '{"id":"c","colour":"red"}'].sort(),
  );
});

test('a failures file fed back as input completes the job', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const records = Array.from({length: 40}, (_, i) => ({id: `r${i}`, ...(i % 4 === 0 ? {failFirstAttempts: 1} : {})}));
  writeJsonl(path.join(dir, 'input.jsonl'), records);
  const jobFile = writeJob(dir, server.address, {retry: {maxAttempts: 1}});
  const first = await runJob(await loadJob(jobFile));
  assert.equal(first.failed, 10);
  assert.ok(first.failures);
  const second = await runJob(
    await loadJob(jobFile, {
      input: first.failures,
      output: path.join(dir, 'out/second.jsonl'),
      failures: path.join(dir, 'out/second.failed.jsonl'),
    }),
  );
  assert.equal(second.status, 'succeeded');
  assert.equal(second.total, 10);
  assert.equal(second.ok, 10);
  const okIds = new Set(
    [...(readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[]), ...(readJsonlFile(path.join(dir, 'out/second.jsonl')) as Line[])]
      .filter((r) => r.status === 'OK')
      .map((r) => r.response!.id),
  );
  assert.equal(okIds.size, 40);
});

for (const transport of TRANSPORTS) {
  test(`sends the job metadata with every call (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
    const metadata = {
      authorization: 'Bearer ${TEST_TOKEN}',
      'x-demo-echo': 'hello',
      'trace-bin': Buffer.from([1, 2, 3]).toString('base64'),
    };
    const job = await loadJob(writeJob(dir, server.address, {transport, metadata}), {}, {...process.env, TEST_TOKEN: 's3cret'});
    const summary = await runJob(job);
    assert.equal(summary.ok, 1);
    assert.equal(server.stats.lastMetadata?.['authorization'], 'Bearer s3cret');
    assert.deepEqual(server.stats.lastMetadata?.['trace-bin'], Buffer.from([1, 2, 3]));
    const [result] = readJsonlFile(path.join(dir, 'out/results.jsonl')) as {response: {echoedMetadata: string}}[];
    assert.equal(result!.response.echoedMetadata, 'hello');
    assertCameOver(server, transport);
  });
}

test('reads input from standard input when input is -', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const job = await loadJob(writeJob(dir, server.address, {input: '-'}));
  const stdin = Readable.from(['{"id":"a"}\n{"id":', '"b"}\n']);
  const summary = await runJob(job, {stdin});
  assert.equal(summary.ok, 2);
  assert.deepEqual(server.stats.ids.sort(), ['a', 'b']);
});

for (const transport of TRANSPORTS) {
  test(`a graceful stop lets calls in flight finish and leaves a summary that matches the files (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: 2000}, (_, i) => ({id: `r${i}`, latencyMs: 2})),
    );
    const loaded = await loadJob(writeJob(dir, server.address, {transport, concurrency: 10}));
    const stop = new AbortController();
    let seen = 0;
    const job = {...loaded, spec: {...loaded.spec, onResult: () => void (++seen === 100 && stop.abort('SIGINT'))}};
    const summary = await runJob(job, {signal: stop.signal});
    assert.equal(summary.status, 'cancelled');
    assert.equal(summary.stopReason, 'SIGINT');
    assert.equal(summary.stop, 'signal');
    assert.ok(summary.total >= 100 && summary.total <= 110, `dispatched ${summary.total}`);
    // A record taken in but still waiting for its turn to be sent when the stop came is not sent
    // (no new calls after a stop): no result, counted unfinished, sent by a resume.
    assert.ok(summary.unfinished <= 10, `${summary.unfinished} unfinished`);
    assert.equal(summary.ok + summary.unfinished, summary.total, 'every call in flight finished OK');
    assert.equal(server.stats.calls, summary.ok, 'no call was cut');
    const results = readJsonlFile(path.join(dir, 'out/results.jsonl')) as Line[];
    assert.equal(results.length, summary.ok);
    assert.ok(results.every((r) => r.status === 'OK'));
    assert.equal(summary.lastLine, summary.total, 'the records after lastLine were never read');
    assert.equal(new Set(results.map((r) => r.line)).size, summary.ok, 'one result line per record');
    assert.ok(
      results.every((r) => r.line <= summary.lastLine),
      'no result past the last line read',
    );
  });
}

for (const transport of TRANSPORTS) {
  test(`a cancel after the stop cuts the calls in flight: no result line, not in the failures file, sent again by a resume (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: 50}, (_, i) => ({id: `r${i}`, latencyMs: i < 5 ? 0 : 300})),
    );
    const loaded = await loadJob(writeJob(dir, server.address, {transport, concurrency: 10}));
    const stop = new AbortController();
    const cancel = new AbortController();
    let seen = 0;
    const job = {
      ...loaded,
      spec: {...loaded.spec, onResult: () => void (++seen === 5 && (stop.abort('SIGTERM'), setTimeout(() => cancel.abort('SIGTERM'), 50)))},
    };
    const summary = await runJob(job, {runId: 'cut', signal: stop.signal, cancelSignal: cancel.signal});
    assert.equal(summary.status, 'cancelled');
    assert.equal(summary.ok, 5);
    assert.equal(summary.failed, 0);
    assert.ok(summary.unfinished > 0, JSON.stringify(summary));
    assert.equal(summary.byStatus['CANCELLED'], undefined);
    assert.equal(summary.failures, undefined, 'nothing was failed');
    assert.equal(readJsonlFile(summary.output).length, 5);
    const resumed = await runJob(loaded, {runId: 'cut', resume: true});
    assert.equal(resumed.status, 'succeeded');
    assert.equal(resumed.ok, 50);
    const lines = (readJsonlFile(summary.output) as Line[]).map((r) => r.line).sort((a, b) => a - b);
    assert.deepEqual(
      lines,
      Array.from({length: 50}, (_, i) => i + 1),
    );
  });
}

test('many records waiting in backoff at once give no MaxListenersExceededWarning', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 40}, (_, i) => ({id: `r${i}`, failFirstAttempts: 1})),
  );
  const job = await loadJob(
    writeJob(dir, server.address, {
      concurrency: 40,
      retry: {maxAttempts: 2, initialBackoff: '300ms', maxBackoff: '300ms', backoffMultiplier: 1},
    }),
  );
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const summary = await runJob(job, {cancelSignal: new AbortController().signal, signal: new AbortController().signal});
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  assert.equal(summary.ok, 40);
  assert.equal(server.stats.calls, 80, 'every record waited in backoff once');
  assert.deepEqual(
    warnings.map((w) => w.name),
    [],
  );
});

test('holds the rps limit over the run', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 30}, (_, i) => ({id: `r${i}`})),
  );
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {rps: 50})));
  assert.equal(summary.ok, 30);
  // At 50/s with a burst of 5, 30 calls cannot start in less than (30 - 5) / 50 s. A lower bound
  // only: a loaded machine makes the run slower, never faster.
  assert.ok(summary.durationMs >= 480, `30 calls at rps 50 took ${summary.durationMs}ms`);
});

test('runs a job module with requests() and calls onResult once per record', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const file = path.join(dir, 'job.mjs');
  writeFileSync(
    file,
    `
    const {DEMO_PROTO} = await import(${JSON.stringify(new URL('../../src/util/paths.ts', import.meta.url).href)});
    export const seen = [];
    export default {
      name: 'module-job',
      target: ${JSON.stringify(server.address)},
      proto: DEMO_PROTO,
      method: 'demo.v1.DemoService/Process',
      output: 'out/results.jsonl',
      async *requests() { for (let i = 0; i < 25; i++) yield {id: 'm' + i, count: i}; },
      onResult(result) { seen.push(result.line); },
    };`,
  );
  const job = await loadJob(file);
  const summary = await runJob(job);
  assert.equal(summary.job, 'module-job');
  assert.equal(summary.ok, 25);
  const {seen} = (await import(new URL(`file://${file}`).href)) as {seen: number[]};
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    Array.from({length: 25}, (_, i) => i + 1),
  );
});

test('loads a TypeScript job module written with defineJob', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const file = path.join(dir, 'job.ts');
  const index = new URL('../../src/index.ts', import.meta.url).href;
  const paths = new URL('../../src/util/paths.ts', import.meta.url).href;
  writeFileSync(
    file,
    `
    import {defineJob, type RecordResult} from ${JSON.stringify(index)};
    import {DEMO_PROTO} from ${JSON.stringify(paths)};
    const ids: string[] = ['x', 'y', 'z'];
    export default defineJob({
      name: 'typed-job',
      target: ${JSON.stringify(server.address)},
      proto: DEMO_PROTO,
      method: 'demo.v1.DemoService/Process',
      output: 'out/results.jsonl',
      *requests() { for (const id of ids) yield {id}; },
      onResult(result: RecordResult) { if (result.status !== 'OK') throw new Error('unexpected'); },
    });`,
  );
  const summary = await runJob(await loadJob(file));
  assert.equal(summary.job, 'typed-job');
  assert.equal(summary.ok, 3);
  assert.deepEqual(server.stats.ids.sort(), ['x', 'y', 'z']);
});

test('the failures file holds each failed line byte for byte: a CRLF line keeps its CR, line 1 its BOM, on one thread or several', async (t) => {
  const server = await startServer(t);
  for (const workers of [1, 2]) {
    const dir = tempDir(t);
    const lines = [
      Buffer.from('\ufeff{"id":"a","failCode":3}\r\n'), // BOM, CRLF, fails
      Buffer.from('{"id":"b"}\r\n'), // OK
      Buffer.from('{"id":"c","failCode":5}\r\n'), // fails
      Buffer.from('not json\r\n'), // invalid
      Buffer.concat([Buffer.from('{"id":"'), Buffer.from([0xff]), Buffer.from('"}\r\n')]), // not UTF-8
      Buffer.from('{"id":"d","failCode":3}'), // fails, no newline at the end
    ];
    writeFileSync(path.join(dir, 'input.jsonl'), Buffer.concat(lines));
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {workers})));
    assert.deepEqual([summary.ok, summary.failed, summary.invalid], [1, 3, 2], `workers ${workers}`);
    // In the order the records ended (invalid ones at once), each line's bytes as input.
    const expected = [lines[0]!, lines[2]!, lines[3]!, lines[4]!, Buffer.from('{"id":"d","failCode":3}\n')]
      .map((l) => l.toString('hex'))
      .sort();
    const failures = readFileSync(path.join(dir, 'out', 'failed.jsonl'));
    assert.equal(failures.at(-1), 0x0a);
    const written: string[] = [];
    for (let start = 0, end = failures.indexOf(0x0a); end !== -1; start = end + 1, end = failures.indexOf(0x0a, start))
      written.push(failures.subarray(start, end + 1).toString('hex'));
    assert.deepEqual(written.sort(), expected, `workers ${workers}`);
  }
});
