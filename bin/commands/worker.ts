import {Command, Option} from 'commander';
import {parseDuration} from '../../src/util/duration.js';
import {DEFAULT_OPS_ADDRESS} from '../../src/ops/http.js';
import type {ChunkWorker} from '../../src/scale/chunk-worker.js';
import {checkQueueTarget, DEFAULT_PREFIX, DEFAULT_WORKER_CHUNKS, redactUrl} from '../../src/scale/target.js';
import {parseDurationFlag, parseIntFlag} from '../flags.js';

interface WorkerFlags {
  readonly redis?: string;
  readonly prefix?: string;
  readonly chunks: number;
  readonly lockDuration: string;
  readonly grace: string;
  readonly http?: string | true;
  readonly pretty?: boolean;
}

export const worker = new Command('worker')
  .description('take chunks of distributed runs (run --redis, daemon --redis) from the queue and make their calls, until SIGTERM/SIGINT')
  .addOption(new Option('--redis <url>', 'Redis of the queue, redis://host:port[/db] or rediss://').env('GRPC_BATCH_REDIS'))
  .addOption(
    new Option('--prefix <prefix>', 'prefix of every key in Redis: one prefix, one cluster of coordinators and workers')
      .env('GRPC_BATCH_PREFIX')
      .default(DEFAULT_PREFIX),
  )
  .option('--chunks <n>', 'chunks run at once, of any runs (a run has at most 8 in the queue)', parseIntFlag(1), DEFAULT_WORKER_CHUNKS)
  .option(
    '--lock-duration <duration>',
    'a chunk held this long without a renewal of its lock (this worker died or froze) goes to another worker',
    parseDurationFlag,
    '30s',
  )
  .option(
    '--grace <duration>',
    'on SIGTERM/SIGINT, how long running chunks may finish before they are handed back to the queue',
    parseDurationFlag,
    '30s',
  )
  .addOption(
    new Option('--http [address]', 'serve /healthz and /metrics on host:port (loopback unless a host is given)').preset(
      DEFAULT_OPS_ADDRESS,
    ),
  )
  .option('--pretty', 'human-readable log lines instead of JSON (stderr)')
  .action(async (flags: WorkerFlags) => {
    const {createLogger, createPrettyLogger} = await import('../../src/util/log.js');
    const log = flags.pretty ? createPrettyLogger() : createLogger();
    const target = checkQueueTarget(flags.redis, flags.prefix);
    const graceMs = parseDuration(flags.grace)!;
    // BullMQ, ioredis and prom-client load only for this command.
    const [{ChunkWorker}, {connectRedis}, {startWorkerHttp, WorkerMetrics}, {sweepOrphans}] = await Promise.all([
      import('../../src/scale/chunk-worker.js'),
      import('../../src/scale/redis.js'),
      import('../../src/scale/worker-http.js'),
      import('../../src/scale/orphans.js'),
    ]);
    const redis = await connectRedis(target, log);
    // What runs whose coordinator is long gone left in the queue: removed before any is taken.
    await sweepOrphans(redis, target.prefix, log).catch((error: unknown) =>
      log.warn({event: 'redis:sweep-failed', error: String(error)}, `could not sweep what old runs left in Redis: ${String(error)}`),
    );
    let chunkWorker: ChunkWorker | undefined;
    const metrics = new WorkerMetrics(() => chunkWorker);
    chunkWorker = new ChunkWorker({
      redis,
      prefix: target.prefix,
      chunks: flags.chunks,
      lockDurationMs: parseDuration(flags.lockDuration)!,
      logger: log,
      onChunk: (event) => metrics.onChunk(event),
    });
    const http = flags.http
      ? await startWorkerHttp(flags.http === true ? DEFAULT_OPS_ADDRESS : flags.http, () => chunkWorker, metrics)
      : undefined;
    if (http)
      log.info({event: 'http:listening', address: http.address}, `operations endpoint on http://${http.address} (/healthz, /metrics)`);
    await chunkWorker.waitUntilReady();
    log.info(
      {event: 'worker:started', pid: process.pid, redis: redactUrl(target.url), prefix: target.prefix, chunks: flags.chunks},
      `worker started: up to ${flags.chunks} chunks at once from ${redactUrl(target.url)} (prefix ${target.prefix})`,
    );
    await new Promise<void>((resolve) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) {
          log.warn({event: 'worker:handing-back', signal}, `${signal} again: handing the running chunks back to the queue now`);
          chunkWorker!.handBack();
          return;
        }
        stopping = true;
        log.info(
          {event: 'worker:stopping', signal, graceMs, chunks: chunkWorker!.activeChunks},
          `${signal}: no new chunks; running chunks have ${graceMs} ms to finish, then go back to the queue`,
        );
        chunkWorker!.close(graceMs).then(
          () => {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            resolve();
          },
          () => resolve(),
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    await http?.close();
    await redis.quit().catch(() => undefined);
    log.info({event: 'worker:stopped'}, 'worker stopped');
  });
