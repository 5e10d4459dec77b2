import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {runOnScreen} from '../helpers/screen.js';
import {startServer} from '../helpers/server.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';

/** 300 records: every 40th does not fit the request type (7), every other 25th asks the server for INVALID_ARGUMENT (11). */
function mixedInput(file: string): void {
  writeJsonl(
    file,
    Array.from({length: 300}, (_, i) => {
      const n = i + 1;
      if (n % 40 === 0) return {id: `r${n}`, count: 'many'};
      return n % 25 === 0 ? {id: `r${n}`, latencyMs: 5, failCode: 3} : {id: `r${n}`, latencyMs: 5};
    }),
  );
}

test('terminal: a run with failures and invalid records leaves a clean screen: log lines above the bar, the bar gone, the summary whole', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  mixedInput(path.join(dir, 'input.jsonl'));
  const job = writeJob(dir, server.address, {concurrency: 4});
  const {code, screen, history, raw} = await runOnScreen(['run', job, '--progress-interval', '20ms'], {
    cwd: dir,
    cols: 100,
    rows: 40,
    env: {GRPC_BATCH_LOG: 'info'},
  });
  t.diagnostic(`\n${screen.join('\n')}`);
  assert.equal(code, 1);
  assert.ok(raw.includes('░'), 'a progress bar was drawn');
  assert.doesNotMatch(raw, /ETA (NaN|Inf|NF)|NaN|Infinity/, 'no ETA before the rate is known');
  assert.ok(!history.some((line) => line.includes('{"level"')), 'no JSON log lines on a terminal');
  assert.ok(!history.some((line) => /[█░]/.test(line)), 'the bar is cleared, not left between the lines');
  // Every log line starts a row with its time, and is whole.
  const invalid = history.filter((line) => line.includes('record:invalid'));
  assert.equal(invalid.length, 7);
  for (const line of invalid)
    assert.match(
      line,
      /^\d\d:\d\d:\d\d\.\d{3} WARN  record:invalid +input\.jsonl:\d+0: count: expected an integer \(int32\), got "many" \(string\)$/,
    );
  const top = history.findIndex((line) => line.startsWith('✖ test failed (run '));
  assert.ok(top > 0, `the summary starts a row:\n${history.join('\n')}`);
  const summary = history.slice(top);
  assert.equal(summary[1], '  records   300 read: 282 ok, 11 failed, 7 invalid');
  assert.equal(summary[2], '  statuses  OK 282, INVALID_ARGUMENT 11');
  assert.equal(summary[3], '  errors    INVALID_ARGUMENT 11: demo: asked to fail with code 3');
  assert.equal(summary[4], '            INVALID 7: count: expected an integer (int32), got "many" (string)');
  assert.ok(
    summary.slice(1).every((line) => line.startsWith('  ')),
    `every summary row is indented, nothing else is mixed in:\n${summary.join('\n')}`,
  );
  const next = summary.findIndex((line) => line.startsWith('  next      '));
  assert.match(summary[next]!, /^ {2}next {6}grpc-batch run .*job\.yaml --input out\/failed\.jsonl$/);
  assert.match(summary[next + 1]!, /18 records fail again as they are \(INVALID_ARGUMENT 11, INVALID 7\): fix them in that file/);
  assert.equal(server.stats.calls, 293);
});

test('terminal: logs are JSON lines with --log-format json, still above the bar', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  mixedInput(path.join(dir, 'input.jsonl'));
  const job = writeJob(dir, server.address, {concurrency: 4});
  const {code, history} = await runOnScreen(['run', job, '--log-format', 'json', '--progress-interval', '20ms'], {
    cwd: dir,
    cols: 300,
    rows: 40,
    env: {GRPC_BATCH_LOG: 'info'},
  });
  assert.equal(code, 1);
  const logs = history.filter((line) => line.startsWith('{'));
  assert.ok(logs.length >= 9, history.join('\n'));
  for (const line of logs) assert.equal((JSON.parse(line) as {level: number}).level > 0, true, line);
  assert.ok(!history.some((line) => /[█░]/.test(line)));
});
