import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {DEMO_METHOD, DEMO_PROTO} from '../../../src/util/paths.js';
import {waitFor} from '../../helpers/cli.js';
import {startDaemon} from '../../helpers/daemon.js';
import {tempDir} from '../../helpers/job.js';
import {REDIS_URL, redisPrefix} from '../../helpers/redis.js';
import {startServer} from '../../helpers/server.js';

type LogLine = {time: number; event?: string; job?: string; runId?: string; scheduledAt?: number; [key: string]: unknown};

/** A daemon replica (test/helpers/daemon.ts) with its log lines' times, its exit code, and stop/kill. */
function startReplica(t: TestContext, args: readonly string[], cwd: string, env: Record<string, string> = {}) {
  const daemon = startDaemon(t, args, cwd, {env});
  return {
    lines: daemon.lines as LogLine[],
    exited: daemon.exited.then((r) => r.code),
    stop: () => daemon.signal('SIGTERM'),
    kill: () => daemon.signal('SIGKILL'),
  };
}

test('3 daemon replicas on a 1-second schedule: each tick runs exactly once, none missed; overlap: skip and queue hold across replicas', async (t) => {
  const server = await startServer(t);
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'quick.jsonl'), Array.from({length: 20}, (_, i) => JSON.stringify({id: `q${i}`})).join('\n'));
  // One run of `slow` lasts about 2.5 s: 5 records of 500 ms, one at a time.
  writeFileSync(path.join(dir, 'slow.jsonl'), Array.from({length: 5}, (_, i) => JSON.stringify({id: `s${i}`, latencyMs: 500})).join('\n'));
  const job = (name: string, extra: Record<string, unknown>) => {
    const file = path.join(dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        name,
        target: server.address,
        proto: DEMO_PROTO,
        method: DEMO_METHOD,
        schedule: '* * * * * *',
        output: `out/${name}-{runId}.jsonl`,
        ...extra,
      }),
    );
    return file;
  };
  const jobs = [
    job('quick', {input: 'quick.jsonl', overlap: 'allow', concurrency: 10}),
    job('slow', {input: 'slow.jsonl', overlap: 'skip', concurrency: 1}),
    job('queued', {input: 'slow.jsonl', overlap: 'queue', concurrency: 1}),
  ];
  const replicas = [1, 2, 3].map((n) =>
    startReplica(
      t,
      [
        ...jobs,
        '--redis',
        REDIS_URL,
        '--prefix',
        prefix,
        '--state',
        path.join(dir, `state-${n}.db`),
        '--chunks',
        '2',
        '--lock-duration',
        '2s',
        '--grace',
        '10s',
      ],
      dir,
    ),
  );
  const all = () => replicas.flatMap((r) => r.lines);
  await waitFor(() => replicas.every((r) => r.lines.some((l) => l.event === 'daemon:started')), 30_000, 'the replicas to start');
  const since = Date.now();
  const ended = (name: string) =>
    all().filter((l) => l.event === 'run:finished' && l.job === name && l.trigger !== undefined && l.time > since).length;
  await waitFor(() => ended('slow') >= 2 && ended('queued') >= 2, 30_000, 'two runs of slow and of queued');
  for (const replica of replicas) replica.stop();
  assert.deepEqual(await Promise.all(replicas.map((r) => r.exited)), [0, 0, 0]);

  // The scheduler's events (with a trigger), not the run engine's of the same names.
  const started = (name: string) => all().filter((l) => l.event === 'run:started' && l.job === name && l.trigger !== undefined);
  const finished = (runId: string | undefined) =>
    all().find((l) => l.event === 'run:finished' && l.runId === runId && l.trigger !== undefined);
  // quick: every tick once, on one of the replicas, and no tick of the window missed.
  const ticks = started('quick')
    .map((l) => l.scheduledAt!)
    .sort((a, b) => a - b);
  assert.equal(new Set(ticks).size, ticks.length, `a tick ran twice: ${ticks.join(', ')}`);
  assert.ok(ticks.length >= 4, `${ticks.length} ticks ran`);
  assert.equal((ticks.at(-1)! - ticks[0]!) / 1000 + 1, ticks.length, `a tick was missed: ${ticks.join(', ')}`);
  const ranOn = replicas.map(
    (r) => r.lines.filter((l) => l.event === 'run:started' && l.job === 'quick' && l.trigger !== undefined).length,
  );
  assert.equal(
    ranOn.reduce((a, b) => a + b),
    ticks.length,
  );
  // slow: never two runs at once, whichever replicas ran them; the ticks that came meanwhile were skipped.
  const runs = started('slow')
    .map((s) => ({start: s.time, end: finished(s.runId)?.time ?? Infinity}))
    .sort((a, b) => a.start - b.start);
  for (let i = 1; i < runs.length; i++) assert.ok(runs[i]!.start >= runs[i - 1]!.end, `runs of slow overlapped: ${JSON.stringify(runs)}`);
  assert.ok(
    all().some((l) => l.event === 'run:skipped' && l.job === 'slow'),
    'ticks of slow were skipped',
  );
  const slowTicks = started('slow').map((l) => l.scheduledAt);
  assert.equal(new Set(slowTicks).size, slowTicks.length);
  // queue: never two runs at once either; a tick that came during a run starts when it ends, the
  // latest of them (the others are dropped), so each run is for a tick from within the previous run.
  const queued = started('queued')
    .map((s) => ({at: s.scheduledAt!, start: s.time, end: finished(s.runId)?.time ?? Infinity}))
    .sort((a, b) => a.start - b.start);
  for (let i = 1; i < queued.length; i++) {
    assert.ok(queued[i]!.start >= queued[i - 1]!.end, `runs of queued overlapped: ${JSON.stringify(queued)}`);
    const previousEnd = queued[i - 1]!.end;
    assert.ok(
      queued[i]!.at <= previousEnd + 100 && queued[i]!.at >= previousEnd - 1100,
      `run ${i} of queued is for tick ${queued[i]!.at}, not the latest that came during the run before (ended ${previousEnd}): ${JSON.stringify(queued)}`,
    );
  }
  assert.ok(server.stats.calls > 0);
});

test('a manual run asked of one replica (POST /jobs/NAME/run) goes through the shared queue and runs once', async (t) => {
  const server = await startServer(t);
  const {prefix, redis} = await redisPrefix(t);
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), Array.from({length: 10}, (_, i) => JSON.stringify({id: `m${i}`})).join('\n'));
  const file = path.join(dir, 'manual.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'manual',
      target: server.address,
      proto: DEMO_PROTO,
      method: DEMO_METHOD,
      input: 'input.jsonl',
      output: 'out/{name}-{runId}.jsonl',
    }),
  );
  const replicas = [1, 2].map((n) =>
    startReplica(t, [file, '--prefix', prefix, '--state', path.join(dir, `state-${n}.db`), '--http', '127.0.0.1:0'], dir, {
      GRPC_BATCH_REDIS: REDIS_URL,
    }),
  );
  const all = () => replicas.flatMap((r) => r.lines);
  await waitFor(() => replicas.every((r) => r.lines.some((l) => l.event === 'daemon:started')), 30_000, 'the replicas to start');
  const address = replicas[0]!.lines.find((l) => l.event === 'http:listening')!['address'] as string;
  const response = await fetch(`http://${address}/jobs/manual/run`, {method: 'POST'});
  assert.equal(response.status, 202);
  await waitFor(
    () => all().some((l) => l.event === 'run:finished' && l.job === 'manual' && l.trigger === 'manual'),
    30_000,
    'the manual run',
  );
  for (const replica of replicas) replica.stop();
  await Promise.all(replicas.map((r) => r.exited));
  assert.equal(all().filter((l) => l.event === 'run:started' && l.trigger === 'manual').length, 1);
  assert.equal(server.stats.calls, 10);
  assert.equal((await redis.keys(`${prefix}:ticks:manual-manual-*`)).length, 1, 'the run was a job of the shared tick queue');
});

test('a replica killed mid-run: the others do not start its tick again; restarted, it resumes its run to the end', async (t) => {
  const server = await startServer(t);
  const {prefix} = await redisPrefix(t);
  const dir = tempDir(t);
  // About 4 s of calls: 40 records of 100 ms, one at a time.
  writeFileSync(
    path.join(dir, 'input.jsonl'),
    Array.from({length: 40}, (_, i) => JSON.stringify({id: `k${i}`, latencyMs: 100})).join('\n'),
  );
  const file = path.join(dir, 'long.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'long',
      target: server.address,
      proto: DEMO_PROTO,
      method: DEMO_METHOD,
      input: 'input.jsonl',
      concurrency: 1,
      output: 'out/{name}-{runId}.jsonl',
    }),
  );
  const args = (n: number) => [
    file,
    '--redis',
    REDIS_URL,
    '--prefix',
    prefix,
    '--state',
    path.join(dir, `state-${n}.db`),
    '--http',
    '127.0.0.1:0',
    '--lock-duration',
    '1s',
    '--chunks',
    '1',
  ];
  const first = startReplica(t, args(1), dir);
  const other = startReplica(t, args(2), dir);
  await waitFor(() => [first, other].every((r) => r.lines.some((l) => l.event === 'daemon:started')), 30_000, 'the replicas to start');
  const address = first.lines.find((l) => l.event === 'http:listening')!['address'] as string;
  assert.equal((await fetch(`http://${address}/jobs/long/run`, {method: 'POST'})).status, 202);
  const runner = await (async () => {
    await waitFor(
      () => [first, other].some((r) => r.lines.some((l) => l.event === 'run:started' && l.trigger === 'manual')),
      30_000,
      'the run to start',
    );
    return first.lines.some((l) => l.event === 'run:started' && l.trigger === 'manual')
      ? {dead: first, alive: other, n: 1}
      : {dead: other, alive: first, n: 2};
  })();
  await waitFor(() => server.stats.calls >= 5, 30_000, 'calls at the server');
  runner.dead.kill();
  await runner.dead.exited;
  // Its tick comes back to the queue once its lock expires; the live replica leaves the run alone.
  await waitFor(() => runner.alive.lines.some((l) => l.event === 'run:left'), 30_000, 'run:left on the live replica');
  const runId = runner.alive.lines.find((l) => l.event === 'run:left')!.runId;
  assert.ok(!runner.alive.lines.some((l) => l.event === 'run:started' && l.trigger !== undefined), 'the live replica started no run');
  const restarted = startReplica(t, args(runner.n), dir);
  await waitFor(
    () => restarted.lines.some((l) => l.event === 'run:finished' && l.runId === runId && l.trigger !== undefined),
    60_000,
    'the resumed run to finish',
  );
  assert.equal(
    restarted.lines.find((l) => l.event === 'run:finished' && l.runId === runId && l.trigger !== undefined)!['status'],
    'succeeded',
  );
  const results = readFileSync(path.join(dir, `out/long-${runId}.jsonl`), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as {line: number}).line);
  assert.equal(new Set(results).size, 40);
  assert.equal(results.length, 40);
  for (const replica of [restarted, runner.alive]) replica.stop();
  await Promise.all([restarted.exited, runner.alive.exited]);
});
