import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {expiredServerCert} from '../helpers/certs.js';
import {runCli} from '../helpers/cli.js';
import {assertCameOver, startServer} from '../helpers/server.js';
import {tempDir, TRANSPORTS, writeJob, writeJsonl} from '../helpers/job.js';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');
const pem = (name: string) => readFileSync(path.join(TLS, name));

for (const transport of TRANSPORTS) {
  test(`calls a TLS server that the job trusts through tls.ca (transport ${transport})`, async (t) => {
    const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem')}});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport, tls: {ca: path.join(TLS, 'ca.pem')}})));
    assert.equal(summary.ok, 2);
    assert.equal(server.stats.calls, 2);
    assertCameOver(server, transport);
  });
}

for (const transport of TRANSPORTS) {
  test(`a plaintext job cannot talk to a TLS server: UNAVAILABLE, nothing handled (transport ${transport})`, async (t) => {
    const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem')}});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
    const summary = await runJob(await loadJob(writeJob(dir, server.address, {transport, deadline: '2s'})));
    assert.equal(summary.failed, 1);
    assert.equal(server.stats.calls, 0);
  });
}

test('a plaintext job retrying against a TLS server for over a second is no outage: the record fails, the run never pauses', async (t) => {
  const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem')}});
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  // 8 attempts up to 1 s apart (full jitter: 3.5 s on average, under 1 s once in 5,040 runs): past
  // the gate's "5 UNAVAILABLE with no OK for 1 s" rule, were they counted in it.
  const retry = {maxAttempts: 8, initialBackoff: '1s', maxBackoff: '1s', backoffMultiplier: 1};
  const summary = await runJob(await loadJob(writeJob(dir, server.address, {retry, maxOutage: '10s'})));
  assert.deepEqual([summary.status, summary.failed, summary.attempts], ['failed', 1, 8]);
  assert.deepEqual(summary.outages, {pauses: 0, pausedMs: 0});
  assert.equal(server.stats.calls, 0);
});

for (const transport of TRANSPORTS) {
  test(`mutual TLS: the client certificate reaches the server, and a job without one is refused (transport ${transport})`, async (t) => {
    const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem'), ca: pem('ca.pem')}});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
    const withCert = await runJob(
      await loadJob(
        writeJob(dir, server.address, {
          transport,
          tls: {ca: path.join(TLS, 'ca.pem'), cert: path.join(TLS, 'client.pem'), key: path.join(TLS, 'client.key')},
        }),
      ),
    );
    assert.equal(withCert.ok, 1);
    assert.equal(server.stats.lastPeerHadCert, true);
    assertCameOver(server, transport);
    const calls = server.stats.calls;
    const withoutCert = await runJob(
      await loadJob(
        writeJob(dir, server.address, {
          transport,
          tls: {ca: path.join(TLS, 'ca.pem')},
          deadline: '2s',
          output: 'out/again.jsonl',
          failures: 'out/again.failed.jsonl',
        }),
      ),
    );
    assert.equal(withoutCert.failed, 1);
    assert.equal(server.stats.calls, calls);
  });
}

for (const transport of TRANSPORTS) {
  test(`tls.serverName checks the certificate against another name than the target host (transport ${transport})`, async (t) => {
    const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem')}});
    const dir = tempDir(t);
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
    const good = await runJob(
      await loadJob(writeJob(dir, server.address, {transport, tls: {ca: path.join(TLS, 'ca.pem'), serverName: 'localhost'}})),
    );
    assert.equal(good.ok, 1);
    const wrong = await runJob(
      await loadJob(
        writeJob(dir, server.address, {
          transport,
          tls: {ca: path.join(TLS, 'ca.pem'), serverName: 'elsewhere.example'},
          deadline: '2s',
          output: 'out/again.jsonl',
          failures: 'out/again.failed.jsonl',
        }),
      ),
    );
    assert.equal(wrong.failed, 1);
    assert.equal(server.stats.calls, 1);
  });
}

test('the CLI over TLS to an IP address: no DEP0123 warning about the server name, on the main thread or on worker threads', async (t) => {
  const server = await startServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem')}});
  for (const workers of [1, 2]) {
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: 20}, (_, i) => ({id: `r${i}`})),
    );
    const job = writeJob(dir, server.address, {workers, concurrency: 4, tls: {ca: path.join(TLS, 'ca.pem')}});
    const result = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db')], {cwd: dir});
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as {ok: number}).ok, 20);
    assert.doesNotMatch(result.stderr, /DEP0123|RFC 6066/, `workers ${workers}`);
  }
  // A certificate the client does not trust: still no warning, only the error.
  const describe = await runCli(['describe', server.address, '--tls', '-d', '5s']);
  assert.equal(describe.code, 2);
  assert.doesNotMatch(describe.stderr, /DEP0123|RFC 6066/);
});

for (const transport of TRANSPORTS) {
  test(`an expired server certificate fails the records with a hint to renew it, in the summary and from validate --connect (transport ${transport})`, async (t) => {
    const dir = tempDir(t);
    const server = await startServer(t, {tls: expiredServerCert(dir)});
    writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
    const job = writeJob(dir, server.address, {
      transport,
      tls: {ca: path.join(TLS, 'ca.pem')},
      deadline: '5s',
      output: 'out/{runId}.jsonl',
      failures: 'out/{runId}.failed.jsonl',
    });
    const summary = await runJob(await loadJob(job));
    assert.equal(summary.failed, 1);
    assert.deepEqual(
      summary.errors['UNAVAILABLE']?.map((e) => [e.message, e.hint]),
      [
        [
          'certificate has expired',
          "the server's certificate has expired: renew it on the server (nothing in the client's settings can accept it); if it was renewed, check this machine's clock",
        ],
      ],
    );
    const connect = await runCli(['validate', job, '--connect'], {cwd: dir});
    assert.equal(connect.code, 2);
    assert.match(
      connect.stderr,
      /does not answer: UNAVAILABLE: certificate has expired \(hint: the server's certificate has expired: renew it on the server/,
    );
    assert.equal(server.stats.calls, 0);
  });
}
