import {Command, Option} from 'commander';
import {formatIssue, GbError, InternalError, InterruptedError, IoError, EXIT, UsageError} from '../../src/errors.js';
import type {RunSummary} from '../../src/engine/stats.js';
import {checkQueueTarget, DEFAULT_CHUNK_SIZE, DEFAULT_PREFIX} from '../../src/scale/target.js';
import {collectFlag, collectHeaderFlag, logFormatOption, parseStatusListFlag, parseDurationFlag, parseIntFlag} from '../flags.js';
import {withJobKeyOptions} from '../job-key-options.js';
import {setExitCode} from '../exit.js';
import type {RunConsole} from '../run-console.js';
import type {RunFlags} from './run-job.js';

export const run = withJobKeyOptions(
  new Command('run')
    .description('run a job once: one call per input record, many in flight, then a summary')
    .argument(
      '[job]',
      'job file (YAML, JSON, or a .js/.ts module exporting defineJob); without one, --target, --method and --input give the job',
    ),
  'run',
) // -t, -i, -c, --max-line-bytes, --workers...: from src/config/job-keys.ts
  .option('--method <pkg.Service/Method>', 'without a job file: the method to call')
  .option(
    '--proto <file>',
    'without a job file: .proto file of the method (repeatable); without --proto or --protoset, server reflection',
    collectFlag,
    [],
  )
  .option('--import-path <dir>', "without a job file: folder searched for the protos' imports (repeatable)", collectFlag, [])
  .option('--protoset <file>', 'without a job file: FileDescriptorSet file, instead of --proto (repeatable)', collectFlag, [])
  .option(
    '-H, --header <"name: value">',
    'metadata sent with every call, added to metadata (repeatable); ${VAR} is expanded',
    collectHeaderFlag,
    [],
  )
  .option('--tls', 'without a job file: TLS with the system roots (implied by --ca, --cert, --key)')
  .option('--ca <file>', 'without a job file: PEM file of the CA that signed the server certificate')
  .option('--cert <file>', 'without a job file: PEM client certificate, for mutual TLS (with --key)')
  .option('--key <file>', 'without a job file: PEM client key, for mutual TLS (with --cert)')
  .option('--server-name <name>', 'without a job file: name to check the server certificate against')
  .option(
    '--only-status <statuses>',
    'with a failures file as --input: send only its records that failed with these statuses (comma-separated; INVALID for invalid records)',
    parseStatusListFlag,
  )
  .option(
    '--save-job <file>',
    'without a job file: also write the job the flags describe to this YAML file (grpc-batch run FILE runs it again)',
  )
  .option('--out-dir <folder>', 'folder of the default results and failures files (default ./out)')
  .option('--preflight', 'before reading the input, check that the target answers (one health-check call); exit 2 if not')
  .option('--dry-run', 'load and check the job and every input record; send nothing')
  .option('--json', 'print the summary as one JSON object on stdout, nothing else there')
  .addOption(new Option('--no-progress', 'no progress bar or progress lines'))
  .option('--progress-interval <duration>', 'how often progress is shown (default 200ms on a terminal, 5s otherwise)', parseDurationFlag)
  .addOption(logFormatOption())
  .option(
    '--resume [runId]',
    "continue an interrupted or aborted run (default: the job's newest unfinished one): records with a result are not sent again",
  )
  .option(
    '--state <path>',
    'state database the run is recorded in (see grpc-batch history); env GRPC_BATCH_STATE, default ./.grpc-batch/state.db',
  )
  .addOption(
    new Option(
      '--redis <url>',
      'distributed run: the calls are made by grpc-batch workers taking chunks from this Redis; this process reads the input and writes the files',
    ).env('GRPC_BATCH_REDIS'),
  )
  .addOption(
    new Option('--prefix <prefix>', "with --redis: prefix of every key in Redis (the workers' --prefix)")
      .env('GRPC_BATCH_PREFIX')
      .default(DEFAULT_PREFIX),
  )
  .option(
    '--chunk-size <n>',
    "with --redis: records per chunk (a dead worker's chunk is sent again whole)",
    parseIntFlag(1),
    DEFAULT_CHUNK_SIZE,
  )
  .action(async (jobFile: string | undefined, flags: RunFlags) => {
    const {openRunConsole} = await import('../run-console.js');
    const console = openRunConsole(flags);
    try {
      await runCommand(jobFile, flags, console);
    } finally {
      console.close();
    }
  });

async function runCommand(
  jobFile: string | undefined,
  flags: RunFlags,
  {log, progress, progressIntervalMs, printSummary}: RunConsole,
): Promise<void> {
  // What a run needs loads here, not when the CLI starts (`--help` needs none of it).
  const [
    {checkInput},
    {inputLabel, readsStdin, statusFilterProblem},
    {startRun},
    {preflight},
    {givenSpecKeys, refuseUnhonouredFlags},
    {nextSteps, resumeStep},
    {MODULE_WITHOUT_KEY, moduleResumeProblem},
    {loadRunJob, recordFlagJob},
    {displayPath},
  ] = await Promise.all([
    import('../../src/engine/check-input.js'),
    import('../../src/io/input.js'),
    import('../../src/runner/runner.js'),
    import('../../src/engine/preflight.js'),
    import('../../src/state/resumable.js'),
    import('../next-step.js'),
    import('../../src/io/record-identity.js'),
    import('./run-job.js'),
    import('../../src/engine/print.js'),
  ]);
  const queue = flags.redis !== undefined ? checkQueueTarget(flags.redis, flags.prefix) : undefined;
  const loaded = await loadRunJob(jobFile, flags);
  let job = loaded.fromFlags ? recordFlagJob(loaded.job, loaded.fromFlags, flags, log) : loaded.job;
  for (const warning of job.warnings) log.warn({event: 'job:warning'}, formatIssue(warning));

  if (flags.dryRun) {
    const check = await checkInput(job);
    for (const issue of [...check.issues, ...check.hints]) process.stderr.write(`${formatIssue(issue)}\n`);
    const result = {
      job: job.spec.name,
      dryRun: true,
      target: job.spec.target,
      method: job.method.name,
      total: check.total,
      invalid: check.invalid,
    };
    if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else
      process.stdout.write(
        `${job.spec.name}: dry run, nothing sent: ${check.total} records, ${check.invalid} invalid; would call ${job.method.name} on ${job.spec.target} with ${job.spec.concurrency} in flight\n`,
      );
    if (check.invalid > 0) setExitCode(EXIT.RECORDS_FAILED);
    return;
  }

  if (flags.onlyStatus) {
    const problem = statusFilterProblem(job.spec.input);
    if (problem) throw new UsageError(problem);
  }

  const stop = new AbortController();
  const cancel = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!signalled) {
      signalled = signal;
      log.warn(
        {event: 'run:stopping', signal},
        `${signal}: no new calls; waiting for the calls in flight (send ${signal} again to cancel them)`,
      );
      stop.abort(signal);
    } else {
      cancel.abort(signal);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // The run facade: files locked, the run recorded (or claimed to resume), sent, its end recorded, all let go.
    // --redis: the coordinator of a distributed run (BullMQ loads only then). Its lease is taken before
    // the run is recorded or claimed: a second coordinator of a live run is refused with nothing changed.
    const engine = queue
      ? (await import('../../src/scale/queue-engine.js')).queueEngine({...queue, chunkSize: flags.chunkSize, logger: log})
      : undefined;
    const finished = await startRun(job, {
      state: flags.state,
      resume: flags.resume,
      given: givenSpecKeys(flags),
      engine,
      beforeLock: async (running, resumed) => {
        if (resumed) refuseUnhonouredFlags(flags, resumed.given, resumed.runId, resumed.info); // --input, --output...: refused, not ignored
        if (flags.preflight) await preflight(running, log);
        if (signalled) throw new InterruptedError(signalled); // stopped before it started: nothing recorded
      },
      signal: stop.signal,
      cancelSignal: cancel.signal,
      logger: log,
      progressIntervalMs,
      onlyStatus: flags.onlyStatus !== undefined ? new Set(flags.onlyStatus.split(',')) : undefined,
      ...(progress ? {onProgress: (p) => progress.update(p)} : {}),
    });
    if (!finished.started) throw finished.error;
    const {runId, resumeInfo} = finished;
    job = finished.job;
    const moduleWithoutKey = moduleResumeProblem(job.spec, runId, resumeInfo.input) !== undefined;
    const invocation = {
      // A job made from flags runs again from the file it was recorded in (which holds its -H headers).
      jobFile: jobFile ?? displayPath(job.spec.file),
      flags: loaded.fromFlags ? {...flags, header: []} : flags,
      maxFailures: job.spec.maxFailures,
      maxInvalid: job.spec.maxInvalid,
      resumable: finished.inState && !readsStdin(job.spec.input) && !resumeInfo.inputIsStream && !moduleWithoutKey,
      ...(moduleWithoutKey ? {notResumable: MODULE_WITHOUT_KEY} : {}),
    };
    if (finished.failed) {
      // The run so far (as JSON under --json) and its resume command, then the error (exit 3).
      const {error} = finished;
      const partial = error instanceof InternalError ? (error.summary as RunSummary | undefined) : undefined;
      if (partial) printSummary(partial, nextSteps(partial, invocation));
      if (error instanceof IoError) {
        const how = finished.recorded
          ? 'it is recorded interrupted'
          : 'its end could not be recorded, and --resume takes it as interrupted now that this process is gone';
        log.error(
          {event: 'run:interrupted', runId, file: error.file, code: error.errno},
          `run ${runId} stopped: ${error.message}; ${how}: fix the cause, then resume it`,
        );
        if (!partial && invocation.resumable) error.next = [resumeStep(runId, invocation)];
      } else if (error instanceof GbError && invocation.resumable) {
        // A crash leaves every record with a result; the rest can be sent by resuming the run.
        error.next = [resumeStep(runId, invocation)];
      }
      throw error;
    }
    const summary = finished.summary!;
    if (summary.total === 0 && !signalled)
      log.warn({event: 'input:empty'}, `${inputLabel(job.spec)}: the input has no records (empty, or only blank lines); nothing was sent`);
    printSummary(summary, nextSteps(summary, invocation));
    if (signalled) throw new InterruptedError(signalled);
    if (summary.status === 'interrupted') setExitCode(EXIT.INTERRUPTED);
    else if (summary.status !== 'succeeded') setExitCode(EXIT.RECORDS_FAILED);
  } finally {
    progress?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
