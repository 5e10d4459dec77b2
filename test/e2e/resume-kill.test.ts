import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {assertCameOver, startServer} from '../helpers/server.js';
import {readJsonlFile, tempDir, TRANSPORTS, writeJob, writeJsonl} from '../helpers/job.js';
import {spawnCli, waitFor} from '../helpers/cli.js';

const RECORDS = 20_000;
const CONCURRENCY = 50;

for (const transport of TRANSPORTS) {
  test(`kill -9 in the middle of a 20k-record run, then --resume: one result per record, at most the calls in flight sent twice (transport ${transport})`, async (t) => {
    const server = await startServer(t);
    const dir = tempDir(t);
    writeJsonl(
      path.join(dir, 'input.jsonl'),
      Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`})),
    );
    const job = writeJob(dir, server.address, {
      transport,
      concurrency: CONCURRENCY,
      output: 'out/{runId}.jsonl',
      failures: 'out/{runId}.failed.jsonl',
    });
    const state = path.join(dir, 'state.db');

    const first = spawnCli(['run', job, '--json', '--no-progress', '--state', state]);
    t.after(() => first.child.kill('SIGKILL'));
    await waitFor(() => server.stats.calls >= 6_000, 60_000, '6,000 calls at the server');
    first.child.kill('SIGKILL');
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL');
    const sentBeforeKill = server.stats.calls;
    assert.ok(sentBeforeKill < RECORDS, 'the run was killed before it finished');

    const second = spawnCli(['run', job, '--json', '--no-progress', '--state', state, '--resume']);
    t.after(() => second.child.kill('SIGKILL'));
    const resumed = await second.done;
    assert.equal(resumed.code, 0, resumed.stderr);
    const summary = JSON.parse(resumed.stdout) as {total: number; ok: number; output: string; status: string};
    assert.equal(summary.status, 'succeeded');
    assert.equal(summary.total, RECORDS);
    assert.equal(summary.ok, RECORDS);

    const lines = (readJsonlFile(summary.output) as {line: number}[]).map((r) => r.line);
    assert.equal(lines.length, RECORDS, 'exactly one result line per record');
    assert.equal(new Set(lines).size, RECORDS);

    const seen = new Map<string, number>();
    for (const id of server.stats.ids) seen.set(id, (seen.get(id) ?? 0) + 1);
    assert.equal(seen.size, RECORDS, 'no record was skipped');
    const twice = [...seen.values()].filter((n) => n > 1).length;
    assert.ok(twice <= CONCURRENCY, `${twice} records were sent twice; at most the ${CONCURRENCY} in flight may be`);
    assertCameOver(server, transport);
  });
}
