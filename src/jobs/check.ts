import type {Readable} from 'node:stream';
import type {Issue} from '../errors.js';
import {readJsonl, readRequests} from './input.js';
import type {LoadedJob} from './load.js';
import {prepareRecord} from './prepare.js';

export interface InputCheck {
  readonly total: number;
  readonly invalid: number;
  /** One issue per invalid record, up to `maxIssues`. */
  readonly issues: readonly Issue[];
}

/** Checks every input record against the request type; sends nothing. */
export async function checkInput(job: LoadedJob, options: {stdin?: Readable; maxIssues?: number} = {}): Promise<InputCheck> {
  const {spec, method} = job;
  const label = spec.input === '-' ? '<stdin>' : spec.input ?? `${spec.file} requests()`;
  const source = spec.requests ? readRequests(spec.requests) : readJsonl(spec.input === '-' ? options.stdin ?? process.stdin : spec.input!);
  const maxIssues = options.maxIssues ?? 100;
  const issues: Issue[] = [];
  let total = 0;
  let invalid = 0;
  for await (const record of source) {
    total++;
    const prepared = prepareRecord(record, method);
    if (typeof prepared === 'string') {
      invalid++;
      if (issues.length < maxIssues) issues.push({file: `${label}:${record.line}`, path: '', message: prepared});
    }
  }
  return {total, invalid, issues};
}
