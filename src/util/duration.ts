/** Durations: "250ms", "10s", "1m", "1h" (or a bare number of milliseconds) at the edges, ms inside. */

const UNIT_MS: Record<string, number> = {h: 3_600_000, m: 60_000, s: 1000, ms: 1};
const UNITS = Object.keys(UNIT_MS);
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

export const DURATION_HINT = 'a duration like 500ms, 10s, 1m30s or 1h, or a number of milliseconds';

/**
 * Parses a duration into milliseconds, or returns undefined when it is not one: `500ms`, `10s`,
 * `1m30s`, `1h15m` (units from largest to smallest, each once), or a number of milliseconds.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  let total = 0;
  let lastUnit = -1;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const match = PART.exec(text);
    if (!match || match.index !== start) return undefined;
    const unit = UNITS.indexOf(match[2]!);
    if (unit <= lastUnit) return undefined;
    lastUnit = unit;
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  return Math.round(total);
}

/** Formats milliseconds for people: 850ms, 12.3s, 4m 05s, 1h 02m. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}m ${String(s).padStart(2, '0')}s`;
}
