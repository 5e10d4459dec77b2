import assert from 'node:assert/strict';
import {test} from 'node:test';
import {IoError} from '../../src/errors.js';
import {formatProgressLine} from '../../src/jobs/print.js';
import type {ProgressSnapshot} from '../../src/jobs/run.js';
import {LineWriter} from '../../src/jobs/results.js';

const at = (done: number, total: number | undefined, elapsedMs: number): ProgressSnapshot => ({done, total, ok: done, failed: 0, invalid: 0, inFlight: 3, calls: 3, limit: 10, cap: 10, attempts: done, elapsedMs});

test('the progress line never wraps: it fits in columns - 1 at any width, the bar shrinking first', () => {
  for (const columns of [20, 40, 60, 80, 120, 200]) {
    for (const p of [at(0, 50_000, 0), at(1234, 50_000, 4000), at(50_000, 50_000, 9000), at(77, undefined, 2000)]) {
      const line = formatProgressLine(p, columns);
      assert.ok(line.length <= columns - 1, `${columns} columns: ${line.length} chars: ${line}`);
    }
  }
  assert.match(formatProgressLine(at(1234, 50_000, 4000), 120), /^█*░+ 2% \| 1234\/50000 \| 309\/s \| ETA 2m 38s \| failed 0 \| in flight 3$/);
  assert.equal(formatProgressLine(at(77, undefined, 2000), 120), '77 done | 39/s | failed 0 | in flight 3', 'no bar and no ETA without a total');
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
  assert.throws(() => writer.open(), (error: unknown) => error instanceof IoError && /^failures: cannot create \/proc\/version\/results\.jsonl: .*(ENOTDIR|EEXIST)/.test(error.message));
});
