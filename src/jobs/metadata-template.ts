import {checkMetadataEntry} from '../rpc/metadata.js';

/**
 * Metadata values templated from each record: `x-request-id: "req-{{user_id}}"`,
 * `x-tenant: "{{order.tenant.id}}"`. A path names fields of the record as written in the input
 * (for an envelope, of its `request`), dot by dot; a missing field, or one that is not a string,
 * number or true/false, makes the record invalid, with its line number, and it is not sent.
 */

type Part = string | {readonly path: readonly string[]; readonly text: string};

export interface MetadataTemplate {
  readonly key: string;
  readonly parts: readonly Part[];
}

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export function isTemplate(value: string): boolean {
  return value.includes('{{');
}

/** Parses one templated value; returns why it is malformed instead. */
export function parseTemplate(key: string, value: string): MetadataTemplate | string {
  const parts: Part[] = [];
  let last = 0;
  for (const match of value.matchAll(PLACEHOLDER)) {
    const text = match[1]!;
    if (!PATH.test(text)) return `expected {{field}} or {{field.nested}} (letters, digits and _ separated by dots), got "{{${text}}}"`;
    if (match.index > last) parts.push(value.slice(last, match.index));
    parts.push({path: text.split('.'), text});
    last = match.index + match[0].length;
  }
  const rest = value.slice(last);
  if (rest.includes('{{') || rest.includes('}}') || parts.some((p) => typeof p === 'string' && (p.includes('{{') || p.includes('}}')))) {
    return `has a "{{" or "}}" that is not part of a {{field}} placeholder: "${value}"`;
  }
  if (rest) parts.push(rest);
  return {key, parts};
}

/** The values for one record, or why the record cannot be sent. */
export function renderTemplates(templates: readonly MetadataTemplate[], record: unknown): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const template of templates) {
    let value = '';
    for (const part of template.parts) {
      if (typeof part === 'string') {
        value += part;
        continue;
      }
      let current: unknown = record;
      for (const segment of part.path) {
        current = current !== null && typeof current === 'object' && !Array.isArray(current) && Object.prototype.hasOwnProperty.call(current, segment) ? (current as Record<string, unknown>)[segment] : undefined;
        if (current === undefined) break;
      }
      if (current === undefined || current === null) return `metadata ${template.key}: the record has no field ${part.text} for {{${part.text}}}`;
      if (typeof current === 'object') return `metadata ${template.key}: {{${part.text}}} is ${Array.isArray(current) ? 'a list' : 'an object'} in the record; expected a string, number or true/false`;
      value += String(current);
    }
    const problem = checkMetadataEntry(template.key, value);
    if (problem) return `metadata ${template.key}: {{…}} gave a value that cannot be sent: ${problem}`;
    out[template.key] = value;
  }
  return out;
}
