import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {IoError} from '../../src/errors.js';
import {loadJob} from '../../src/config/load.js';
import {formatProgressLine, formatSummary} from '../../src/engine/print.js';
import {runJob} from '../../src/engine/run.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';
import type {ProgressSnapshot} from '../../src/engine/run.js';
import {LineWriter} from '../../src/io/results.js';

const at = (done: number, total: number | undefined, elapsedMs: number): ProgressSnapshot => ({
  done,
  total,
  ok: done,
  failed: 0,
  invalid: 0,
  inFlight: 3,
  calls: 3,
  limit: 10,
  cap: 10,
  attempts: done,
  elapsedMs,
});

test('the progress line never wraps: it fits in columns - 1 at any width, the bar shrinking first', () => {
  for (const columns of [20, 40, 60, 80, 120, 200]) {
    for (const p of [at(0, 50_000, 0), at(1234, 50_000, 4000), at(50_000, 50_000, 9000), at(77, undefined, 2000)]) {
      const line = formatProgressLine(p, columns);
      assert.ok(line.length <= columns - 1, `${columns} columns: ${line.length} chars: ${line}`);
    }
  }
  assert.match(
    formatProgressLine(at(1234, 50_000, 4000), 120),
    /^█*░+ 2% \| 1234\/50000 \| 309\/s \| ETA 2m 38s \| failed 0 \| in flight 3$/,
  );
  assert.equal(
    formatProgressLine(at(77, undefined, 2000), 120),
    '77 done | 39/s | failed 0 | in flight 3',
    'no bar and no ETA without a total',
  );
});

test('the ETA is "-" until the rate is known, never NaN or Infinity', () => {
  assert.match(formatProgressLine(at(0, 1000, 0), 100), /\| 0\/s \| ETA - \|/);
  assert.match(formatProgressLine(at(0, 1000, 5000), 100), /ETA - \|/, 'nothing done yet');
  assert.match(formatProgressLine(at(10, 1000, 200), 100), /ETA - \|/, 'too early for a rate');
  assert.match(formatProgressLine(at(500, 1000, 1000), 100), /ETA 1s \|/);
  assert.match(formatProgressLine(at(999, 1000, 10_000), 100), /ETA <1s \|/);
  assert.match(formatProgressLine(at(1000, 1000, 10_000), 100), /100% .*ETA 0s \|/);
});

test('a file that cannot be written is an I/O error naming the job key and the path', () => {
  const writer = new LineWriter('/proc/version/results.jsonl', {key: 'failures'});
  assert.throws(
    () => writer.open(),
    (error: unknown) =>
      error instanceof IoError && /^failures: cannot create \/proc\/version\/results\.jsonl: .*(ENOTDIR|EEXIST)/.test(error.message),
  );
});

test("the summary lists a status's several messages one row each, most frequent first, cut when long, with the count of the rest", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [
    {id: 'a'},
    {id: 'b', count: 'many'},
    {id: 'c', count: 'many'},
    {id: 'd', cont: 1},
    '[1]',
    'not json',
    {id: 'f', nope: 1},
    {id: 'e', count: 1.5},
  ]);
  const summary = await runJob(await loadJob(writeJob(dir, server.address)));
  const lines = formatSummary(summary).split('\n');
  const head = lines.indexOf('  errors    INVALID 7:');
  assert.ok(head > 0, lines.join('\n'));
  assert.equal(lines[head + 1], '              2 × count: expected an integer (int32), got "many" (string)');
  const rows = lines.slice(head + 1, head + 5);
  assert.equal(rows.length, 4);
  assert.ok(
    rows.slice(1, 3).every((row) => row.startsWith('              1 × ')),
    rows.join('\n'),
  );
  // The unknown-field message names every field of the type: cut, the whole of it is in the results file.
  assert.match(rows[1]!, /^ {14}1 × cont: unknown field of ProcessRequest \(did you mean "count"\?\); fields: .*…$/);
  assert.equal(rows[3], "              3 × other messages (each record's own is in the results file)");
  assert.ok(
    lines.every((line) => line.length <= 14 + 4 + 160),
    'no message row over 160 characters',
  );
  // One status, one message: on the status's own row.
  const one = formatSummary({...summary, invalid: 2, errors: {INVALID: [{message: 'count: bad', count: 2}]}}).split('\n');
  assert.ok(one.includes('  errors    INVALID 2: count: bad'), one.join('\n'));
});
