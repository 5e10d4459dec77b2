import {checkMetadataEntry} from '../rpc/metadata.js';

/**
 * Metadata values templated from each record: `x-request-id: "req-{{user_id}}"`,
 * `x-tenant: "{{order.tenant.id}}"`. A path names fields of the record (for an envelope, of its
 * `request`), dot by dot, each by its proto name or its JSON name, as proto3 JSON input may spell
 * it; a missing field, or one that is not a string, number or true/false, makes the record
 * invalid, with its line number, and it is not sent.
 *
 * Placeholders are recognised in the job's text, before `${VAR}` expansion (`loadJob`): what a
 * variable expands to is literal, so a secret holding `{{` is sent as it is.
 */

type Part =
  | string
  | {
      readonly path: readonly string[];
      readonly text: string;
      /** The names each step may be spelled with in a record (proto and JSON name), from the request type. */
      readonly names?: readonly (readonly string[])[];
    };

export interface MetadataTemplate {
  readonly key: string;
  readonly parts: readonly Part[];
}

/** The part of a job that says which metadata values are templates. */
export interface TemplatedSpec {
  readonly metadata: Readonly<Record<string, string>>;
  /** The templates as recognised in the job's text; absent for a spec made in code (then: every value with `{{`). */
  readonly metadataTemplates?: readonly MetadataTemplate[] | undefined;
}

/** A job's templated metadata values. */
export function templatesOf(spec: TemplatedSpec): MetadataTemplate[] {
  if (spec.metadataTemplates) return [...spec.metadataTemplates];
  const templates: MetadataTemplate[] = [];
  for (const [key, value] of Object.entries(spec.metadata)) {
    const template = isTemplate(value) ? parseTemplate(key, value) : undefined;
    if (typeof template === 'object') templates.push(template);
  }
  return templates;
}

/** A job's metadata values that are the same for every call (not templates). */
export function fixedMetadata(spec: TemplatedSpec): Record<string, string> {
  const templated = new Set(templatesOf(spec).map((t) => t.key));
  return Object.fromEntries(Object.entries(spec.metadata).filter(([key]) => !templated.has(key)));
}

/**
 * The template with each placeholder's fields looked up in the request type (`resolve`: a path to
 * the names each step may be spelled with, or why it cannot be); a path it cannot resolve (a map's
 * key, a Struct's field) is read as written.
 */
export function withFieldNames(
  template: MetadataTemplate,
  resolve: ((path: string) => (readonly string[])[] | string) | undefined,
): MetadataTemplate {
  if (!resolve) return template;
  return {
    key: template.key,
    parts: template.parts.map((part) => {
      if (typeof part === 'string') return part;
      const names = resolve(part.text);
      return typeof names === 'string' ? part : {...part, names};
    }),
  };
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
  // A "{{" or "}}" outside a placeholder, named by where it is, not by the value (it may hold a secret).
  const stray = (from: number, to: number) => {
    const found = /\{\{|\}\}/.exec(value.slice(from, to));
    return found
      ? `has a "{{" or "}}" that is not part of a {{field}} placeholder (the "${found[0]}" at character ${from + found.index + 1}); a literal "{{" can come from a \${VAR}, whose value is never read as a placeholder`
      : undefined;
  };
  for (const match of value.matchAll(PLACEHOLDER)) {
    const text = match[1]!;
    if (!PATH.test(text))
      return `expected {{field}} or {{field.nested}} (letters, digits and _ separated by dots), got "{{${text.slice(0, 40)}${text.length > 40 ? '…' : ''}}}"`;
    const problem = stray(last, match.index);
    if (problem) return problem;
    if (match.index > last) parts.push(value.slice(last, match.index));
    parts.push({path: text.split('.'), text});
    last = match.index + match[0].length;
  }
  const problem = stray(last, value.length);
  if (problem) return problem;
  if (last < value.length) parts.push(value.slice(last));
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
      for (const [index, segment] of part.path.entries()) {
        if (current === null || typeof current !== 'object' || Array.isArray(current)) {
          current = undefined;
          break;
        }
        const object = current as Record<string, unknown>;
        const name = (part.names?.[index] ?? [segment]).find((n) => Object.hasOwn(object, n));
        current = name === undefined ? undefined : object[name];
        if (current === undefined) break;
      }
      if (current === undefined || current === null)
        return `metadata ${template.key}: the record has no field ${part.text} for {{${part.text}}}`;
      if (typeof current === 'object')
        return `metadata ${template.key}: {{${part.text}}} is ${Array.isArray(current) ? 'a list' : 'an object'} in the record; expected a string, number or true/false`;
      value += String(current);
    }
    const problem = checkMetadataEntry(template.key, value);
    if (problem) return `metadata ${template.key}: {{…}} gave a value that cannot be sent: ${problem}`;
    out[template.key] = value;
  }
  return out;
}
