import type {Readable} from 'node:stream';
import type {Issue} from '../errors.js';
import {inputLabel, openInput, type JsonlOptions} from '../io/input.js';
import type {LoadedJob} from '../config/load.js';
import {InputShapeHints} from '../io/input-hints.js';
import {prepareRecord, recordPlan} from './prepare.js';

export interface InputCheck {
  /** Records read (blank lines not counted). */
  readonly total: number;
  readonly invalid: number;
  /** One issue per invalid record, up to `maxIssues`; `file` is `input:line`. */
  readonly issues: readonly Issue[];
  /** Problems that do not make the input invalid, such as an input with no records. */
  readonly warnings: readonly Issue[];
  /** What the whole input seems to be when its lines are invalid (a JSON array, UTF-16), with the command that fixes it. */
  readonly hints: readonly Issue[];
  /** The input as named in messages: relative to the working folder, `<stdin>`, or the module's `requests()`. */
  readonly label: string;
}

export interface CheckInputOptions extends JsonlOptions {
  /** Stream read when the input is '-'. @default process.stdin */
  readonly stdin?: Readable;
  /** Invalid records listed one by one; the rest are only counted. @default 100 */
  readonly maxIssues?: number;
}

/** Checks every input record against the request type; sends nothing. */
export async function checkInput(job: LoadedJob, options: CheckInputOptions = {}): Promise<InputCheck> {
  const {spec, method} = job;
  const label = inputLabel(spec);
  const source = openInput(spec, options);
  const maxIssues = options.maxIssues ?? 100;
  const issues: Issue[] = [];
  const hints: Issue[] = [];
  const shapes = new InputShapeHints();
  let total = 0;
  let invalid = 0;
  const plan = recordPlan(spec, method);
  for await (const record of source) {
    total++;
    const prepared = prepareRecord(record, method, plan);
    if (typeof prepared === 'string') {
      invalid++;
      if (issues.length < maxIssues) issues.push({file: `${label}:${record.line}`, path: '', message: prepared});
      const hint = shapes.observe(record, label);
      if (hint) hints.push({file: label, path: '', message: hint, severity: 'warning'});
    }
  }
  const warnings: Issue[] =
    total === 0
      ? [
          {
            file: label,
            path: '',
            message: 'the input has no records (empty or only blank lines); a run would send nothing',
            severity: 'warning',
          },
        ]
      : [];
  return {total, invalid, issues, warnings, hints, label};
}
