import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import type {ErrorCount, RunSummary} from '../../src/engine/stats.js';
import {DEMO_PROTO} from '../../src/util/paths.js';
import {MAX_GROUPS, messageTemplate} from '../../src/engine/error-groups.js';
import {RunStats} from '../../src/engine/stats.js';
import {runCli} from '../helpers/cli.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startSchemaServer} from '../helpers/schema-server.js';
import {startServer} from '../helpers/server.js';

const ProcessRequest = protobuf.loadSync(DEMO_PROTO).lookupType('demo.v1.ProcessRequest');
const sum = (rows: readonly ErrorCount[] | undefined) => (rows ?? []).reduce((n, row) => n + row.count, 0);

/** The `errors` rows of a text summary, from the `errors` heading to the next section. */
function errorSection(stdout: string): string[] {
  const lines = stdout.split('\n');
  const start = lines.findIndex((line) => line.startsWith('  errors '));
  const end = lines.findIndex((line, i) => i > start && /^ {2}\S/.test(line) && !line.startsWith('  errors '));
  return start < 0 ? [] : lines.slice(start, end);
}

test('a status whose messages name each record is one row with an example, and its rows add up (text and --json)', async (t) => {
  // As real servers write it: the record's own id in the message.
  const server = await startSchemaServer(t, {
    reflection: 'none',
    answer: (_call, request) => ({
      error: {code: grpc.status.NOT_FOUND, details: `order ${(ProcessRequest.decode(request) as unknown as {id: string}).id} not found`},
    }),
  });
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 400}, (_, i) => ({id: `o${i}`})),
  );
  const job = writeJob(dir, server.address, {output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl', concurrency: 8});

  const json = await runCli(['run', job, '--json'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(json.code, 1, json.stderr);
  const summary = JSON.parse(json.stdout) as RunSummary;
  assert.equal(summary.byStatus['NOT_FOUND'], 400);
  const rows = summary.errors['NOT_FOUND']!;
  assert.equal(sum(rows), 400, JSON.stringify(rows));
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.equal(rows[0]!.message, 'order <id> not found');
  assert.match(rows[0]!.example ?? '', /^order o\d+ not found$/);

  const text = await runCli(['run', job, '--no-progress'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(text.code, 1, text.stderr);
  const section = errorSection(text.stdout);
  assert.equal(section[0], '  errors    NOT_FOUND 400: order <id> not found', text.stdout);
  assert.match(section[1] ?? '', /^ {14}e\.g\. order o\d+ not found$/, text.stdout);
  assert.equal(section.length, 2, text.stdout);
  assert.equal(server.calls.length, 800);
});

test('deadline messages that differ only in their durations are one row', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  // Half the records answer at once (the backend is up), half outlast the deadline.
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 40}, (_, i) => (i % 2 ? {id: `slow-${i}`, latencyMs: 5000} : {id: `fast-${i}`})),
  );
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {deadline: '1s', concurrency: 20, retry: {maxAttempts: 1}})));
  const count = summary.byStatus['DEADLINE_EXCEEDED']!;
  assert.ok(count >= 20, JSON.stringify(summary));
  const rows = summary.errors['DEADLINE_EXCEEDED']!;
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.equal(rows[0]!.count, count);
  assert.match(rows[0]!.message, /^Deadline exceeded after (<duration>|\d+\.\d+s),remote_addr=(<address>|127\.0\.0\.1:\d+)$/);
});

test('the rules mask ids, numbers, durations and addresses, and keep the rest of the message', () => {
  assert.equal(messageTemplate('order o17 not found'), 'order <id> not found');
  assert.equal(
    messageTemplate('Deadline exceeded after 5.000s,LB pick: 0.001s,remote_addr=127.0.0.1:50999'),
    'Deadline exceeded after <duration>,remote_addr=<address>',
  );
  // grpc-js names a phase only when it took time: the timings are left out of the template.
  assert.equal(
    messageTemplate('Deadline exceeded after 5.001s,name resolution: 0.002s,remote_addr=[::1]:443'),
    'Deadline exceeded after <duration>,remote_addr=<address>',
  );
  assert.equal(messageTemplate('upstream db-3.internal:5432 refused; retry in 250ms'), 'upstream <address> refused; retry in <duration>');
  assert.equal(
    messageTemplate('request 550e8400-e29b-41d4-a716-446655440000 at 2026-12-07T22:05:07.123Z: 3 items'),
    'request <id> at <time>: <n> items',
  );
  assert.equal(
    messageTemplate('count: expected an integer (int32), got "many" (string)'),
    'count: expected an integer (int32), got "many" (string)',
  );
  assert.equal(messageTemplate('TLS: wrong version number'), 'TLS: wrong version number');
});

/** An id of letters only, which no rule masks. */
const name = (i: number) => i.toString(26).replace(/\d/g, (d) => 'qrstuvwxyz'[Number(d)]!);

test('a status keeps a bounded number of groups, and a remainder row makes its rows add up, merged parts too', () => {
  // Messages no rule can mask, differing in two words: each its own group, until the cap.
  const parts = [new RunStats(), new RunStats()];
  const distinct = 50_000;
  for (let i = 0; i < distinct; i++) parts[i % 2]!.recordFinal(grpc.status.NOT_FOUND, 1, `user ${name(i)} of ${name(i + 1)} not found`);
  for (let i = 0; i < 30; i++) parts[0]!.recordFinal(grpc.status.NOT_FOUND, 1, `user ${name(7)} of ${name(8)} not found`);
  const whole = new RunStats();
  for (const part of parts) whole.add(part);
  for (const stats of [parts[0]!, whole]) {
    const summary = stats.summarize({job: 'j', runId: 'r', output: 'o'});
    const rows = summary.errors['NOT_FOUND']!;
    assert.equal(sum(rows), summary.byStatus['NOT_FOUND'], JSON.stringify(rows));
    assert.equal(rows.length, 4, JSON.stringify(rows));
    assert.deepEqual(rows[3], {message: '(other messages)', count: summary.byStatus['NOT_FOUND']! - sum(rows.slice(0, 3)), other: true});
  }
  // A message frequent late in the run has its row, though the table was full when it came.
  const rows = whole.summarize({job: 'j', runId: 'r', output: 'o'}).errors['NOT_FOUND']!;
  assert.equal(rows[0]!.message, `user ${name(7)} of ${name(8)} not found`);
  assert.ok(rows[0]!.count >= 30, JSON.stringify(rows[0]));
  assert.ok(rows[3]!.count >= distinct - MAX_GROUPS, `at most ${MAX_GROUPS} groups are kept: ${rows[3]!.count}`);
});

test('past the cap, messages that differ in one word no rule masks are joined into one row', () => {
  const stats = new RunStats();
  for (let i = 0; i < 20_000; i++) stats.recordFinal(grpc.status.NOT_FOUND, 1, `user ${name(i)} not found`);
  for (let i = 0; i < 10; i++) stats.recordFinal(grpc.status.NOT_FOUND, 1, 'nothing here');
  const rows = stats.summarize({job: 'j', runId: 'r', output: 'o'}).errors['NOT_FOUND']!;
  assert.equal(sum(rows), 20_010, JSON.stringify(rows));
  assert.equal(rows[0]!.message, 'user <*> not found');
  assert.ok(rows[0]!.count >= 20_000 - MAX_GROUPS, JSON.stringify(rows[0]));
  assert.match(rows[0]!.example ?? '', /^user [a-z]+ not found$/);
  assert.deepEqual(rows[1], {message: 'nothing here', count: 10});
});
