import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {runCli} from '../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

type Summary = {
  failed: number;
  total: number;
  ok: number;
  output: string;
  failures: string;
  next: string[];
  byStatus: Record<string, number>;
};

/** 40 records: lines 5, 10, ... 25 NOT_FOUND; 7, 14, 21, 28 UNAVAILABLE; 33 and 38 DEADLINE_EXCEEDED (with an 8s deadline); the rest OK. */
function mixed(): {records: unknown[]; notFound: string[]; resend: string[]} {
  const records = Array.from({length: 40}, (_, i) => {
    const n = i + 1;
    if (n === 33 || n === 38) return {id: `d${n}`, latencyMs: 120_000};
    if (n % 7 === 0 && n <= 28) return {id: `u${n}`, failCode: 14};
    if (n % 5 === 0 && n <= 25) return {id: `n${n}`, failCode: 5};
    return {id: `ok${n}`};
  });
  return {records, notFound: ['n5', 'n10', 'n15', 'n20', 'n25'], resend: ['u7', 'u14', 'u21', 'u28', 'd33', 'd38']};
}

test('the next step re-sends only the records worth re-sending (UNAVAILABLE, DEADLINE_EXCEEDED); NOT_FOUND is listed apart with its own command', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const {records, notFound, resend} = mixed();
  writeJsonl(path.join(dir, 'input.jsonl'), records);
  const job = writeJob(dir, server.address, {
    retry: {maxAttempts: 1},
    deadline: '8s',
    output: 'out/{runId}.jsonl',
    failures: 'out/{runId}.failed.jsonl',
  });
  const state = path.join(dir, 'state.db');
  const first = await runCli(['run', job, '--json', '--no-progress', '--state', state], {cwd: dir, timeoutMs: 120_000});
  assert.equal(first.code, 1, first.stderr);
  const summary = JSON.parse(first.stdout) as Summary;
  assert.deepEqual(summary.byStatus, {OK: 29, DEADLINE_EXCEEDED: 2, NOT_FOUND: 5, UNAVAILABLE: 4});
  assert.equal(summary.next.length, 2);
  assert.match(summary.next[0]!, /--input out\/\S+\.failed\.jsonl --only-status DEADLINE_EXCEEDED,UNAVAILABLE$/);
  assert.match(summary.next[1]!, /--input out\/\S+\.failed\.jsonl --only-status NOT_FOUND$/);

  const before = server.stats.ids.length;
  const again = await runCli([...summary.next[0]!.split(' ').slice(1), '--json', '--no-progress'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(again.code, 1, again.stderr); // they ask to fail again
  assert.deepEqual(
    server.stats.ids.slice(before).sort(),
    [...resend].sort(),
    'only the UNAVAILABLE and DEADLINE_EXCEEDED records were sent',
  );
  const resent = JSON.parse(again.stdout) as Summary;
  assert.equal(resent.total, 6);
  // Their keys are their lines in the original input.
  assert.deepEqual(
    (readJsonlFile(resent.output) as {key: {line: number}}[]).map((r) => r.key.line).sort((a, b) => a - b),
    [7, 14, 21, 28, 33, 38],
  );

  const chosen = await runCli(
    ['run', job, '-i', summary.failures, '--only-status', 'not_found', '--json', '--no-progress', '--state', state],
    {cwd: dir, timeoutMs: 120_000},
  );
  assert.equal(chosen.code, 1, chosen.stderr);
  assert.deepEqual(server.stats.ids.slice(before + 6).sort(), [...notFound].sort());
});

test('--only-status is refused, nothing sent, for an unknown status or an input that is no failures file', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = writeJob(dir, server.address);
  const bogus = await runCli(['run', job, '--only-status', 'UNAVAILABLE,NOPE'], {cwd: dir, timeoutMs: 120_000});
  assert.equal(bogus.code, 2);
  assert.match(
    bogus.stderr,
    /--only-status.*expected failed statuses like UNAVAILABLE,DEADLINE_EXCEEDED \(names or numbers 1-16, or INVALID\), got "NOPE"/,
  );
  const plain = await runCli(['run', job, '--only-status', 'UNAVAILABLE', '--state', path.join(dir, 'state.db')], {
    cwd: dir,
    timeoutMs: 120_000,
  });
  assert.equal(plain.code, 2);
  assert.match(
    plain.stderr,
    /--only-status picks records of a failures file by the status they failed with, read from its \.lines file; \S+input\.jsonl\.lines is not there/,
  );
  assert.equal(server.stats.calls, 0);
});
