import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {cleanDetails} from '../../src/rpc/explain.js';
import {CLI_COMMAND, runCli} from '../helpers/cli.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');
const pem = (name: string) => readFileSync(path.join(TLS, name));

/** A loopback port where nothing listens: a server's, after it stopped. */
async function deadPort(t: import('node:test').TestContext): Promise<number> {
  const server = await startServer(t);
  await server.stop(0);
  return server.port;
}

test('the summary names the cause and what to do: nothing listening (the run waits, then stops resumable)', async (t) => {
  const port = await deadPort(t);
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 5}, (_, i) => ({id: `r${i}`})),
  );
  const job = writeJob(dir, `127.0.0.1:${port}`, {output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl'});
  const result = await runCli(['run', job, '--no-progress', '--max-outage', '300ms'], {cwd: dir, env: {GRPC_BATCH_LOG: 'warn'}});
  assert.equal(result.code, 4, result.stderr);
  assert.match(
    result.stdout,
    new RegExp(
      `^ {2}interrupted the backend was unreachable for \\S+ \\(maxOutage\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}; nothing failed for it$`,
      'm',
    ),
  );
  assert.match(
    result.stdout,
    new RegExp(`^ {14}hint: nothing is listening at 127\\.0\\.0\\.1:${port}: is the server up, and is the port right\\?$`, 'm'),
  );
  const down = result.stderr
    .split('\n')
    .map((l) => (l.startsWith('{') ? (JSON.parse(l) as {event?: string; msg?: string; hint?: string}) : {}))
    .find((l) => l.event === 'backend:down');
  assert.match(
    down?.msg ?? '',
    new RegExp(`^waiting for the backend: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(hint: nothing is listening`),
    result.stderr,
  );
  const json = await runCli(['run', job, '--json', '--max-outage', '300ms'], {cwd: dir});
  const summary = JSON.parse(json.stdout) as {status: string; interruptHint?: string; next: string[]};
  assert.equal(summary.status, 'interrupted');
  assert.match(summary.interruptHint ?? '', /nothing is listening/);
  assert.match(summary.next[0]!, /--resume \S+$/);
});

/** [what, server TLS, job TLS (paths in fixtures/tls), target host, hint words]. */
const TLS_CASES: readonly [string, 'plain' | 'tls' | 'mtls', Record<string, string> | undefined, string, RegExp][] = [
  ['TLS against a plaintext server', 'plain', {ca: 'ca.pem'}, '127.0.0.1', /the server speaks plaintext, not TLS: remove tls from the job/],
  ['plaintext against a TLS server', 'tls', undefined, '127.0.0.1', /if the server expects TLS, add tls to the job/],
  [
    'a certificate for another name',
    'tls',
    {ca: 'ca.pem', serverName: 'users.internal'},
    'localhost',
    /the server's certificate is for DNS:localhost, IP Address:127\.0\.0\.1: set tls\.serverName to one of them/,
  ],
  ['a CA the job does not trust', 'tls', {}, 'localhost', /not signed by a CA the job trusts: set tls\.ca/],
  [
    'mutual TLS without a client certificate',
    'mtls',
    {ca: 'ca.pem'},
    'localhost',
    /wants a client certificate it accepts: set tls\.cert and tls\.key/,
  ],
];

test('the summary explains TLS mistakes, each with its fix', {concurrency: 2}, async (t) => {
  for (const [what, serverTls, jobTls, host, hint] of TLS_CASES) {
    await t.test(what, async (t) => {
      const tls =
        serverTls === 'plain'
          ? undefined
          : {key: pem('server.key'), cert: pem('server.pem'), ...(serverTls === 'mtls' ? {ca: pem('ca.pem')} : {})};
      const server = await startServer(t, tls ? {tls} : {});
      const dir = tempDir(t);
      writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
      const jobTlsPaths = jobTls
        ? Object.fromEntries(Object.entries(jobTls).map(([k, v]) => [k, k === 'serverName' ? v : path.join(TLS, v)]))
        : undefined;
      const summary = await runJob(
        await loadJob(writeJob(dir, `${host}:${server.port}`, {deadline: '5s', ...(jobTlsPaths ? {tls: jobTlsPaths} : {})})),
      );
      // Not an outage: a TLS mistake fails the records at once, with the cause and its fix.
      assert.deepEqual([summary.status, summary.failed], ['failed', 2], JSON.stringify(summary));
      const errors = summary.errors['UNAVAILABLE'] ?? [];
      assert.equal(errors.length, 1, JSON.stringify(summary.errors));
      assert.match(errors[0]!.hint ?? '', hint, JSON.stringify(errors[0]));
      assert.doesNotMatch(errors[0]!.message, /\d{4}-\d\d-\d\dT|deps\/openssl|Resolution note/, 'the message is cleaned up');
      assert.equal(server.stats.calls, 0);
    });
  }
});

test('a host name that does not resolve is explained (in a network namespace with no network)', async (t) => {
  const probe = spawnSync('unshare', ['-n', 'true']);
  if (probe.status !== 0)
    return t.skip(
      `unshare -n is not permitted here (${probe.stderr?.toString().trim() || probe.error?.message}): needs root or user namespaces`,
    );
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = writeJob(dir, 'no-such-host.invalid:50051', {maxOutage: '300ms'});
  const result = spawnSync('unshare', ['-n', ...CLI_COMMAND, 'run', job, '--no-progress'], {
    cwd: dir,
    encoding: 'utf8',
    env: {...process.env, NODE_TEST_CONTEXT: undefined, NODE_OPTIONS: undefined, GRPC_BATCH_LOG: 'warn'} as NodeJS.ProcessEnv,
    timeout: 30_000,
  });
  assert.equal(result.status, 4, result.stderr);
  assert.match(
    result.stdout,
    /interrupted the backend was unreachable for \S+ \(maxOutage\): Name resolution failed for target dns:no-such-host\.invalid:50051/,
  );
  assert.match(result.stdout, /hint: the host name in target no-such-host\.invalid:50051 does not resolve/);
});

test('cleanDetails keeps the cause and drops the wrapping, timestamps and OpenSSL locations', () => {
  assert.equal(
    cleanDetails('No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:50999. Resolution note: '),
    'connect ECONNREFUSED 127.0.0.1:50999',
  );
  assert.equal(
    cleanDetails(
      'No connection established. Last error: Error: 805C0B99F07F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n. Resolution note: ',
    ),
    'TLS: wrong version number',
  );
  assert.equal(
    cleanDetails('No connection established. Last error: Failed to connect (2026-12-01T23:09:56.603Z). Resolution note: '),
    'Failed to connect',
  );
  assert.equal(cleanDetails('demo: asked to fail with code 3'), 'demo: asked to fail with code 3');
});
