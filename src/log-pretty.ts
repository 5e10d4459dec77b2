import type {Logger, LoggerOptions} from './log.js';
import {createLogger} from './log.js';

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
  const who = ['job', 'runId'].filter((k) => !hide.has(k) && entry[k] !== undefined).map((k) => String(entry[k])).join(' ');
  const extra = Object.entries(entry)
    .filter(([key, value]) => !SHOWN.has(key) && !hide.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${[time, level, who, entry['event'] ? String(entry['event']).padEnd(14) : '', entry['msg'] ?? '', extra].filter((s) => s !== '').join(' ')}\n`;
}
