import pino from 'pino';
import {UsageError} from '../errors.js';

export type Logger = pino.Logger;

/** `json`: one JSON object per line; `pretty`: one readable line per event (see `formatLogLine`). */
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export interface LoggerOptions {
  /** @default `GRPC_BATCH_LOG`, else 'info' */
  readonly level?: string;
  /** @default 'json' */
  readonly format?: LogFormat;
  /** Where each line goes (a line ends in a newline). @default synchronous writes to stderr */
  readonly write?: (line: string) => void;
  /** Fields left out of pretty lines (a command that prints them once elsewhere). @default [] */
  readonly hide?: readonly string[];
}

/**
 * The logger: lines on stderr (stdout is kept for `--json` summaries), JSON or pretty.
 * `GRPC_BATCH_LOG` sets the level; an unknown level is a usage error (exit 2), not a crash.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = checkLevel(options.level ?? process.env['GRPC_BATCH_LOG'] ?? 'info', options.level === undefined);
  const base = {level, base: undefined};
  const format = options.format ?? 'json';
  if (format === 'pretty') {
    const write = options.write ?? ((line: string) => void process.stderr.write(line));
    const hide = new Set(options.hide ?? []);
    return pino(base, {write: (json: string) => write(formatLogLine(json, hide))});
  }
  if (options.write) {
    const write = options.write;
    return pino(base, {write: (json: string) => write(json)});
  }
  return pino(base, pino.destination({dest: 2, sync: true}));
}

/** The log format a command uses unless told: pretty for people at a terminal, JSON for machines. */
export function defaultLogFormat(stream: {isTTY?: boolean} = process.stderr): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}

function checkLevel(level: string, fromEnv: boolean): string {
  const normal = level.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(normal)) return normal;
  throw new UsageError(`${fromEnv ? 'GRPC_BATCH_LOG' : 'log level'}: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
}

const LEVELS: Record<number, string> = {10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL'};
/** Fields shown in the line's prefix or dropped, not repeated as key=value. */
const SHOWN = new Set(['level', 'time', 'msg', 'job', 'runId', 'event', 'component']);

/**
 * The pretty logger: the same events as the JSON logger, one readable line each on stderr:
 * `21:45:00.123 INFO  nightly 20261125T214500Z-3f9a1c run:started  schedule run started trigger=schedule`.
 */
export function createPrettyLogger(options: Omit<LoggerOptions, 'format'> = {}): Logger {
  return createLogger({...options, format: 'pretty'});
}

/** Formats one pino JSON line for people; `hide` leaves fields out (job, runId included). */
export function formatLogLine(json: string, hide: ReadonlySet<string> = new Set()): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry['time'] === 'number' ? new Date(entry['time']).toISOString().slice(11, 23) : '';
  const level = LEVELS[entry['level'] as number] ?? String(entry['level']);
  const who = ['job', 'runId']
    .filter((k) => !hide.has(k) && entry[k] !== undefined)
    .map((k) => String(entry[k]))
    .join(' ');
  const extra = Object.entries(entry)
    .filter(([key, value]) => !SHOWN.has(key) && !hide.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${[time, level, who, entry['event'] ? String(entry['event']).padEnd(14) : '', entry['msg'] ?? '', extra].filter((s) => s !== '').join(' ')}\n`;
}
