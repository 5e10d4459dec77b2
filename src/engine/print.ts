import {describeChoices} from './choices.js';
import path from 'node:path';
import {formatDuration} from '../util/duration.js';
import {cleanDetails} from '../rpc/explain.js';
import type {ProgressSnapshot} from './run.js';
import type {ErrorCount, RunSummary} from './stats.js';
import type {Terminal} from '../util/terminal.js';
import type {NextStep} from '../errors.js';

export type {NextStep} from '../errors.js';

/** Longest error message in the summary: the whole text is in the results file and the log. */
const MAX_SUMMARY_MESSAGE = 160;

function cutMessage(message: string): string {
  return message.length <= MAX_SUMMARY_MESSAGE ? message : `${message.slice(0, MAX_SUMMARY_MESSAGE - 1)}…`;
}

/** The human summary printed at the end of a run, with the commands to run next. */
export function formatSummary(summary: RunSummary, next: readonly NextStep[] = []): string {
  const lines: string[] = [];
  const icon = summary.status === 'succeeded' ? '✔' : summary.status === 'failed' ? '✖' : '■';
  const unfinished = summary.unfinished > 0 ? `, ${summary.unfinished} unfinished (no result yet; --resume sends them)` : '';
  lines.push(`${icon} ${summary.job} ${summary.status} (run ${summary.runId}) in ${formatDuration(summary.durationMs)}`);
  const of = summary.inputRecords !== undefined && summary.inputRecords !== summary.total ? ` of ${summary.inputRecords}` : '';
  lines.push(`  records   ${summary.total}${of} read: ${summary.ok} ok, ${summary.failed} failed, ${summary.invalid} invalid${unfinished}`);
  if (summary.replies !== undefined)
    lines.push(`  replies   ${summary.replies} in the results (server-streaming: each record's replies in its response array)`);
  const statuses = Object.entries(summary.byStatus)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
  if (statuses) lines.push(`  statuses  ${statuses}`);
  Object.entries(summary.errors ?? {}).forEach(([name, messages], index) => {
    const count = name === 'INVALID' ? summary.invalid : (summary.byStatus[name] ?? 0);
    const head = `  ${index === 0 ? 'errors   ' : '         '} ${name} ${count}:`;
    const rows = messages.filter((m) => !m.other);
    // The records in no row (the remainder row of the summary): the rows always add up to the count.
    const rest = count - rows.reduce((sum, m) => sum + m.count, 0);
    const example = (m: ErrorCount) => (m.example !== undefined ? [`              e.g. ${cutMessage(m.example)}`] : []);
    if (rows.length === 1 && rest === 0) {
      lines.push(`${head} ${cutMessage(rows[0]!.message)}`, ...example(rows[0]!));
    } else {
      // Several messages: one row each, most frequent first, then what the summary leaves out.
      lines.push(head);
      const width = String(count).length;
      for (const m of rows)
        lines.push(
          `              ${String(m.count).padStart(width)} × ${cutMessage(m.message)}`,
          ...example(m).map((line) => `${' '.repeat(width + 3)}${line}`),
        );
      if (rest > 0) lines.push(`              ${String(rest).padStart(width)} × other messages (each record's own is in the results file)`);
    }
    for (const hint of new Set(messages.map((m) => m.hint).filter(Boolean))) lines.push(`              hint: ${hint}`);
  });
  lines.push(
    `  calls     ${summary.attempts} (${summary.retried} records retried), ${summary.callsPerSec.toLocaleString('en-US')} calls/s`,
  );
  const l = summary.latencyMs;
  lines.push(`  latency   p50 ${l.p50}ms  p90 ${l.p90}ms  p99 ${l.p99}ms  max ${l.max}ms`);
  if (summary.chosen) lines.push(`  ran on    ${describeChoices(summary.chosen)}`);
  lines.push(`  results   ${displayPath(summary.output)}`);
  if (summary.failures) {
    const stopped = summary.stopReason !== undefined || summary.abortReason !== undefined || summary.interruptReason !== undefined;
    lines.push(
      `  failures  ${displayPath(summary.failures)}  (${summary.failed} failed, ${summary.invalid} invalid${stopped ? ' so far' : ''})`,
    );
  }
  if (summary.stopReason)
    lines.push(`  stopped   by ${summary.stopReason} after input line ${summary.lastLine}; later records were not sent`);
  if (summary.abortReason) lines.push(`  aborted   ${summary.abortReason}; records after input line ${summary.lastLine} were not sent`);
  if (summary.interruptReason) lines.push(`  interrupted ${cleanDetails(summary.interruptReason)}; nothing failed for it`);
  if (summary.interruptHint) lines.push(`              hint: ${summary.interruptHint}`);
  if (summary.outages.pauses > 0)
    lines.push(
      `  paused    ${summary.outages.pauses} time(s), ${formatDuration(summary.outages.pausedMs)} in all, waiting for the backend (no record failed for it)`,
    );
  if (summary.concurrencyLimit)
    lines.push(
      `  limit     calls in flight min ${summary.concurrencyLimit.min}, mean ${summary.concurrencyLimit.mean}, max ${summary.concurrencyLimit.max} (adaptive)`,
    );
  if (summary.retriesThrottled > 0)
    lines.push(`  throttled ${summary.retriesThrottled} retries waited for the retry throttle: many calls were failing (retry.throttle)`);
  next.forEach((step, index) => {
    lines.push(`  ${index === 0 ? 'next     ' : '         '} ${step.command}`);
    lines.push(`              ${step.why}`);
  });
  return lines.join('\n');
}

/** A path as short as it reads: relative to the working folder when it is inside it. */
export function displayPath(file: string, cwd = process.cwd()): string {
  const relative = path.relative(cwd, file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

/** Progress on a terminal (a status line under the log lines) or in logs (a line every interval). */
export interface ProgressReporter {
  update(progress: ProgressSnapshot): void;
  /** Removes the bar (on a terminal), so that what is printed next starts on a clean line. */
  stop(): void;
}

export function createProgressReporter(terminal: Terminal, write: (line: string) => void): ProgressReporter {
  if (terminal.isTTY) {
    return {
      update: (p) => terminal.status(formatProgressLine(p, terminal.columns)),
      stop: () => terminal.clear(),
    };
  }
  return {
    update(p) {
      const of = p.total !== undefined ? `/${p.total}` : '';
      write(
        `progress: ${p.done}${of} done, ${p.ok} ok, ${p.failed} failed, ${p.invalid} invalid, ${p.inFlight} in flight, ${rate(p)}/s${p.total !== undefined ? `, ETA ${eta(p)}` : ''}${stateOf(p)}`,
      );
    },
    stop() {},
  };
}

/** Below this much elapsed time, or with nothing done yet, the rate (and so the ETA) is not known. */
const MIN_RATE_MS = 1000;
const BAR_WIDTH = 30;

/**
 * The progress bar's one line, cut to `columns - 1` characters so it never wraps:
 * `██████░░░░ 42% | 1273/3000 | 405/s | ETA 5s | failed 25 | in flight 20`.
 */
export function formatProgressLine(p: ProgressSnapshot, columns: number): string {
  const failed = p.failed + p.invalid;
  const parts =
    p.total !== undefined
      ? [`${percent(p)}%`, `${p.done}/${p.total}`, `${rate(p)}/s`, `ETA ${eta(p)}`, `failed ${failed}`, `in flight ${p.inFlight}`]
      : [`${p.done} done`, `${rate(p)}/s`, `failed ${failed}`, `in flight ${p.inFlight}`];
  const text = parts.join(' | ') + stateOf(p);
  const room = columns - 1 - text.length - 1;
  if (p.total === undefined || room < 10) return text.slice(0, Math.max(0, columns - 1));
  const width = Math.min(BAR_WIDTH, room);
  const filled = Math.round((width * percent(p)) / 100);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${text}`;
}

function percent(p: ProgressSnapshot): number {
  if (!p.total) return p.total === 0 ? 100 : 0;
  return Math.min(100, Math.floor((p.done * 100) / p.total));
}

/** Time left at the run's average rate so far; `-` while that rate is not known yet. */
function eta(p: ProgressSnapshot): string {
  if (p.total === undefined) return '-';
  if (p.done >= p.total) return '0s';
  if (p.done === 0 || p.elapsedMs < MIN_RATE_MS) return '-';
  const ms = ((p.total - p.done) * p.elapsedMs) / p.done;
  if (ms < 1000) return '<1s';
  return ms < 60_000 ? `${Math.round(ms / 1000)}s` : formatDuration(ms);
}

function rate(p: ProgressSnapshot): number {
  return p.elapsedMs > 0 ? Math.round((p.done * 1000) / p.elapsedMs) : 0;
}

/** What the run is waiting for, or its adaptive limit, as a tail for the progress line. */
function stateOf(p: ProgressSnapshot): string {
  if (p.waiting) return ` | waiting for the backend: ${(p.waiting.forMs / 1000).toFixed(1)}s, ${p.waiting.reason}`;
  return p.limit < p.cap ? ` | limit ${p.limit}` : '';
}
