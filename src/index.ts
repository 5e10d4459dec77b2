/** grpc-batch's public API: what `grpc-batch run` does, from code. */
export {defineJob, DEFAULTS} from './config/spec.js';
export type {JobInput, JobModule, JobSpec, DurationInput} from './config/spec.js';
export {loadJob} from './config/load.js';
export type {JobOverrides, LoadedJob} from './config/load.js';
export {run} from './runner/runner.js';
export type {StartRunOptions, RunEngine} from './runner/runner.js';
/** The engine alone: no state recorded, no lease (kept for programs written against it; `run` does what the CLI does). */
export {runJob, newRunId} from './engine/run.js';
export type {RunOptions, ProgressSnapshot} from './engine/run.js';
export {checkInput} from './engine/check-input.js';
export type {RunSummary, ErrorCount} from './engine/stats.js';
export type {RecordKey} from './io/record-key.js';
export type {RecordResult} from './io/results.js';
export {formatSummary} from './engine/print.js';
export {startDemoServer} from './demo/server.js';
export type {DemoServer, DemoServerOptions, DemoServerStats} from './demo/server.js';
export {EXIT, GbError, UsageError, ValidationError, InternalError, InterruptedError, QueueError, formatIssue} from './errors.js';
export type {Issue} from './errors.js';
