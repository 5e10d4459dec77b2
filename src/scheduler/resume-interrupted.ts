import type {LoadedJob} from '../config/load.js';
import type {Logger} from '../util/log.js';
import {moduleResumeProblem} from '../io/record-identity.js';
import {inputChange, jobChange, resultsLost, streamRefusal} from '../state/resumable.js';
import type {ResumeInfo, RunTrigger, StateStore} from '../state/store.js';

/** An interrupted run the daemon will resume, with where it reads and writes and how it started. */
export interface RunToResume {
  readonly runId: string;
  readonly trigger: RunTrigger;
  readonly scheduledAt: number | undefined;
  readonly info: ResumeInfo;
}

/**
 * Every interrupted run of a job that can be resumed, oldest first. Left out, each with a
 * `run:abandoned` log line: all of them when the job says `onInterrupted: abandon`, runs whose
 * input is gone, changed, or was a pipe, whose job now sends differently (method, metadata...), or
 * whose results file is gone or shorter than recorded, and runs of a job module's `requests()`
 * without a key (`resultFields`) to tell its records apart.
 */
export function interruptedRunsToResume(store: StateStore, job: LoadedJob, log?: Logger): RunToResume[] {
  const name = job.spec.name;
  const resumes: RunToResume[] = [];
  for (const run of store.findResumableRuns(name, ['interrupted'], 'oldest')) {
    if (job.spec.onInterrupted === 'abandon') {
      log?.warn(
        {job: name, runId: run.runId, event: 'run:abandoned'},
        `run ${run.runId} was interrupted; not resumed (onInterrupted: abandon)`,
      );
      continue;
    }
    const info = store.getResumeInfo(run.runId);
    if (!info) continue;
    const noKey = moduleResumeProblem(job.spec, run.runId, info.input);
    if (noKey) {
      log?.warn(
        {job: name, runId: run.runId, event: 'run:abandoned'},
        `run ${run.runId} was interrupted but is not resumed; it stays recorded interrupted: ${noKey}`,
      );
      continue;
    }
    const changed = info.inputIsStream
      ? streamRefusal(run.runId, info)
      : (jobChange(run.runId, info.job, job) ?? inputChange(run.runId, info) ?? resultsLost(run.runId, info));
    if (changed) {
      log?.warn({job: name, runId: run.runId, event: 'run:abandoned'}, `run ${run.runId} was interrupted but is not resumed: ${changed}`);
      continue;
    }
    resumes.push({runId: run.runId, trigger: run.trigger, scheduledAt: run.scheduledAt, info});
  }
  return resumes;
}
