import type {InputRecord} from '../io/input.js';
import {prepareRecord, type RecordPlan} from './prepare.js';
import type {RecordIdentities} from '../io/record-identity.js';
import {recordKey, type ResultField} from '../io/record-key.js';
import {hasLine} from '../io/resume.js';
import type {MethodHandle} from '../schema/method-handle.js';
import type {PlannedCall} from './pipeline.js';

/** What the plan makes of one input record. */
export type PlanItem =
  /** Ready to send. */
  | {readonly kind: 'call'; readonly record: InputRecord; readonly call: PlannedCall}
  /** Not valid for the request type: never sent; `error` says why. */
  | {readonly kind: 'invalid'; readonly record: InputRecord; readonly error: string}
  /** Finished by an earlier attempt at this run (it has a result line): not sent again. */
  | {readonly kind: 'done'; readonly record: InputRecord};

/**
 * The input turned into records to send, in input order, one at a time and only as fast as the run
 * asks (memory stays flat whatever the input size). A record is parsed and encoded here, once;
 * invalid ones are told apart before anything is sent, and on a resume the records that already
 * have a result are skipped.
 */
export class Plan {
  readonly #iterator: AsyncIterator<InputRecord>;
  readonly #method: MethodHandle;
  readonly #finished: Int32Array | undefined;
  readonly #records: RecordPlan | undefined;
  readonly #identities: {readonly keys: RecordIdentities; readonly fields: readonly ResultField[]} | undefined;
  /** Settles the read in progress with `undefined` when the run stops (a slow stdin, a module's generator). */
  #stopRead: ((value: undefined) => void) | undefined;
  #stopped = false;

  /**
   * `finished`: input lines that already have a result (ascending), on a resume. `records`: the
   * job's input format and templated metadata. `identities`: a job module's records are told apart
   * by their key instead (done on a resume, or invalid when missing or repeated); give no `finished` then.
   */
  constructor(
    source: AsyncIterable<InputRecord>,
    method: MethodHandle,
    finished?: Int32Array,
    records?: RecordPlan,
    identities?: {readonly keys: RecordIdentities; readonly fields: readonly ResultField[]},
  ) {
    this.#iterator = source[Symbol.asyncIterator]();
    this.#method = method;
    this.#finished = finished && finished.length > 0 ? finished : undefined;
    this.#records = records;
    this.#identities = identities;
  }

  /** The next item, or `undefined` at the end of the input or once stopped. */
  async next(): Promise<PlanItem | undefined> {
    if (this.#stopped) return undefined;
    // A fresh promise per read that the stop can settle, not `Promise.race` against one long-lived
    // `stopped` promise: each race adds a reaction to it, which keeps every record read (the race's
    // result) in memory until the run ends.
    const next = await new Promise<IteratorResult<InputRecord> | undefined>((resolve, reject) => {
      this.#stopRead = resolve;
      this.#iterator.next().then(resolve, reject);
    });
    this.#stopRead = undefined;
    if (!next || next.done || this.#stopped) return undefined;
    const record = next.value;
    if (this.#finished && hasLine(this.#finished, record.line)) return {kind: 'done', record};
    const verdict = this.#identities?.keys.classify(recordKey(record, this.#identities.fields));
    if (verdict?.kind === 'done') return {kind: 'done', record};
    const prepared = prepareRecord(record, this.#method, this.#records);
    if (typeof prepared === 'string') return {kind: 'invalid', record, error: prepared};
    if (verdict?.kind === 'invalid') return {kind: 'invalid', record, error: verdict.error};
    return {kind: 'call', record, call: {line: record.line, ...prepared}};
  }

  /** Ends the plan: a read in progress settles with `undefined`, and so does every later one. */
  stop(): void {
    this.#stopped = true;
    this.#stopRead?.(undefined);
  }

  /** Releases the input. Not awaited by callers: a generator blocked on input cannot return until its read resolves. */
  close(): void {
    this.stop();
    this.#iterator.return?.(undefined).catch(() => undefined);
  }
}
