/** The run's counts and summary live with the run engine (src/run/stats.ts). */
export {RunStats, OTHER_MESSAGES, type ErrorCount, type RunSummary, type SummaryFields} from '../run/stats.js';
