/** The run engine lives in src/run/ (plan, pipeline, sink, stats); this is its entry, where it always was. */
export {newRunId, runJob, type ProgressSnapshot, type RunOptions} from '../run/run.js';
