import type * as grpc from '@grpc/grpc-js';
import {parseDuration, DURATION_HINT} from '../util/duration.js';
import {MessageError} from '../codec/message.js';
import {buildMetadata, checkMetadataEntry} from '../rpc/metadata.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {didYouMean} from '../util/suggest.js';
import type {InputRecord} from '../io/input.js';
import type {InputFormat} from '../config/spec.js';
import {
  fixedMetadata,
  renderTemplates,
  templatesOf,
  withFieldNames,
  type MetadataTemplate,
  type TemplatedSpec,
} from '../config/metadata-template.js';

/** What a job says about each record's request, metadata and deadline; built once per run by `recordPlan`. */
export interface RecordPlan {
  /** `message`: each record is the request; `envelope`: `{"request", "metadata", "deadline"}`. @default 'message' */
  readonly inputFormat: InputFormat;
  /** The job's metadata without templates. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The job's templated metadata values. */
  readonly templates: readonly MetadataTemplate[];
}

/** A record ready to send: the encoded request, and what it sets for its own call. */
export interface PreparedRecord {
  readonly request: Buffer;
  /** The call's whole metadata, when the record makes it differ from the job's. */
  readonly metadata?: grpc.Metadata;
  /** The record's own per-attempt deadline (envelope `deadline`), in ms. */
  readonly deadlineMs?: number;
}

const ENVELOPE_KEYS = ['request', 'metadata', 'deadline'];

/**
 * The plan of a job's records; with `method`, each placeholder's fields are looked up in the request
 * type, so a record may spell them by their proto or their JSON name.
 */
export function recordPlan(
  spec: TemplatedSpec & {readonly inputFormat?: InputFormat},
  method?: Pick<MethodHandle, 'requestFieldPath'>,
): RecordPlan {
  const templates = templatesOf(spec).map((template) => withFieldNames(template, method?.requestFieldPath));
  return {inputFormat: spec.inputFormat ?? 'message', metadata: fixedMetadata(spec), templates};
}

const MESSAGE_PLAN: RecordPlan = {inputFormat: 'message', metadata: {}, templates: []};

/** Parses and encodes one record; returns it ready to send, or why the record is invalid. */
export function prepareRecord(record: InputRecord, method: MethodHandle, plan: RecordPlan = MESSAGE_PLAN): PreparedRecord | string {
  if (record.error) return record.error;
  let value = record.value;
  if (value === undefined) {
    try {
      value = JSON.parse(record.text);
    } catch (error) {
      return `expected a JSON object, got text that is not JSON: ${(error as Error).message}`;
    }
  }
  let own: Record<string, string> | undefined;
  let deadlineMs: number | undefined;
  if (plan.inputFormat === 'envelope') {
    const envelope = readEnvelope(value);
    if (typeof envelope === 'string') return envelope;
    ({request: value, metadata: own, deadlineMs} = envelope);
  }
  let request: Buffer;
  try {
    request = method.encodeRequest(value);
  } catch (error) {
    if (error instanceof MessageError) {
      if (plan.inputFormat !== 'envelope') return error.message;
      return error.path ? `request.${error.message}` : `request: ${error.message}`;
    }
    return `does not encode as ${method.requestType}: ${(error as Error).message}`;
  }
  let rendered: Record<string, string> | undefined;
  if (plan.templates.length > 0) {
    const result = renderTemplates(plan.templates, value);
    if (typeof result === 'string') return result;
    rendered = result;
  }
  const metadata = rendered || own ? buildMetadata({...plan.metadata, ...rendered, ...own}) : undefined;
  return {request, ...(metadata ? {metadata} : {}), ...(deadlineMs !== undefined ? {deadlineMs} : {})};
}

interface Envelope {
  request: unknown;
  metadata: Record<string, string> | undefined;
  deadlineMs: number | undefined;
}

/** `{"request": {...}, "metadata": {...}, "deadline": "2s"}`, checked as strictly as a job file. */
function readEnvelope(value: unknown): Envelope | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `expected an envelope {"request": {...}, "metadata": {...}, "deadline": "2s"} (inputFormat: envelope), got ${value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value}`;
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (!ENVELOPE_KEYS.includes(key))
      return `${key}: unknown envelope key${didYouMean(key, ENVELOPE_KEYS)}; keys: request (required), metadata, deadline`;
  }
  if (!('request' in object)) return 'request: missing: an envelope holds the request message under "request" (inputFormat: envelope)';
  let metadata: Record<string, string> | undefined;
  if (object['metadata'] !== undefined) {
    const raw = object['metadata'];
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      return `metadata: expected a map of header names to values, got ${Array.isArray(raw) ? 'a list' : raw === null ? 'null' : typeof raw}`;
    metadata = {};
    for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
      if (!['string', 'number', 'boolean'].includes(typeof v))
        return `metadata.${key}: expected a string, number or true/false, got ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v}`;
      const problem = checkMetadataEntry(key, String(v));
      if (problem) return `metadata.${key}: ${problem}`;
      metadata[key.toLowerCase()] = String(v);
    }
  }
  let deadlineMs: number | undefined;
  if (object['deadline'] !== undefined) {
    deadlineMs = parseDuration(object['deadline'] as string | number);
    if (deadlineMs === undefined) return `deadline: expected ${DURATION_HINT}; got ${JSON.stringify(object['deadline'])}`;
  }
  return {request: object['request'], metadata, deadlineMs};
}
