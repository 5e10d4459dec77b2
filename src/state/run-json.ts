import type {RunRecord} from './store.js';

/**
 * A stored run as `--json` prints it (`history --json`, `list --json`): every time as an ISO 8601
 * string in UTC (`2026-11-25T07:30:00.000Z`), the one time format of every `--json` output.
 */
export function runToJson(run: RunRecord): Record<string, unknown> {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  return {
    ...run,
    scheduledAt: iso(run.scheduledAt),
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    endedAt: iso(run.endedAt),
  };
}
