import path from 'node:path';
import type {InputRecord} from './input.js';

/**
 * What the whole input probably is, told from an invalid record: a JSON array, pretty-printed JSON
 * or UTF-16 text each make every line invalid, and each has a one-line fix. One hint is given per input.
 */
export class InputShapeHints {
  #given = false;

  /** The hint this invalid record shows, if no hint was given yet (one is enough: a JSON array is often pretty-printed too). */
  observe(record: InputRecord, label: string): string | undefined {
    if (this.#given) return undefined;
    const kind = shapeOf(record);
    if (!kind) return undefined;
    this.#given = true;
    return hintText(kind, label);
  }
}

type Shape = 'utf16' | 'array' | 'pretty';

function shapeOf(record: InputRecord): Shape | undefined {
  const raw = record.raw;
  if (raw && raw.length >= 2 && ((raw[0] === 0xff && raw[1] === 0xfe) || (raw[0] === 0xfe && raw[1] === 0xff))) return 'utf16';
  const text = record.text;
  if (text.includes('\u0000')) return 'utf16';
  const trimmed = text.trim();
  if (record.line === 1 && trimmed.startsWith('[')) return 'array';
  if (/^[{}\]]\s*,?$/.test(trimmed) || /^"[^"]*"\s*:/.test(trimmed) || (/^\{.*\},$/.test(trimmed))) return 'pretty';
  return undefined;
}

function hintText(kind: Shape, label: string): string {
  const jsonl = `${path.basename(label).replace(/\.[^.]*$/, '')}.jsonl`;
  const quoted = /^[\w@%+=:,./-]+$/.test(label) ? label : `'${label.replace(/'/g, `'\\''`)}'`;
  switch (kind) {
    case 'utf16':
      return `hint: ${label} looks like UTF-16 text; grpc-batch reads UTF-8: iconv -f UTF-16 -t UTF-8 ${quoted} > ${jsonl.replace(/\.jsonl$/, '-utf8.jsonl')}`;
    case 'array':
      return `hint: ${label} looks like a JSON array; the input is JSONL, one request per line: jq -c '.[]' ${quoted} > ${jsonl.replace(/\.jsonl$/, '-lines.jsonl')}`;
    case 'pretty':
      return `hint: ${label} looks like pretty-printed JSON; the input is JSONL, one request per line: jq -c . ${quoted} > ${jsonl.replace(/\.jsonl$/, '-lines.jsonl')}`;
  }
}
