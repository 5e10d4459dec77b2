import {existsSync} from 'node:fs';
import {Command} from 'commander';
import {formatDuration} from '../../src/util/duration.js';
import {formatIssue} from '../../src/errors.js';
import {runToJson} from '../../src/state/run-json.js';
import type {RunRecord} from '../../src/state/store.js';

/** Fire times shown per job. */
const NEXT_RUNS = 3;

export const list = new Command('list')
  .description('show each job: its schedule in words, its next fire times in its time zone, and its last run')
  .argument('<jobs...>', 'job files, or folders of *.yaml/*.yml/*.json job files')
  .option('--state <path>', 'state database to read last runs from; env GRPC_BATCH_STATE')
  .option('--json', 'print a JSON array on stdout')
  .action(async (paths: string[], flags: {state?: string; json?: boolean}) => {
    const [{loadJobs}, {CronSchedule}, {describeSchedule}, {formatInZone}, {resolveStatePath, StateStore}] = await Promise.all([
      import('../../src/scheduler/job-files.js'),
      import('../../src/util/cron.js'),
      import('../../src/scheduler/words.js'),
      import('../../src/util/zone.js'),
      import('../../src/state/store.js'),
    ]);
    const {jobs, warnings} = await loadJobs(paths);
    for (const warning of warnings) process.stderr.write(`warning: ${formatIssue(warning)}\n`);
    const state = resolveStatePath(flags.state);
    const store = existsSync(state.path) ? StateStore.open(state.path, {readonly: true}) : undefined;
    const now = Date.now();
    try {
      const rows = jobs.map((job) => {
        const schedule = job.spec.schedule;
        const next = schedule?.enabled ? new CronSchedule(schedule.expression, schedule.timezone).nextRuns(now, NEXT_RUNS) : [];
        const last = store?.listRuns({job: job.spec.name, limit: 1})[0];
        return {
          name: job.spec.name,
          file: job.spec.file,
          schedule,
          words: schedule ? describeSchedule(schedule.expression) : undefined,
          next,
          last,
        };
      });
      if (flags.json) {
        const json = rows.map((r) => ({
          ...r,
          next: r.next.map((ms) => new Date(ms).toISOString()),
          last: r.last ? runToJson(r.last) : null,
        }));
        return void process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      }
      const blocks = rows.map((r) => {
        const lines = [`${r.name}  (${r.file})`];
        if (!r.schedule) lines.push('  schedule: none (runs only when triggered: POST /jobs/NAME/run or grpc-batch run)');
        else {
          lines.push(`  schedule: ${r.schedule.expression}  ${r.words}, ${r.schedule.timezone}${r.schedule.enabled ? '' : '  [disabled]'}`);
          lines.push(
            `  overlap: ${r.schedule.overlap}, catch-up: ${r.schedule.catchUpMs ? `within ${formatDuration(r.schedule.catchUpMs)}` : 'never'}, jitter: ${r.schedule.jitterMs ? formatDuration(r.schedule.jitterMs) : 'none'}`,
          );
          if (r.next.length > 0) lines.push(`  next: ${r.next.map((ms) => formatInZone(ms, r.schedule!.timezone)).join(', ')}`);
        }
        lines.push(`  last run: ${r.last ? describeRun(r.last) : 'none recorded'}`);
        return lines.join('\n');
      });
      process.stdout.write(`${blocks.join('\n\n')}\n`);
    } finally {
      store?.close();
    }
  });

function describeRun(run: RunRecord): string {
  const at = new Date(run.startedAt ?? run.createdAt).toISOString().replace('T', ' ').slice(0, 19);
  const counts =
    run.total === undefined ? '' : `, ${run.ok} ok / ${run.failed} failed / ${run.invalid} invalid of ${run.inputRecords ?? run.total}`;
  return `${run.status} at ${at} UTC (${run.trigger}, ${run.runId}${counts})${run.reason ? `: ${run.reason}` : ''}`;
}
