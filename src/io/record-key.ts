import type {Issue} from '../errors.js';
import type {MethodHandle} from '../schema/method-handle.js';
import type {InputRecord} from './input.js';

/**
 * A record's key in the results file: `{"line": 1207, "user_id": "u7"}`. `line` is the record's line
 * in the original input, kept when the failures file is run again (its `.lines` file maps each of
 * its records back); the other fields are the request fields the job names in `resultFields`.
 */
export type RecordKey = {readonly line: number} & Readonly<Record<string, unknown>>;

/** A `resultFields` entry, resolved: the name written in results and the keys a record may spell each step with. */
export interface ResultField {
  readonly name: string;
  readonly steps: readonly (readonly string[])[];
}

/** Checks `resultFields` against the request type; returns the resolved fields and any issues. */
export function resolveResultFields(
  names: readonly string[],
  method: MethodHandle,
  file: string,
): {fields: ResultField[]; issues: Issue[]} {
  const fields: ResultField[] = [];
  const issues: Issue[] = [];
  names.forEach((name, index) => {
    const steps = method.requestFieldPath?.(name) ?? name.split('.').map((part) => [part]);
    if (typeof steps === 'string') issues.push({file, path: `resultFields[${index}]`, message: steps});
    else if (name === 'line')
      issues.push({file, path: `resultFields[${index}]`, message: '"line" is the key\'s own field (the input line); name a request field'});
    else fields.push({name, steps});
  });
  return {fields, issues};
}

/**
 * The key of a record: its original line, and the chosen request fields that it has (of an
 * envelope, `inputFormat: envelope`, the fields of its `request`).
 */
export function recordKey(record: InputRecord, fields: readonly ResultField[], inputFormat: 'message' | 'envelope' = 'message'): RecordKey {
  const line = record.origin ?? record.line;
  if (fields.length === 0) return {line};
  let value = record.value;
  if (value === undefined && !record.error) {
    try {
      value = JSON.parse(record.text);
    } catch {
      value = undefined;
    }
  }
  if (inputFormat === 'envelope')
    value =
      value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)['request'] : undefined;
  const key: Record<string, unknown> = {line};
  for (const field of fields) {
    const found = pick(value, field.steps);
    if (found !== undefined) key[field.name] = found;
  }
  return key as RecordKey;
}

function pick(value: unknown, steps: readonly (readonly string[])[]): unknown {
  let current = value;
  for (const names of steps) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    const object = current as Record<string, unknown>;
    const name = names.find((n) => Object.hasOwn(object, n));
    if (name === undefined) return undefined;
    current = object[name];
  }
  return current;
}
