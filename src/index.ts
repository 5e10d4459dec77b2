/** grpc-batch's public API: what `grpc-batch run` does, from code. */
export {defineJob, DEFAULTS} from './jobs/spec.js';
export type {JobInput, JobModule, JobSpec, DurationInput} from './jobs/spec.js';
export {loadJob} from './jobs/load.js';
export type {JobOverrides, LoadedJob} from './jobs/load.js';
export {run} from './run/runner.js';
export type {StartRunOptions, RunEngine} from './run/runner.js';
/** The engine alone: no state recorded, no lease (kept for programs written against it; `run` does what the CLI does). */
export {runJob, newRunId} from './run/run.js';
export type {RunOptions, ProgressSnapshot} from './run/run.js';
export {checkInput} from './jobs/check.js';
export type {RunSummary, ErrorCount} from './run/stats.js';
export type {RecordKey} from './jobs/record-key.js';
export type {RecordResult} from './jobs/results.js';
export {formatSummary} from './jobs/print.js';
export {startDemoServer} from './demo/server.js';
export type {DemoServer, DemoServerOptions, DemoServerStats} from './demo/server.js';
export {EXIT, GbError, UsageError, ValidationError, InternalError, InterruptedError, QueueError, formatIssue} from './errors.js';
export type {Issue} from './errors.js';
