import {existsSync} from 'node:fs';
import {Command} from 'commander';
import {formatDuration} from '../../src/util/duration.js';
import {runToJson} from '../../src/state/run-json.js';
import type {RunRecord} from '../../src/state/store.js';
import {parseIntFlag} from '../flags.js';

export const history = new Command('history')
  .description('list recorded runs (daemon and grpc-batch run), newest first')
  .option('--job <name>', 'only this job')
  .option('-n, --limit <n>', 'most runs listed', parseIntFlag(1), 20)
  .option('--json', 'print a JSON array of runs on stdout')
  .option('--state <path>', 'state database; env GRPC_BATCH_STATE')
  .action(async (flags: {job?: string; limit: number; json?: boolean; state?: string}) => {
    const {resolveStatePath, StateStore} = await import('../../src/state/store.js');
    const state = resolveStatePath(flags.state);
    if (!existsSync(state.path)) {
      if (flags.json) process.stdout.write('[]\n');
      else process.stderr.write(`no runs recorded yet: ${state.path} does not exist\n`);
      return;
    }
    const store = StateStore.open(state.path, {readonly: true});
    try {
      const runs = store.listRuns({job: flags.job, limit: flags.limit});
      if (flags.json) return void process.stdout.write(`${JSON.stringify(runs.map(runToJson), null, 2)}\n`);
      if (runs.length === 0)
        return void process.stderr.write(`no runs recorded${flags.job ? ` for job ${flags.job}` : ''} in ${state.path}\n`);
      process.stdout.write(`${formatTable(runs)}\n`);
    } finally {
      store.close();
    }
  });

function formatTable(runs: readonly RunRecord[]): string {
  const time = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
  const rows = runs.map((r) => [
    r.runId,
    r.job,
    r.trigger,
    time(r.scheduledAt),
    time(r.startedAt ?? r.createdAt),
    r.startedAt !== undefined && r.endedAt !== undefined
      ? formatDuration(r.endedAt - r.startedAt)
      : r.status === 'running'
        ? 'running'
        : '-',
    // TOTAL is the input's size when it was counted (a file), so a stopped run shows how far it got.
    r.status,
    r.total === undefined ? '-' : `${r.ok}/${r.failed}/${r.invalid}/${r.inputRecords ?? r.total}`,
    r.reason ?? '',
  ]);
  const header = ['RUN', 'JOB', 'TRIGGER', 'SCHEDULED (UTC)', 'STARTED (UTC)', 'TOOK', 'STATUS', 'OK/FAIL/INV/TOTAL', 'REASON'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
