import assert from 'node:assert/strict';
import {readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {constants as zlibConstants, gunzipSync, gzipSync} from 'node:zlib';
import {runCli, spawnCli, waitFor} from '../helpers/cli.js';
import {tempDir, writeJob} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';
import {LineWriter} from '../../src/io/results.js';

const RECORDS = 100_000; // the issue's figure: a nightly export's size, killed at 30% and resumed
const CONCURRENCY = 50;
/** Every this many records, one fails with NOT_FOUND (so the failures file is written too). */
const FAIL_EVERY = 997;

const recordLine = (i: number) => JSON.stringify(i % FAIL_EVERY === 0 ? {id: `r${i}`, fail_code: 5} : {id: `r${i}`});
const wholeLines = (text: string) =>
  text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l !== '');

test('a .jsonl.gz input with .gz results and failures: kill -9, then --resume sends every record, at most the calls in flight twice, and both files read as gzip', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const lines = Array.from({length: RECORDS}, (_, i) => recordLine(i + 1));
  writeFileSync(path.join(dir, 'input.jsonl.gz'), gzipSync(lines.join('\n') + '\n'));
  const job = writeJob(dir, server.address, {
    input: 'input.jsonl.gz',
    concurrency: CONCURRENCY,
    retry: {maxAttempts: 1},
    output: 'out/{runId}.jsonl.gz',
    failures: 'out/{runId}.failed.jsonl.gz',
  });
  const state = path.join(dir, 'state.db');

  const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state], {timeoutMs: 300_000});
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor(() => server.stats.calls >= RECORDS * 0.3, 240_000, `${RECORDS * 0.3} calls at the server`);
  first.child.kill('SIGKILL');
  assert.equal((await first.done).signal, 'SIGKILL');
  assert.ok(server.stats.calls < RECORDS, 'the run was killed before it finished');

  // What kill -9 left is gzip up to its last flush: every whole line in it is a result.
  const output = path.join(
    dir,
    'out',
    readdirSync(path.join(dir, 'out')).find((f) => /^\d.*\d\.jsonl\.gz$/.test(f) || /Z-[0-9a-f]+\.jsonl\.gz$/.test(f))!,
  );
  const left = wholeLines(gunzipSync(readFileSync(output), {finishFlush: zlibConstants.Z_SYNC_FLUSH}).toString());
  assert.ok(left.length > 0, 'results were written before the kill');
  for (const line of left) assert.equal(typeof (JSON.parse(line) as {line: number}).line, 'number');

  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '--resume'], {timeoutMs: 300_000});
  assert.equal(resumed.code, 1, resumed.stderr); // the NOT_FOUND records failed
  const summary = JSON.parse(resumed.stdout) as {total: number; ok: number; failed: number; output: string; failures: string};
  const failing = Math.floor(RECORDS / FAIL_EVERY);
  assert.equal(summary.total, RECORDS);
  assert.equal(summary.failed, failing);
  assert.equal(summary.output, output);

  // Strict gunzip (every member whole, every checksum right): one result line per record.
  const results = gunzipSync(readFileSync(summary.output))
    .toString()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as {line: number});
  assert.equal(results.length, RECORDS, 'exactly one result line per record');
  assert.equal(new Set(results.map((r) => r.line)).size, RECORDS);
  // The failures file holds the failed records exactly as input.
  const failed = gunzipSync(readFileSync(summary.failures))
    .toString()
    .split('\n')
    .filter((l) => l !== '');
  assert.deepEqual(failed.sort(), lines.filter((_, i) => (i + 1) % FAIL_EVERY === 0).sort());

  const seen = new Map<string, number>();
  for (const id of server.stats.ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.equal(seen.size, RECORDS, 'no record was skipped');
  const twice = [...seen.values()].filter((n) => n > 1).length;
  assert.ok(twice <= CONCURRENCY, `${twice} records were sent twice; at most the ${CONCURRENCY} in flight may be`);
});

test('the failures file of a .gz run is re-run as input: its records keep their lines in the original input', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const lines = Array.from({length: 40}, (_, i) => JSON.stringify({id: `x${i + 1}`}));
  lines[6] = JSON.stringify({id: 'x7', fail_code: 14});
  lines[29] = JSON.stringify({id: 'x30', fail_code: 14});
  writeFileSync(path.join(dir, 'input.jsonl.gz'), gzipSync(lines.join('\n') + '\n'));
  const job = writeJob(dir, server.address, {
    input: 'input.jsonl.gz',
    retry: {maxAttempts: 1},
    output: 'out/{runId}.jsonl.gz',
    failures: 'out/{runId}.failed.jsonl.gz',
  });
  const first = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {timeoutMs: 120_000});
  assert.equal(first.code, 1, first.stderr);
  const {failures} = JSON.parse(first.stdout) as {failures: string};
  const again = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db'), '-i', failures], {
    timeoutMs: 120_000,
  });
  assert.equal(again.code, 1, again.stderr);
  assert.doesNotMatch(again.stderr, /does not match/);
  const {output} = JSON.parse(again.stdout) as {output: string};
  const keys = gunzipSync(readFileSync(output))
    .toString()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as {key: {line: number}}).key.line);
  assert.deepEqual(
    keys.sort((a, b) => a - b),
    [7, 30],
  );
});

test('a UTF-8 line holding the bytes FF FE is invalid UTF-8, not UTF-16: no iconv hint; real UTF-16 still gets it', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Buffer.concat([Buffer.from('{"id":"a"}\n'), Buffer.from([0xff, 0xfe]), Buffer.from('{"id":"b"}\n{"id":"c\xff\xfe"}\n', 'latin1')]),
  );
  const job = writeJob(dir, server.address);
  const run = await runCli(['run', job, '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
  assert.equal(run.code, 1, run.stderr);
  assert.doesNotMatch(run.stderr, /UTF-16|iconv/);
  assert.equal(server.stats.calls, 1);
  const failed = readFileSync(path.join(dir, 'out', 'failed.jsonl'));
  assert.deepEqual(failed, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"id":"b"}\n{"id":"c\xff\xfe"}\n', 'latin1')]));

  writeFileSync(
    path.join(dir, 'utf16.jsonl'),
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"id":"a"}\n{"id":"b"}\n', 'utf16le')]),
  );
  rmSync(path.join(dir, 'out'), {recursive: true}); // validate refuses the job's fixed output paths once they hold a run's lines
  const utf16 = await runCli(['validate', job, '-i', 'utf16.jsonl'], {cwd: dir, timeoutMs: 120_000});
  assert.match(utf16.stderr, /looks like UTF-16 text; grpc-batch reads UTF-8: iconv/);
});

test('a .gz input is read by its bytes, not its name, and a zstd one is refused with the command that reads it', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  // gzip data named .jsonl: read all the same; before, it got "looks like UTF-16, use iconv".
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    gzipSync(Array.from({length: 500}, (_, i) => JSON.stringify({id: `g${i}`})).join('\n') + '\n'),
  );
  const job = writeJob(dir, server.address);
  const run = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir, timeoutMs: 120_000});
  assert.equal(run.code, 0, run.stderr);
  assert.equal((JSON.parse(run.stdout) as {ok: number}).ok, 500);
  assert.equal(server.stats.calls, 500);
  assert.doesNotMatch(run.stderr, /UTF-16|iconv/);

  writeFileSync(path.join(dir, 'input.jsonl.zst'), Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x00, 0x00]));
  const zstd = await runCli(['run', job, '--no-progress', '-i', 'input.jsonl.zst', '--state', path.join(dir, 'state.db')], {
    cwd: dir,
    timeoutMs: 120_000,
  });
  assert.equal(zstd.code, 2, zstd.stderr);
  assert.match(
    zstd.stderr,
    /input: .*input\.jsonl\.zst is zstd-compressed, and Node 20's zlib reads only gzip: decompress it first \(zstd -dk /,
  );
  assert.equal(server.stats.calls, 500);
});

test('a .gz results file cut in the middle of its last block (a crash mid-write) is repaired on append: whole lines kept, the cut line dropped, strict gzip after', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'results.jsonl.gz');
  const first = new LineWriter(file);
  for (let i = 1; i <= 3; i++) first.write(`{"line":${i}}`);
  first.flush();
  for (let i = 4; i <= 300; i++) first.write(`{"line":${i},"pad":"${'x'.repeat(i % 50)}"}`);
  await first.close();
  // Cut the second block short, as kill -9 during its write would.
  const whole = readFileSync(file);
  writeFileSync(file, whole.subarray(0, whole.length - 40));
  const partial = wholeLines(gunzipSync(readFileSync(file), {finishFlush: zlibConstants.Z_SYNC_FLUSH}).toString());
  assert.ok(partial.length > 3 && partial.length < 300, `${partial.length} whole lines left`);

  const resumed = new LineWriter(file, {append: true});
  resumed.write('{"line":301}');
  await resumed.close();
  const lines = gunzipSync(readFileSync(file))
    .toString()
    .split('\n')
    .filter((l) => l !== '');
  assert.deepEqual(lines, [...partial, '{"line":301}']);
});
