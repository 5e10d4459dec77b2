import cliProgress from 'cli-progress';
import {formatDuration} from '../duration.js';
import type {ProgressSnapshot} from '../run/run.js';
import type {RunSummary} from './summary.js';

/** The human summary printed at the end of a run. */
export function formatSummary(summary: RunSummary): string {
  const lines: string[] = [];
  const icon = summary.status === 'succeeded' ? '✔' : summary.status === 'failed' ? '✖' : '■';
  const unfinished = summary.unfinished > 0 ? `, ${summary.unfinished} unfinished (no result yet; --resume sends them)` : '';
  lines.push(`${icon} ${summary.job} ${summary.status} (run ${summary.runId}) in ${formatDuration(summary.durationMs)}`);
  lines.push(`  records   ${summary.total} read: ${summary.ok} ok, ${summary.failed} failed, ${summary.invalid} invalid${unfinished}`);
  const statuses = Object.entries(summary.byStatus).map(([name, n]) => `${name} ${n}`).join(', ');
  if (statuses) lines.push(`  statuses  ${statuses}`);
  lines.push(`  calls     ${summary.attempts} (${summary.retried} records retried), ${summary.callsPerSec.toLocaleString('en-US')} calls/s`);
  const l = summary.latencyMs;
  lines.push(`  latency   p50 ${l.p50}ms  p90 ${l.p90}ms  p99 ${l.p99}ms  max ${l.max}ms`);
  lines.push(`  results   ${summary.output}`);
  if (summary.failures) lines.push(`  failures  ${summary.failures}  (re-run with --input ${summary.failures})`);
  if (summary.stopReason) lines.push(`  stopped   by ${summary.stopReason} after input line ${summary.lastLine}; later records were not sent`);
  if (summary.abortReason) lines.push(`  aborted   ${summary.abortReason}; records after input line ${summary.lastLine} were not sent`);
  if (summary.interruptReason) lines.push(`  interrupted ${summary.interruptReason}; nothing failed for it`);
  if (summary.outages.pauses > 0) lines.push(`  paused    ${summary.outages.pauses} time(s), ${formatDuration(summary.outages.pausedMs)} in all, waiting for the backend (no record failed for it)`);
  if (summary.concurrencyLimit) lines.push(`  limit     calls in flight min ${summary.concurrencyLimit.min}, mean ${summary.concurrencyLimit.mean}, max ${summary.concurrencyLimit.max} (adaptive)`);
  if (summary.retriesThrottled > 0) lines.push(`  throttled ${summary.retriesThrottled} retries waited for the retry throttle: many calls were failing (retry.throttle)`);
  return lines.join('\n');
}

/** Progress on a terminal (a bar) or in logs (a line every `intervalMs`). */
export interface ProgressReporter {
  update(progress: ProgressSnapshot): void;
  stop(): void;
}

export function createProgressReporter(stream: NodeJS.WriteStream, write: (line: string) => void): ProgressReporter {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: '{bar} {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} | failed {failed} | in flight {inFlight}{state}',
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        const payload = {rate: rate(p), failed: p.failed + p.invalid, inFlight: p.inFlight, state: stateOf(p)};
        if (!started) {
          bar.start(p.total ?? 0, p.done, payload);
          started = true;
        }
        if (p.total !== undefined) bar.setTotal(p.total);
        else bar.setTotal(Math.max(p.done + p.inFlight, 1));
        bar.update(p.done, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  return {
    update(p) {
      const of = p.total !== undefined ? `/${p.total}` : '';
      write(`progress: ${p.done}${of} done, ${p.ok} ok, ${p.failed} failed, ${p.invalid} invalid, ${p.inFlight} in flight, ${rate(p)}/s${stateOf(p)}`);
    },
    stop() {},
  };
}

function rate(p: ProgressSnapshot): number {
  return p.elapsedMs > 0 ? Math.round((p.done * 1000) / p.elapsedMs) : 0;
}

/** What the run is waiting for, or its adaptive limit, as a tail for the progress line. */
function stateOf(p: ProgressSnapshot): string {
  if (p.waiting) return ` | waiting for the backend: ${(p.waiting.forMs / 1000).toFixed(1)}s, ${p.waiting.reason}`;
  return p.limit < p.cap ? ` | limit ${p.limit}` : '';
}
