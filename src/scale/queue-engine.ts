import type {RunEngine} from '../runner/runner.js';
import {claimQueuedRun, runQueued, type QueueClaim, type QueueRunOptions} from './coordinator.js';

/**
 * The engine of a distributed run's coordinator, for the run facade: the run's lease in Redis is
 * taken before the run is recorded (a second coordinator of a live run is refused with nothing
 * changed), then the records go through the queue to `grpc-batch worker`s (`runQueued`).
 */
export function queueEngine(options: Omit<QueueRunOptions, 'claim'>): RunEngine {
  let claim: QueueClaim | undefined;
  return {
    claim: async (runId) => {
      claim = await claimQueuedRun(runId, options);
    },
    run: (job, runOptions) => runQueued(job, runOptions, {...options, ...(claim ? {claim} : {})}),
    release: async () => {
      await claim?.release();
    },
  };
}
