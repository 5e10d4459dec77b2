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
  if (looksUtf16(record.raw ?? Buffer.from(record.text))) return 'utf16';
  const text = record.text;
  const trimmed = text.trim();
  if (record.line === 1 && trimmed.startsWith('[')) return 'array';
  if (/^[{}\]]\s*,?$/.test(trimmed) || /^"[^"]*"\s*:/.test(trimmed) || /^\{.*\},$/.test(trimmed)) return 'pretty';
  return undefined;
}

/**
 * UTF-16 text of JSON (mostly ASCII) has a zero byte in every other place, after a byte-order mark
 * or not. Bytes FF FE alone are not enough: a UTF-8 line can hold them (it is then invalid UTF-8,
 * not UTF-16), and so can compressed data.
 */
export function looksUtf16(bytes: Buffer): boolean {
  const bom = bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff));
  const body = bom ? bytes.subarray(2) : bytes;
  if (body.length < 2) return false;
  const zeros = [0, 0];
  for (let i = 0; i < body.length; i++) if (body[i] === 0) zeros[i % 2]!++;
  const pairs = Math.floor(body.length / 2);
  // One parity nearly all zeros (ASCII in UTF-16), the other nearly none.
  return zeros.some((z, parity) => z >= 0.6 * pairs && zeros[1 - parity]! <= 0.1 * pairs);
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
