import {Command, Option} from 'commander';
import {parseDuration} from '../../src/util/duration.js';
import {formatIssue} from '../../src/errors.js';
import type {LogFormat} from '../../src/util/log.js';
import {DEFAULT_OPS_ADDRESS, type OpsServer} from '../../src/ops/http.js';
import type {DEFAULT_KEEP_RUNS as SCHEDULER_KEEP_RUNS, Scheduler} from '../../src/scheduler/scheduler.js';
import type {StateStore} from '../../src/state/store.js';
import {checkQueueTarget, DEFAULT_CHUNK_SIZE, DEFAULT_PREFIX, DEFAULT_WORKER_CHUNKS, redactUrl} from '../../src/scale/target.js';
import type {Replica} from '../../src/scale/replica.js';
import {logFormatOption, parseDurationFlag, parseIntFlag} from '../flags.js';

/** The scheduler's DEFAULT_KEEP_RUNS, written here so that `--help` does not load the scheduler; its type (the literal) keeps the two alike. */
const DEFAULT_KEEP_RUNS: typeof SCHEDULER_KEEP_RUNS = 1000;

interface DaemonFlags {
  readonly state?: string;
  readonly http?: string | true;
  readonly grace: string | number;
  readonly pretty?: boolean;
  readonly logFormat?: LogFormat;
  readonly outDir?: string;
  readonly keepRuns: number;
  readonly redis?: string;
  readonly prefix: string;
  readonly chunks: number;
  readonly chunkSize: number;
  readonly lockDuration: string;
}

export const daemon = new Command('daemon')
  .description('run jobs on their cron schedules until SIGTERM/SIGINT (SIGHUP reloads the job files)')
  .argument('<jobs...>', 'job files, or folders of *.yaml/*.yml/*.json job files')
  .option('--state <path>', 'state database (runs, last fired ticks); env GRPC_BATCH_STATE', undefined)
  .addOption(
    new Option(
      '--http [address]',
      `serve /healthz, /metrics and POST /jobs/NAME/run on host:port (loopback unless a host is given)`,
    ).preset(DEFAULT_OPS_ADDRESS),
  )
  .option('--grace <duration>', 'on SIGTERM/SIGINT, how long running jobs may finish before they are cancelled', parseDurationFlag, '30s')
  .addOption(logFormatOption())
  .option('--pretty', 'the same as --log-format pretty')
  .option('--out-dir <folder>', "folder of the jobs' default results and failures files (default ./out)")
  .option(
    '--keep-runs <n>',
    'newest runs kept per job in the state database; older finished ones are deleted (0 keeps all)',
    parseIntFlag(0),
    DEFAULT_KEEP_RUNS,
  )
  .addOption(
    new Option(
      '--redis <url>',
      "replicas: fire each tick once across every daemon on this Redis, and run the jobs' calls through its chunk queue",
    ).env('GRPC_BATCH_REDIS'),
  )
  .addOption(
    new Option('--prefix <prefix>', 'with --redis: prefix of every key in Redis (the same for every replica and worker)')
      .env('GRPC_BATCH_PREFIX')
      .default(DEFAULT_PREFIX),
  )
  .option(
    '--chunks <n>',
    'with --redis: chunks of any run this replica runs at once, as a worker does; 0 = none',
    parseIntFlag(0),
    DEFAULT_WORKER_CHUNKS,
  )
  .option('--chunk-size <n>', 'with --redis: records per chunk of the runs this replica coordinates', parseIntFlag(1), DEFAULT_CHUNK_SIZE)
  .option(
    '--lock-duration <duration>',
    'with --redis: a chunk or a tick held this long without a lock renewal (its replica died) is taken over',
    parseDurationFlag,
    '30s',
  )
  .action(async (paths: string[], flags: DaemonFlags) => {
    const [
      {createLogger, defaultLogFormat},
      {OpsMetrics},
      {startOpsServer},
      {loadJobs},
      {Scheduler},
      {resolveStatePath, StateStore},
      {DaemonSignals},
    ] = await Promise.all([
      import('../../src/util/log.js'),
      import('../../src/ops/metrics.js'),
      import('../../src/ops/http.js'),
      import('../../src/scheduler/job-files.js'),
      import('../../src/scheduler/scheduler.js'),
      import('../../src/state/store.js'),
      import('./daemon-signals.js'),
    ]);
    const log = createLogger({format: flags.logFormat ?? (flags.pretty ? 'pretty' : defaultLogFormat())});
    const graceMs = parseDuration(flags.grace)!;
    // Every job is loaded and validated before anything starts, its files checked writable: one bad
    // file and nothing runs. A reload (SIGHUP) checks them the same way.
    const loadOptions = {forDaemon: true, ...(flags.outDir !== undefined ? {outDir: flags.outDir} : {})};
    // Signals first: one sent while the jobs load is queued, not fatal (see DaemonSignals).
    const signals = new DaemonSignals(paths, graceMs, log, loadOptions);
    log.info({event: 'daemon:starting', pid: process.pid, paths}, `daemon starting: loading ${paths.join(', ')}`);
    let store: StateStore | undefined;
    let scheduler: Scheduler | undefined;
    let ops: OpsServer | undefined;
    let replica: Replica | undefined;
    try {
      const {jobs, warnings} = await loadJobs(paths, loadOptions);
      for (const warning of warnings) log.warn({event: 'job:warning', file: warning.file, key: warning.path}, formatIssue(warning));
      const state = resolveStatePath(flags.state);
      store = StateStore.open(state.path);
      const queue = flags.redis !== undefined ? checkQueueTarget(flags.redis, flags.prefix) : undefined;
      replica = queue
        ? await (await import('../../src/scale/replica.js')).Replica.connect(queue, {
            chunks: flags.chunks,
            chunkSize: flags.chunkSize,
            lockDurationMs: parseDuration(flags.lockDuration)!,
            logger: log,
          })
        : undefined;
      scheduler = new Scheduler(jobs, {store, logger: log, keepRuns: flags.keepRuns, ...replica?.schedulerOptions()});
      const metrics = new OpsMetrics(scheduler);
      if (flags.http) {
        ops = await startOpsServer({address: flags.http === true ? DEFAULT_OPS_ADDRESS : flags.http, scheduler, metrics, logger: log});
        log.info(
          {event: 'http:listening', address: ops.address},
          `operations endpoint on http://${ops.address} (/healthz, /metrics, POST /jobs/NAME/run)`,
        );
      }
      await replica?.attach(scheduler);
      log.info(
        {
          event: 'daemon:started',
          pid: process.pid,
          state: store.path,
          jobs: jobs.map((j) => j.spec.name),
          ...(queue ? {redis: redactUrl(queue.url), prefix: queue.prefix} : {}),
        },
        `daemon started: ${jobs.length} jobs, state in ${store.path}${queue ? `, a replica on ${redactUrl(queue.url)} (prefix ${queue.prefix})` : ''}`,
      );
      if (!signals.isStopping) scheduler.start();
      await signals.run(scheduler);
    } finally {
      signals.dispose();
      scheduler?.close(0).catch(() => undefined); // no-op after a signal; stops the loop when listening failed
      await ops?.close();
      await replica?.close(graceMs);
      store?.close();
    }
    log.info({event: 'daemon:stopped'}, 'daemon stopped; every run is recorded');
  });
