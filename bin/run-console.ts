import {parseDuration} from '../src/util/duration.js';
import {createProgressReporter, formatSummary, type NextStep, type ProgressReporter} from '../src/engine/print.js';
import type {RunSummary} from '../src/engine/stats.js';
import {createLogger, defaultLogFormat, type LogFormat, type Logger} from '../src/util/log.js';
import {stderrTerminal, type Terminal} from '../src/util/terminal.js';

/** What a command that runs a job shows on the terminal: log lines, the progress bar, the summary. */
export interface RunConsole {
  readonly log: Logger;
  readonly terminal: Terminal;
  /** Undefined with `--no-progress`. */
  readonly progress: ProgressReporter | undefined;
  /** How often progress is shown, in ms. */
  readonly progressIntervalMs: number;
  /** Clears the bar, then prints the summary on stdout (as one JSON object with `--json`). */
  printSummary(summary: RunSummary, next: readonly NextStep[]): void;
  /** Clears the bar and gives Node's warnings back to Node. Idempotent. */
  close(): void;
}

export interface RunConsoleFlags {
  readonly logFormat?: LogFormat;
  readonly progress?: boolean;
  readonly progressInterval?: string | number;
  readonly json?: boolean;
  /** Log level instead of `GRPC_BATCH_LOG`. */
  readonly level?: string;
}

/**
 * One writer for stderr: log lines (pretty on a terminal unless `--log-format json`) go above the
 * progress bar, never onto it; Node's own warnings become log lines too; the bar is cleared before
 * the summary is printed.
 */
export function openRunConsole(flags: RunConsoleFlags): RunConsole {
  const terminal = stderrTerminal();
  const format = flags.logFormat ?? defaultLogFormat(terminal.stream);
  const log = createLogger({
    format,
    write: (line) => terminal.write(line),
    // On a terminal a run's lines are about the one run the summary names.
    ...(format === 'pretty' ? {hide: ['job', 'runId', 'line', 'reason', 'hint']} : {}),
    ...(flags.level !== undefined ? {level: flags.level} : {}),
  });
  const nodeWarnings = process.listeners('warning');
  const onWarning = (warning: Error) => log.warn({event: 'node:warning', name: warning.name}, warning.message);
  process.removeAllListeners('warning');
  process.on('warning', onWarning);
  const progress =
    flags.progress === false ? undefined : createProgressReporter(terminal, (line) => log.info({event: 'run:progress'}, line));
  const progressIntervalMs = flags.progressInterval !== undefined ? parseDuration(flags.progressInterval)! : terminal.isTTY ? 200 : 5000;
  let closed = false;
  const close = () => {
    progress?.stop();
    if (closed) return;
    closed = true;
    process.off('warning', onWarning);
    for (const listener of nodeWarnings) process.on('warning', listener as (warning: Error) => void);
  };
  return {
    log,
    terminal,
    progress,
    progressIntervalMs,
    printSummary(summary, next) {
      progress?.stop();
      if (flags.json) process.stdout.write(`${JSON.stringify({...summary, next: next.map((s) => s.command)})}\n`);
      else process.stdout.write(`${formatSummary(summary, next)}\n`);
    },
    close,
  };
}
