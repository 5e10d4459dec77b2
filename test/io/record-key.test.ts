import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {ValidationError} from '../../src/errors.js';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../helpers/job.js';

interface Line {
  line: number;
  key: {line: number} & Record<string, unknown>;
  status: string;
}

test('each results line carries the record key: its input line, right after line', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, '{"id": 1}', {id: 'c'}]);
  const summary = await runJob(await loadJob(writeJob(dir, server.address)));
  const lines = readFileSync(summary.output, 'utf8').trim().split('\n');
  assert.ok(
    lines.every((l) => /^\{"line":(\d+),"key":\{"line":\1\},"status":/.test(l)),
    lines.join('\n'),
  );
  assert.equal(lines.length, 3);
});

test("re-running a failures file keeps each record's original line in its key, through two re-runs", async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  // Line 3 fails twice then succeeds, line 7 fails once; the server counts attempts per id across runs.
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 8}, (_, i) => ({
      id: `r${i + 1}`,
      ...(i + 1 === 3 ? {failFirstAttempts: 2} : i + 1 === 7 ? {failFirstAttempts: 1} : {}),
    })),
  );
  const runOnce = async (input: string, n: number) =>
    runJob(
      await loadJob(
        writeJob(
          dir,
          server.address,
          {input, retry: {maxAttempts: 1}, output: `out/run${n}.jsonl`, failures: `out/run${n}.failed.jsonl`},
          `job${n}.yaml`,
        ),
      ),
    );
  const first = await runOnce('input.jsonl', 1);
  assert.equal(first.failed, 2);
  assert.equal(
    readFileSync(`${first.failures}.lines`, 'utf8'),
    (readJsonlFile(first.output) as Line[])
      .filter((r) => r.status !== 'OK')
      .map((r) => `${r.key.line}\t${r.status}\n`)
      .join(''),
  );
  const second = await runOnce('out/run1.failed.jsonl', 2);
  const secondLines = readJsonlFile(second.output) as Line[];
  assert.deepEqual(secondLines.map((r) => [r.key.line, r.status]).sort(), [
    [3, 'UNAVAILABLE'],
    [7, 'OK'],
  ]);
  assert.deepEqual(secondLines.map((r) => r.line).sort(), [1, 2], 'line is the line in the file this run read');
  const third = await runOnce('out/run2.failed.jsonl', 3);
  assert.deepEqual(
    (readJsonlFile(third.output) as Line[]).map((r) => [r.line, r.key.line, r.status]),
    [[1, 3, 'OK']],
  );
});

test('a failures file edited in place keeps its keys; one with lines added or removed drops them, with a warning', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b', count: 'x'}, {id: 'c', count: 'y'}]);
  const first = await runJob(await loadJob(writeJob(dir, server.address)));
  const failed = first.failures!;
  writeFileSync(failed, '{"id":"b","count":2}\n{"id":"c","count":3}\n'); // both invalid records fixed in place
  const fixed = await runJob(
    await loadJob(
      writeJob(dir, server.address, {input: failed, output: 'out/fixed.jsonl', failures: 'out/fixed.failed.jsonl'}, 'fixed.yaml'),
    ),
  );
  assert.deepEqual((readJsonlFile(fixed.output) as Line[]).map((r) => [r.key.line, r.status]).sort(), [
    [2, 'OK'],
    [3, 'OK'],
  ]);
  writeFileSync(failed, '{"id":"c","count":3}\n');
  const warnings: string[] = [];
  const logger = (await import('../../src/util/log.js')).createLogger({write: (line) => void warnings.push(line)});
  const cut = await runJob(
    await loadJob(writeJob(dir, server.address, {input: failed, output: 'out/cut.jsonl', failures: 'out/cut.failed.jsonl'}, 'cut.yaml')),
    {logger},
  );
  assert.deepEqual(
    (readJsonlFile(cut.output) as Line[]).map((r) => r.key.line),
    [1],
  );
  assert.ok(
    warnings.some((w) => w.includes('does not match') && w.includes('2 lines for 1 records')),
    warnings.join(''),
  );
});

test('resultFields copies the named request fields into the key, by proto or JSON name, nested too', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [
    {id: 'a', nested: {level: 2}},
    {id: 'b', failCode: 5, nested: {note: 'n'}},
    {id: 'c', count: 'x', latency_ms: 1},
  ]);
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {resultFields: ['id', 'nested.level', 'latency_ms']})));
  const byLine = new Map((readJsonlFile(summary.output) as Line[]).map((r) => [r.line, r.key]));
  assert.deepEqual(byLine.get(1), {line: 1, id: 'a', 'nested.level': 2});
  assert.deepEqual(byLine.get(2), {line: 2, id: 'b'});
  assert.deepEqual(byLine.get(3), {line: 3, id: 'c', latency_ms: 1}, 'an invalid record keeps the fields it has');
});

test('resultFields naming no request field is refused with a did-you-mean', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const error = await loadJob(writeJob(dir, '127.0.0.1:50051', {resultFields: ['idd', 'tags', 'nested.levle']})).catch((e: unknown) => e);
  assert.ok(error instanceof ValidationError);
  assert.deepEqual(
    error.issues.map((i) => `${i.path}: ${i.message}`),
    [
      'resultFields[0]: ProcessRequest has no field "idd" (did you mean "id"?)',
      'resultFields[1]: tags is a list; a result field must be a single value',
      'resultFields[2]: ProcessRequest has no field "nested.levle" (did you mean "level"?)',
    ],
  );
});
