import assert from 'node:assert/strict';
import {existsSync, readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {PACKAGE_ROOT} from '../../src/util/paths.js';
import {runCli, type CliResult} from '../helpers/cli.js';
import {tempDir} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

const JOBS = 'test/fixtures/jobs';
/** Spawns share 2 CPUs with the rest of the suite: a few at a time is as fast as it gets. */
const PARALLEL = 4;
const {version} = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {version: string};

/** What every failed command must look like: exit 2, nothing on stdout, no stack trace. */
function assertUsageFailure(result: CliResult, words: readonly string[]): void {
  assert.equal(result.timedOut, false, 'the CLI timed out');
  assert.equal(result.code, 2, `expected exit 2, got ${result.code}; stderr:\n${result.stderr}`);
  assert.equal(result.stdout, '', 'nothing on stdout');
  assert.doesNotMatch(result.stderr, /^\s+at .+:\d+:\d+\)?$/m, 'no stack trace');
  assert.doesNotMatch(result.stderr, /this is a bug/);
  for (const word of words) assert.ok(result.stderr.includes(word), `stderr should include ${JSON.stringify(word)}:\n${result.stderr}`);
}

/** Messages of pino's JSON lines on stderr, plus any plain lines. */
function stderrMessages(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return String((JSON.parse(line) as {msg?: unknown}).msg ?? line);
      } catch {
        return line;
      }
    });
}

/**
 * [fixture, exit code, words the message must hold]. Each message names the file, the key and what
 * was expected. Every fixture sets `target: ${TARGET}`, the demo server started below.
 */
const INVALID_JOBS: readonly [string, 2, readonly string[]][] = [
  ['unknown-key.yaml', 2, ['unknown-key.yaml: concurrancy: unknown key', 'did you mean "concurrency"']],
  ['bad-duration.yaml', 2, ['bad-duration.yaml: deadline: expected a duration like 500ms, 10s', 'got "ten seconds"']],
  [
    'unknown-method.yaml',
    2,
    ['unknown-method.yaml: method: service "demo.v1.DemoService" has no method "Proces"', 'did you mean "Process"', 'methods: Process'],
  ],
  [
    'unknown-service.yaml',
    2,
    ['unknown-service.yaml: method: unknown service "demo.v1.NoSuchService"', 'did you mean "demo.v1.DemoService"'],
  ],
  ['proto-does-not-parse.yaml', 2, ['proto-does-not-parse.yaml: proto: does not parse', 'line 12']],
  ['missing-proto.yaml', 2, ['missing-proto.yaml: proto: file not found', 'nowhere.proto']],
  [
    'missing-env.yaml',
    2,
    ['missing-env.yaml: input: environment variable GB_TEST_INPUT_NEVER_SET is not set', '${GB_TEST_INPUT_NEVER_SET:-default}'],
  ],
  ['missing-input.yaml', 2, ['missing-input.yaml: input: file not found', 'nowhere.jsonl']],
  ['wrong-type.yaml', 2, ['wrong-type.yaml: concurrency: expected an integer', 'got "many" (string)']],
  ['concurrency-zero.yaml', 2, ['concurrency-zero.yaml: concurrency: expected an integer from 1 to 100000, got 0']],
  [
    'bad-status.yaml',
    2,
    [
      'bad-status.yaml: retry.retryableStatusCodes[1]: expected a status name like UNAVAILABLE',
      '"UNAVALABLE"',
      'did you mean "UNAVAILABLE"',
    ],
  ],
  ['bad-yaml.yaml', 2, ['bad-yaml.yaml:6:', 'YAML syntax error']],
  ['empty.yaml', 2, ['empty.yaml: the job file is empty', 'target, proto, method and input']],
  [
    'retry-policy-misplaced.yaml',
    2,
    ['retry-policy-misplaced.yaml: channelOptions."grpc.service_config".retryPolicy: retryPolicy belongs inside a methodConfig entry'],
  ],
  ['tls-cert-without-key.yaml', 2, ['tls-cert-without-key.yaml: tls.key: mutual TLS needs both tls.cert and tls.key']],
  ['metadata-grpc-prefix.yaml', 2, ['metadata-grpc-prefix.yaml: metadata.grpc-timeout: metadata key "grpc-timeout" is reserved']],
  [
    'streaming-method.yaml',
    2,
    [
      'streaming-method.yaml: batchSize: applies to client-streaming methods only; "legacy.v1.LegacyService/Watch" is a server-streaming method: remove the key',
    ],
  ],
  [
    'streams-on-unary.yaml',
    2,
    ['streams-on-unary.yaml: streams: applies to bidi-streaming methods only; "demo.v1.DemoService/Process" is a unary method'],
  ],
  ['batch-size-over-concurrency.yaml', 2, ['batch-size-over-concurrency.yaml: batchSize: expected at most concurrency (50)', 'got 200']],
];

test('rejects each invalid job with exit 2, a message naming file, key and expectation, and sends nothing', {
  concurrency: PARALLEL,
}, async (t) => {
  const server = await startServer(t);
  const out = tempDir(t);
  const env = {TARGET: server.address, GB_TEST_INPUT_NEVER_SET: undefined};
  await Promise.all(
    INVALID_JOBS.map(([fixture, code, words]) =>
      t.test(fixture, async (t) => {
        const dir = path.join(out, fixture);
        const result = await runCli(
          ['run', `${JOBS}/${fixture}`, '--output', `${dir}/results.jsonl`, '--failures', `${dir}/failed.jsonl`],
          {env},
        );
        assert.equal(code, 2);
        assertUsageFailure(result, ['nothing was sent', `${JOBS}/${fixture}`, ...words]);
        assert.equal(existsSync(dir), false, 'no results file was created');
        assert.equal(server.stats.calls, 0, `${fixture}: the server saw calls`);
        t.diagnostic(stderrMessages(result.stderr).slice(1).join(' | '));
      }),
    ),
  );
  assert.equal(server.stats.calls, 0);
});

test('validate lists the file and line of every invalid input record, exits 2 and sends nothing', async (t) => {
  const server = await startServer(t);
  const result = await runCli(['validate', `${JOBS}/invalid-records.yaml`], {env: {TARGET: server.address}});
  const input = 'test/fixtures/input/invalid.jsonl';
  assertUsageFailure(result, [
    `${input}:2: expected a JSON object, got text that is not JSON`,
    `${input}:4: expected a JSON object for ProcessRequest, got an array`,
    `${input}:5: count: expected an integer (int32), got "many"`,
    `${input}:6: cont: unknown field of ProcessRequest (did you mean "count"?)`,
  ]);
  assert.doesNotMatch(result.stderr, /invalid\.jsonl:(1|3):/, 'the valid lines are not listed');
  assert.equal(server.stats.calls, 0);
});

test('validate accepts a valid job and says how many records it checked', async (t) => {
  const server = await startServer(t);
  const result = await runCli(['validate', `${JOBS}/valid.yaml`], {env: {TARGET: server.address}});
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /valid\.yaml: ok: demo\.v1\.DemoService\/Process on 127\.0\.0\.1:\d+ \(schema: proto \S*demo\.proto\), 3 records valid/,
  );
  assert.equal(result.stderr, '');
  assert.equal(server.stats.calls, 0);
});

test('validate warns that an empty input has no records, and exits 0', async (t) => {
  const server = await startServer(t);
  const result = await runCli(['validate', `${JOBS}/empty-input.yaml`], {env: {TARGET: server.address}});
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /warning: test\/fixtures\/input\/empty\.jsonl: the input has no records/);
  assert.match(result.stdout, /0 records valid/);
  assert.equal(server.stats.calls, 0);
});

test('an unknown channel option is only a warning: the run proceeds and sends every record', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const result = await runCli(
    ['run', `${JOBS}/unknown-channel-option.yaml`, '-o', `${dir}/results.jsonl`, '--failures', `${dir}/failed.jsonl`, '--no-progress'],
    {env: {TARGET: server.address}},
  );
  assert.equal(result.code, 0, result.stderr);
  const warning = stderrMessages(result.stderr).find((m) => m.includes('keepalive_tme_ms'));
  assert.ok(warning, `a warning about the option:\n${result.stderr}`);
  assert.ok(warning.includes('unknown-channel-option.yaml: channelOptions.grpc.keepalive_tme_ms: unknown channel option'), warning);
  assert.ok(warning.includes('did you mean "grpc.keepalive_time_ms"'), warning);
  assert.equal(server.stats.calls, 3);
});

test('run --json prints exactly one JSON object on stdout, with the counts the server saw', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const result = await runCli(['run', `${JOBS}/valid.yaml`, '--json', '-o', `${dir}/results.jsonl`, '--failures', `${dir}/failed.jsonl`], {
    env: {TARGET: server.address},
  });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.split('\n');
  assert.equal(lines.length, 2, `one line then the final newline, got:\n${result.stdout}`);
  assert.equal(lines[1], '');
  const summary = JSON.parse(lines[0]!) as {
    status: string;
    total: number;
    ok: number;
    failed: number;
    invalid: number;
    attempts: number;
    byStatus: Record<string, number>;
  };
  assert.equal(summary.status, 'succeeded');
  assert.equal(summary.total, 3);
  assert.equal(summary.ok, server.stats.calls);
  assert.equal(summary.attempts, server.stats.calls);
  assert.deepEqual(summary.byStatus, {OK: server.stats.byStatus['OK']});
  assert.equal(server.stats.calls, 3);
});

test('run --json with invalid records exits 1, counts them invalid and sends only the valid ones', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const result = await runCli(
    ['run', `${JOBS}/invalid-records.yaml`, '--json', '-o', `${dir}/results.jsonl`, '--failures', `${dir}/failed.jsonl`],
    {env: {TARGET: server.address}},
  );
  assert.equal(result.code, 1, result.stderr);
  const summary = JSON.parse(result.stdout) as {status: string; total: number; ok: number; invalid: number};
  assert.deepEqual([summary.status, summary.total, summary.ok, summary.invalid], ['failed', 6, 2, 4]);
  assert.equal(server.stats.calls, 2);
  const input = readFileSync(path.join(PACKAGE_ROOT, 'test/fixtures/input/invalid.jsonl'), 'utf8').split('\n');
  assert.equal(readFileSync(`${dir}/failed.jsonl`, 'utf8'), [1, 3, 4, 5].map((i) => `${input[i]}\n`).join(''));
});

/** [args, exit code, where the text is, words]. */
const USAGE: readonly [readonly string[], number, 'stdout' | 'stderr', readonly string[]][] = [
  [['run', `${JOBS}/valid.yaml`, '--bogus'], 2, 'stderr', ["unknown option '--bogus'"]],
  [['run', `${JOBS}/valid.yaml`, '--concurrency', 'abc'], 2, 'stderr', ['--concurrency', 'expected an integer from 1 and up, got "abc"']],
  [
    ['run'],
    2,
    'stderr',
    ['expected a job file (grpc-batch run job.yaml), or the job as flags: grpc-batch run --target HOST:PORT --method'],
  ],
  [['--help'], 0, 'stdout', ['Usage: grpc-batch', 'run [options] [job]', 'validate [options] <job>']],
  [['--version'], 0, 'stdout', [version]],
];

test('maps usage errors to exit 2 and --help/--version to exit 0', {concurrency: PARALLEL}, async (t) => {
  const server = await startServer(t);
  await Promise.all(
    USAGE.map(([args, code, stream, words]) =>
      t.test(args.join(' '), async () => {
        const result = await runCli(args, {env: {TARGET: server.address}});
        assert.equal(result.code, code, `exit code; stderr:\n${result.stderr}`);
        if (code === 0) assert.equal(result.stderr, '');
        else assert.equal(result.stdout, '');
        for (const word of words)
          assert.ok(result[stream].includes(word), `${stream} should include ${JSON.stringify(word)}:\n${result[stream]}`);
        assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
      }),
    ),
  );
  assert.equal(server.stats.calls, 0);
});
