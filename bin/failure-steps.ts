import type {NextStep} from '../src/engine/print.js';
import type {RunSummary} from '../src/engine/stats.js';

/**
 * Failed statuses worth sending again as they are: the server was down, slow, busy or gave up on
 * the call (gRPC's transient statuses: https://grpc.io/docs/guides/status-codes/). Every other
 * status (NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED...) and an invalid record fail again
 * until something is fixed: they are listed apart.
 */
export const RESEND_STATUSES: ReadonlySet<string> = new Set([
  'UNAVAILABLE',
  'DEADLINE_EXCEEDED',
  'RESOURCE_EXHAUSTED',
  'ABORTED',
  'CANCELLED',
]);

const list = (entries: readonly (readonly [string, number])[]) => entries.map(([status, n]) => `${status} ${n}`).join(', ');
const sum = (entries: readonly (readonly [string, number])[]) => entries.reduce((total, [, n]) => total + n, 0);

/**
 * The next steps of a run that read its whole input and has failed records, split by what to do
 * next: one command re-sends the records worth re-sending (`--only-status` with the transient
 * statuses), and the others are listed apart with their statuses, with the command that re-sends
 * them once fixed. `rerun(extra)` is the command that runs the failures file, with `extra` flags.
 */
export function failureSteps(summary: RunSummary, rerun: (extra: readonly string[]) => string): NextStep[] {
  const failed = Object.entries(summary.byStatus).filter(([status, n]) => status !== 'OK' && n > 0);
  const resend = failed.filter(([status]) => RESEND_STATUSES.has(status));
  const permanent = [
    ...failed.filter(([status]) => !RESEND_STATUSES.has(status)),
    ...(summary.invalid > 0 ? [['INVALID', summary.invalid] as const] : []),
  ];
  const steps: NextStep[] = [];
  if (resend.length > 0) {
    steps.push(
      permanent.length === 0
        ? {command: rerun([]), why: `re-sends the ${sum(resend)} failed records (${list(resend)}): worth another try`}
        : {
            command: rerun(['--only-status', resend.map(([status]) => status).join(',')]),
            why: `re-sends only the ${sum(resend)} records worth another try (${list(resend)})`,
          },
    );
  }
  if (permanent.length > 0) {
    steps.push({
      command: rerun(resend.length > 0 ? ['--only-status', permanent.map(([status]) => status).join(',')] : []),
      why: `${sum(permanent)} records fail again as they are (${list(permanent)}): fix them in that file (the results file says why each failed), then re-send them with this`,
    });
  }
  return steps;
}
