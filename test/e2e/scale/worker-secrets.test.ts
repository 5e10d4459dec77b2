import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {spawnCli} from '../../helpers/cli.js';
import {readJsonlFile, tempDir, writeJob} from '../../helpers/job.js';
import {dumpPrefix, REDIS_URL, redisPrefix, startWorkers, workersReady} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

test('a ${VAR} secret holding "{{" on the coordinator and on the worker is sent as the worker has it, never stored in Redis', async (t) => {
  const server = await startServer(t);
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 30}, (_, i) => JSON.stringify({id: `r${i}`})).join('\n'));
  // x-demo-echo comes back in each response: what the server received, record by record.
  const jobFile = writeJob(dir, server.address, {concurrency: 4, metadata: {'x-demo-echo': '${DEMO_TOKEN}', 'x-request-id': 'req-{{id}}'}});
  const coordinator = spawnCli(
    [
      'run',
      jobFile,
      '--redis',
      REDIS_URL,
      '--prefix',
      prefix,
      '--chunk-size',
      '10',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, env: {DEMO_TOKEN: 'coordinator{{secret'}, timeoutMs: 90_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  const workers = startWorkers(t, 1, {prefix, env: {DEMO_TOKEN: 'worker{{id}}secret'}});
  await workersReady(workers);
  const result = await coordinator.done;
  assert.equal(result.code, 0, result.stderr);
  const lines = readJsonlFile(path.join(dir, 'out/results.jsonl')) as {status: string; response?: {echoedMetadata: string}}[];
  assert.equal(lines.length, 30);
  assert.deepEqual(
    [...new Set(lines.map((l) => l.response?.echoedMetadata))],
    ['worker{{id}}secret'],
    "every call carried the worker's own value",
  );
  assert.match(String(server.stats.lastMetadata?.['x-request-id']), /^req-r\d+$/);
  assert.ok(!(await dumpPrefix(redis, prefix)).includes('secret'), 'no secret in Redis');
  assert.ok(!result.stdout.includes('secret') && !result.stderr.includes('secret'));
});
