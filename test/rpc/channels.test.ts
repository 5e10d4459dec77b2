import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {loadJob} from '../../src/config/load.js';
import {runJob} from '../../src/engine/run.js';
import {startServer} from '../helpers/server.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';

// A server that allows 4 concurrent streams per connection: one channel caps the run at 4 calls in
// flight whatever the concurrency; `channels: 3` opens 3 real connections and gets 12.
test('channels: N spreads calls over N connections for a server that caps streams per connection', async (t) => {
  const server = await startServer(t, {serverOptions: {'grpc.max_concurrent_streams': 4}});
  const dir = tempDir(t);
  writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 120}, (_, i) => ({id: `r${i}`, latencyMs: 20})),
  );
  const one = await runJob(await loadJob(writeJob(dir, server.address, {concurrency: 12})));
  assert.equal(one.ok, 120);
  assert.equal(server.stats.maxInFlight, 4);
  server.reset();
  const three = await runJob(
    await loadJob(
      writeJob(dir, server.address, {concurrency: 12, channels: 3, output: 'out/three.jsonl', failures: 'out/three.failed.jsonl'}),
    ),
  );
  assert.equal(three.ok, 120);
  assert.equal(server.stats.maxInFlight, 12);
});
