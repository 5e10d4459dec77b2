import type {OverlapPolicy} from '../config/schedule-spec.js';

/** What a tick does when runs of its job may be going: the job's `overlap` policy as a decision. */
export type OverlapDecision =
  | {readonly action: 'start'}
  | {readonly action: 'replace'}
  | {readonly action: 'queue'}
  | {readonly action: 'skip'; readonly reason: string};

/**
 * `running`: the ids of the job's runs going now; `queued`: whether one run already waits.
 * skip: skipped while one runs; queue: one run waits (a second is skipped); replace: the runs going
 * are cancelled and the new one starts; allow: it starts beside them.
 */
export function decideOverlap(policy: OverlapPolicy, running: readonly string[], queued: boolean): OverlapDecision {
  if (running.length === 0) return {action: 'start'};
  const ids = running.join(', ');
  switch (policy) {
    case 'skip':
      return {action: 'skip', reason: `run ${ids} is still running (overlap: skip)`};
    case 'queue':
      return queued
        ? {action: 'skip', reason: `run ${ids} is still running and another run is already queued (overlap: queue keeps one)`}
        : {action: 'queue'};
    case 'replace':
      return {action: 'replace'};
    case 'allow':
      return {action: 'start'};
  }
}
