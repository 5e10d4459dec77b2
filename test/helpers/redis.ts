import {spawn, type ChildProcess} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {createServer} from 'node:net';
import path from 'node:path';
import type {TestContext} from 'node:test';
import {Queue} from 'bullmq';
import {Redis} from 'ioredis';
import {spawnCli, waitFor, type CliProcess} from './cli.js';

/** The machine's Redis (`.ci/run` starts it when it is not running). */
export const REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * A BullMQ prefix of the test's own, and a connection: when the test ends, its queues are
 * obliterated and every key under the prefix deleted (never FLUSHDB: tests run side by side).
 */
export async function redisPrefix(t: TestContext, url = REDIS_URL): Promise<{prefix: string; redis: Redis}> {
  const prefix = `gbtest-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(url, {maxRetriesPerRequest: null});
  redis.on('error', () => undefined); // a private redis-server may be stopped or restarted by the test
  t.after(async () => {
    if (url !== REDIS_URL) {
      redis.disconnect(); // a private redis-server, killed with the test
      return;
    }
    for (const name of ['chunks', 'ticks']) {
      const queue = new Queue(name, {connection: redis, prefix});
      await queue.obliterate({force: true}).catch(() => undefined);
      await queue.close();
    }
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    await redis.quit();
  });
  return {prefix, redis};
}

/** Every key under a prefix with its value (strings and hash fields), for "nothing secret is stored" checks. */
export async function dumpPrefix(redis: Redis, prefix: string): Promise<string> {
  let cursor = '0';
  let out = '';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      if (type === 'string') out += `${key} ${await redis.get(key)}\n`;
      else if (type === 'hash') out += `${key} ${JSON.stringify(await redis.hgetall(key))}\n`;
      else if (type === 'stream') out += `${key} ${JSON.stringify(await redis.xrange(key, '-', '+'))}\n`;
    }
  } while (cursor !== '0');
  return out;
}

/** `grpc-batch worker` child processes on a prefix, killed (SIGKILL) when the test ends. */
export function startWorkers(
  t: TestContext,
  count: number,
  options: {prefix: string; url?: string; lockDuration?: string; chunks?: number; env?: Record<string, string>; cwd?: string},
): CliProcess[] {
  return Array.from({length: count}, () => {
    const worker = spawnCli(
      [
        'worker',
        '--redis',
        options.url ?? REDIS_URL,
        '--prefix',
        options.prefix,
        '--lock-duration',
        options.lockDuration ?? '2s',
        '--grace',
        '5s',
        ...(options.chunks ? ['--chunks', String(options.chunks)] : []),
      ],
      {
        env: {GRPC_BATCH_LOG: 'info', ...options.env},
        timeoutMs: 120_000,
        ...(options.cwd ? {cwd: options.cwd} : {}),
      },
    );
    t.after(() => worker.child.kill('SIGKILL'));
    return worker;
  });
}

/**
 * A coordinator: `grpc-batch run JOB --redis URL --prefix P [--chunk-size N] --json --no-progress
 * --state DIR/state.db`, in `dir`, killed (SIGKILL) when the test ends.
 */
export function startCoordinator(
  t: TestContext,
  dir: string,
  job: string,
  options: {prefix: string; url?: string; chunkSize?: number; timeoutMs?: number},
): CliProcess {
  const coordinator = spawnCli(
    [
      'run',
      job,
      '--redis',
      options.url ?? REDIS_URL,
      '--prefix',
      options.prefix,
      ...(options.chunkSize !== undefined ? ['--chunk-size', String(options.chunkSize)] : []),
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
    ],
    {cwd: dir, timeoutMs: options.timeoutMs ?? 120_000},
  );
  t.after(() => coordinator.child.kill('SIGKILL'));
  return coordinator;
}

/** The stderr so far of a process started by `spawnCli`. */
export function stderrOf(cli: CliProcess): () => string {
  let text = '';
  cli.child.stderr.on('data', (chunk: string) => (text += chunk));
  return () => text;
}

/** Waits until every worker logged that it started. */
export async function workersReady(workers: readonly CliProcess[]): Promise<void> {
  const logs = workers.map(stderrOf);
  await waitFor(() => logs.every((l) => l().includes('worker:started')), 30_000, 'workers to start');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as {port: number}).port;
      server.close(() => resolve(port));
    });
  });
}

/** A private `redis-server` on a free loopback port (for faults: SIGSTOP, kill, restart empty), stopped when the test ends. */
export async function privateRedis(t: TestContext): Promise<{url: string; readonly pid: number; restart(): Promise<void>}> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {stdio: 'ignore'});
    const probe = new Redis(url, {maxRetriesPerRequest: 0, retryStrategy: () => 50});
    probe.on('error', () => undefined);
    await waitFor(() => probe.status === 'ready', 10_000, 'the private redis-server');
    probe.disconnect();
  };
  await start();
  t.after(() => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
  return {
    url,
    get pid() {
      return child.pid!;
    },
    /** Kills it (its data is gone: no persistence) and starts an empty one on the same port. */
    async restart() {
      const old = child;
      const gone =
        old.exitCode !== null || old.signalCode !== null ? Promise.resolve() : new Promise((resolve) => old.once('exit', resolve));
      old.kill('SIGKILL');
      await gone;
      await start();
    },
  };
}
