import {Command, Option} from 'commander';
import {parseDuration} from '../../src/duration.js';
import {formatIssue} from '../../src/errors.js';
import {createLogger, defaultLogFormat, type LogFormat} from '../../src/log.js';
import {OpsMetrics} from '../../src/ops-metrics.js';
import {DEFAULT_OPS_ADDRESS, startOpsServer, type OpsServer} from '../../src/ops-http.js';
import {loadJobs} from '../../src/scheduler/job-files.js';
import {DEFAULT_KEEP_RUNS, Scheduler} from '../../src/scheduler/scheduler.js';
import {resolveStatePath, StateStore} from '../../src/state/store.js';
import {parseDurationFlag, parseIntFlag} from '../flags.js';
import {logFormatOption} from '../run-console.js';
import {DaemonSignals} from './daemon-signals.js';

interface DaemonFlags {
  readonly state?: string;
  readonly http?: string | true;
  readonly grace: string | number;
  readonly pretty?: boolean;
  readonly logFormat?: LogFormat;
  readonly outDir?: string;
  readonly keepRuns: number;
}

export const daemon = new Command('daemon')
  .description('run jobs on their cron schedules until SIGTERM/SIGINT (SIGHUP reloads the job files)')
  .argument('<jobs...>', 'job files, or folders of *.yaml/*.yml/*.json job files')
  .option('--state <path>', 'state database (runs, last fired ticks); env GRPC_BATCH_STATE', undefined)
  .addOption(new Option('--http [address]', `serve /healthz, /metrics and POST /jobs/NAME/run on host:port (loopback unless a host is given)`).preset(DEFAULT_OPS_ADDRESS))
  .option('--grace <duration>', 'on SIGTERM/SIGINT, how long running jobs may finish before they are cancelled', parseDurationFlag, '30s')
  .addOption(logFormatOption())
  .option('--pretty', 'the same as --log-format pretty')
  .option('--out-dir <folder>', 'folder of the jobs\' default results and failures files (default ./out)')
  .option('--keep-runs <n>', 'newest runs kept per job in the state database; older finished ones are deleted (0 keeps all)', parseIntFlag(0), DEFAULT_KEEP_RUNS)
  .action(async (paths: string[], flags: DaemonFlags) => {
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
    try {
      const {jobs, warnings} = await loadJobs(paths, loadOptions);
      for (const warning of warnings) log.warn({event: 'job:warning', file: warning.file, key: warning.path}, formatIssue(warning));
      const state = resolveStatePath(flags.state);
      store = StateStore.open(state.path);
      scheduler = new Scheduler(jobs, {store, logger: log, keepRuns: flags.keepRuns});
      const metrics = new OpsMetrics(scheduler);
      if (flags.http) {
        ops = await startOpsServer({address: flags.http === true ? DEFAULT_OPS_ADDRESS : flags.http, scheduler, metrics, logger: log});
        log.info({event: 'http:listening', address: ops.address}, `operations endpoint on http://${ops.address} (/healthz, /metrics, POST /jobs/NAME/run)`);
      }
      log.info({event: 'daemon:started', pid: process.pid, state: store.path, jobs: jobs.map((j) => j.spec.name)}, `daemon started: ${jobs.length} jobs, state in ${store.path}`);
      if (!signals.isStopping) scheduler.start();
      await signals.run(scheduler);
    } finally {
      signals.dispose();
      scheduler?.close(0).catch(() => undefined); // no-op after a signal; stops the loop when listening failed
      await ops?.close();
      store?.close();
    }
    log.info({event: 'daemon:stopped'}, 'daemon stopped; every run is recorded');
  });
