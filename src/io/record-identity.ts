import type {RecordKey, ResultField} from './record-key.js';
import type {InputSpec} from './input.js';

/**
 * A job module's records told apart by their key, not by their position: `requests()` may yield
 * them in another order after a crash (a query without ORDER BY, a table that changed), so a
 * module run is resumed by the request fields its job names in `resultFields`. A JSONL input is
 * resumed by line (its file is checked unchanged), and never comes here.
 */

/** What a module record is, by its key, on this attempt at a run. */
export type IdentityVerdict =
  /** Not seen before: send it. */
  | {readonly kind: 'new'}
  /** An earlier attempt at this run has its result line: not sent again. */
  | {readonly kind: 'done'}
  /** Cannot be told apart from another record (its key is missing, or another record has it): never sent. */
  | {readonly kind: 'invalid'; readonly error: string};

/** Between the values of a key: JSON never holds a raw NUL, and a missing value is the empty string. */
const SEPARATOR = '\u0000';

/**
 * The identity of a key: the JSON of each `resultFields` value, in order, with '' for a field the
 * record lacks (or has as null). A key read back from a results file gives the same string as the
 * key written, since JSON.stringify(JSON.parse(JSON.stringify(v))) is JSON.stringify(v).
 */
export function identityOf(
  key: Readonly<Record<string, unknown>> | undefined,
  fields: readonly ResultField[],
): {identity: string; missing: string[]} {
  const parts: string[] = [];
  const missing: string[] = [];
  for (const {name} of fields) {
    const value = key && Object.hasOwn(key, name) ? key[name] : undefined;
    if (value === undefined || value === null) {
      missing.push(name);
      parts.push('');
    } else {
      parts.push(JSON.stringify(value));
    }
  }
  return {identity: parts.join(SEPARATOR), missing};
}

/**
 * The keys of a module run: those the results file holds from earlier attempts (how many lines
 * each), and those seen on this attempt. Every key is held in memory for the run (a Map: about 60
 * bytes a key of 13 characters, measured over a million).
 */
export class RecordIdentities {
  readonly #fields: readonly ResultField[];
  /**
   * Per identity: above 0, result lines of earlier attempts not matched yet; 0, seen (all matched);
   * below 0, first seen on this attempt at record `-value`.
   */
  readonly #keys: Map<string, number>;

  /** `prior`: the identities of the results file's lines (see `readPriorResults`), on a resume. */
  constructor(fields: readonly ResultField[], prior?: Map<string, number>) {
    this.#fields = fields;
    this.#keys = prior ?? new Map();
  }

  /** Whether `record` (its `line`: its place in this attempt's `requests()`) is new, done, or cannot be told apart. */
  classify(key: RecordKey): IdentityVerdict {
    const {identity, missing} = identityOf(key, this.#fields);
    const seen = this.#keys.get(identity);
    if (seen !== undefined && seen > 0) {
      this.#keys.set(identity, seen - 1);
      return {kind: 'done'};
    }
    if (seen === undefined) this.#keys.set(identity, -key.line);
    const names = this.#fields.map((f) => f.name).join(', ');
    if (missing.length > 0) {
      return {
        kind: 'invalid',
        error: `no ${missing.map((m) => `"${m}"`).join(', ')} in the request: resultFields [${names}] identify a job module's records (--resume finds them by it), so each record needs ${missing.length > 1 ? 'them' : 'it'}; not sent`,
      };
    }
    if (seen !== undefined) {
      const first = seen < 0 ? `record ${-seen}` : 'a record of an earlier attempt at this run';
      return {
        kind: 'invalid',
        error: `same key as ${first} (${names}: ${identity.split(SEPARATOR).join(', ')}): resultFields must name fields unique to each record of a job module (--resume finds them by it); not sent`,
      };
    }
    return {kind: 'new'};
  }
}

/** Whether a job's records come from its module's `requests()` (not from a JSONL file or standard input). */
export function readsModuleRequests(spec: Pick<InputSpec, 'requests'>): boolean {
  return spec.requests !== undefined;
}

/** What the summary of a module run without a key says instead of a `--resume` command. */
export const MODULE_WITHOUT_KEY = {
  why: "its records come from the job module's requests(), and the job has no resultFields to tell them apart",
  fix: "add resultFields naming a field unique to each record (resultFields: ['id']), then run again: every record is sent again",
} as const;

/**
 * Why a run of this job that read its module's `requests()` cannot be resumed (no key to tell its
 * records apart: a position is no identity when the order may change), or undefined when it can.
 * `input`: the input file the run recorded; a module run given `--input FILE` read that file and
 * is resumed by line.
 */
export function moduleResumeProblem(
  spec: Pick<InputSpec, 'requests' | 'file'> & {readonly resultFields: readonly string[]},
  runId: string,
  input: string | undefined,
): string | undefined {
  if (!readsModuleRequests(spec) || input !== undefined || spec.resultFields.length > 0) return undefined;
  return (
    `run ${runId} read the records of the job module ${spec.file} (requests()), which has no key to tell them apart: ` +
    'a resume by position would skip the wrong records if requests() yields them in another order (a query without ORDER BY, a table that changed). ' +
    "Add resultFields naming a field unique to each record (resultFields: ['id']) for the next runs; this run's records without a result cannot be found again: start a new run"
  );
}
