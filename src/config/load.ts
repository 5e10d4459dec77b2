import {readFile} from 'node:fs/promises';
import path from 'node:path';
import {pathToFileURL} from 'node:url';
import {LineCounter, parseDocument} from 'yaml';
import {ValidationError, type Issue} from '../errors.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {loadJobSchema, loadSchema} from './load-schema.js';
import {createMethodHandle} from '../schema/method-handle.js';
import {SchemaError} from '../schema/schema.js';
import {isTemplate, parseTemplate, templatesOf, type MetadataTemplate, type TemplatedSpec} from './metadata-template.js';
import {resolveResultFields} from '../io/record-key.js';
import {checkMethodKind} from '../codec/method-kind.js';
import {checkH2Method, type TransportName} from '../rpc/h2-transport.js';
import type {InputFormat, JobSpec} from './spec.js';
import {validateJob} from './validate.js';
import {flagAttribute, flaggedKeys} from './job-keys.js';

/** Values from flags that override the job file; paths are relative to the working folder. */
export interface JobOverrides {
  readonly input?: string;
  readonly target?: string;
  readonly concurrency?: number;
  readonly rps?: number;
  readonly deadline?: string | number;
  readonly maxAttempts?: number;
  readonly output?: string;
  readonly failures?: string;
  /** Longest input line (bytes, or a size like 16MiB). */
  readonly maxLineBytes?: string | number;
  /** Overrides `maxFailures`. */
  readonly maxFailures?: number;
  /** Overrides `maxInvalid`. */
  readonly maxInvalid?: number;
  /** Folder of the default results and failures files (when the job sets no `output`/`failures`). @default ./out */
  readonly outDir?: string;
  readonly maxOutage?: string | number;
  readonly adaptive?: boolean;
  readonly rampUp?: string | number;
  readonly workers?: number | 'auto';
  readonly transport?: TransportName;
  readonly channels?: number;
  /** `-H 'name: value'` headers, added to `metadata` (a header named there too is replaced); `${VAR}` is expanded as in the job file. */
  readonly headers?: readonly string[];
}

/** `-H 'name: value'` headers as metadata: the name is cut at the first colon, both sides trimmed. */
export function parseHeaders(headers: readonly string[]): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const header of headers) {
    const colon = header.indexOf(':');
    Object.defineProperty(metadata, header.slice(0, colon).trim().toLowerCase(), {
      value: header.slice(colon + 1).trim(),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return metadata;
}

/** A job ready to run: its spec, its method, and the warnings found while loading it. */
export interface LoadedJob {
  readonly spec: JobSpec;
  readonly method: MethodHandle;
  readonly warnings: readonly Issue[];
  /**
   * The job file's `metadata` and `tls` as written, `${VAR}` not expanded, and its folder: what a
   * remote worker resolves on its own machine (secrets never leave it). Absent for jobs made in code.
   */
  readonly unexpanded?: UnexpandedSecrets;
}

/** See `LoadedJob#unexpanded`. */
export interface UnexpandedSecrets {
  readonly dir: string;
  readonly metadata: unknown;
  readonly tls: unknown;
}

const MODULE_EXTENSIONS = /\.(m?js|cjs|[cm]?ts)$/i;

/**
 * Loads, interpolates, overrides and validates a job file (YAML, JSON or a module exporting
 * `defineJob({...})`), and loads its method. Throws `ValidationError` with every issue found.
 */
export async function loadJob(file: string, overrides: JobOverrides = {}, env: NodeJS.ProcessEnv = process.env): Promise<LoadedJob> {
  const jobFile = path.resolve(file);
  const label = path.relative(process.cwd(), jobFile) || jobFile;
  const raw = await readJobFile(jobFile, label);
  return loadJobValue(raw, {label, dir: path.dirname(jobFile), overrides, env});
}

/**
 * `loadJob` after the file is read: a raw job (parsed YAML/JSON, a module's export, or one made
 * from `run`'s flags) interpolated, overridden, validated, and its method loaded. `label` names it
 * in issues, `dir` is the folder its paths are relative to; `renameKey` turns a key into what the
 * user wrote instead (a flag), in issues.
 */
export async function loadJobValue(
  raw: unknown,
  options: {label: string; dir: string; overrides?: JobOverrides; env?: NodeJS.ProcessEnv; renameKey?: (key: string) => string},
): Promise<LoadedJob> {
  const {label, dir, overrides = {}, env = process.env} = options;
  const rename = options.renameKey;
  try {
    return await loadValue(raw, label, dir, overrides, env);
  } catch (error) {
    if (!rename || !(error instanceof ValidationError)) throw error;
    throw new ValidationError(
      error.issues.map((issue) => ({...issue, path: issue.path && rename(issue.path)})),
      {cause: error, title: error.title},
    );
  }
}

async function loadValue(raw: unknown, label: string, jobDir: string, overrides: JobOverrides, env: NodeJS.ProcessEnv): Promise<LoadedJob> {
  const issues: Issue[] = [];
  const job = interpolate(raw, '', label, env, issues) as Record<string, unknown>;
  if (overrides.headers && overrides.headers.length > 0 && job !== null && typeof job === 'object' && !Array.isArray(job)) {
    job['metadata'] = {
      ...(job['metadata'] as object | undefined),
      ...(interpolate(parseHeaders(overrides.headers), 'metadata', label, env, issues) as object),
    };
  }
  const structural = issues.some((i) => i.severity !== 'warning' && !i.message.startsWith('environment variable'));
  if (structural) throw new ValidationError(issues);
  // A list, a string or null is not a job, and spreading it into one below would hide that.
  if (job === null || typeof job !== 'object' || Array.isArray(job))
    throw new ValidationError([...issues, ...validateJob(job, label, jobDir).issues]);
  const merged = applyOverrides(job, overrides, jobDir);
  const metadataTemplates = templatesInText(raw, label, env);
  const validated = validateJob(merged, label, jobDir, {
    metadataTemplates,
    ...(overrides.outDir !== undefined ? {outDir: path.resolve(overrides.outDir)} : {}),
  });
  // A missing ${VAR} is one problem among the others, not a stop: every problem is listed at once.
  // What its key's value then fails (input: file not found .../${VAR}) says nothing more.
  const envKeys = new Set(issues.filter((i) => i.severity !== 'warning').map((i) => i.path));
  const found = [...issues, ...validated.issues.filter((i) => !envKeys.has(i.path))];
  const {spec: validSpec} = validated;
  if (!validSpec || envKeys.size > 0) throw new ValidationError([...found, ...(await methodProblems(merged, label, jobDir, found))]);
  // `--input FILE` given to a job module: its records are that file's (a failures file), not requests()'.
  const spec = overrides.input !== undefined && validSpec.requests ? {...validSpec, requests: undefined} : validSpec;
  let method: MethodHandle;
  try {
    method = createMethodHandle(await loadJobSchema(spec), spec.method, {jsonNames: spec.jsonNames, emitDefaults: spec.emitDefaults});
  } catch (error) {
    if (error instanceof SchemaError) throw new ValidationError([{file: label, path: error.key, message: error.message}, ...found]);
    throw error;
  }
  const transportIssue = spec.transport === 'h2' ? checkH2Method(method) : undefined;
  const kindIssues = [
    ...checkMethodKind(method, spec),
    ...checkPerRecordKeys(method, spec),
    ...(transportIssue ? [['transport', transportIssue] as [string, string]] : []),
  ];
  const fields = resolveResultFields(spec.resultFields, method, label);
  const methodIssues = [...kindIssues.map(([key, message]) => ({file: label, path: key, message})), ...fields.issues];
  if (methodIssues.length > 0) throw new ValidationError([...methodIssues, ...found]);
  const written = raw as {metadata?: unknown; tls?: unknown};
  const headers = overrides.headers && overrides.headers.length > 0 ? parseHeaders(overrides.headers) : undefined;
  const unexpanded: UnexpandedSecrets = {
    dir: jobDir,
    metadata: headers ? {...(written.metadata as object | undefined), ...headers} : written.metadata,
    tls: written.tls,
  };
  return {spec, method, warnings: found.filter((i) => i.severity === 'warning'), unexpanded};
}

/**
 * The problems of `method` (and of the proto or protoset files it is looked up in) in a job that has
 * other problems, so that every problem is listed at once: a misspelled method is not left for the
 * run after the others are fixed. Files only: no server is asked (reflection) while the job is not
 * valid, and nothing is said about keys that already have a problem.
 */
async function methodProblems(job: Record<string, unknown>, label: string, baseDir: string, found: readonly Issue[]): Promise<Issue[]> {
  const seen = new Set(found.filter((i) => i.severity !== 'warning').map((i) => i.path.split(/[.[]/)[0]));
  if (['method', 'proto', 'protoset', 'importPaths'].some((key) => seen.has(key))) return [];
  const files = (key: string): string[] | undefined => {
    const value = job[key];
    const list =
      typeof value === 'string'
        ? [value]
        : Array.isArray(value) && value.every((v) => typeof v === 'string')
          ? (value as string[])
          : undefined;
    return list?.map((file) => path.resolve(baseDir, file));
  };
  const method = job['method'];
  const proto = files('proto');
  const protoset = files('protoset');
  if (typeof method !== 'string' || (!proto && !protoset)) return [];
  try {
    const schema = await loadSchema(
      proto ? {kind: 'proto', files: proto, importPaths: files('importPaths') ?? []} : {kind: 'protoset', files: protoset!},
      '',
    );
    createMethodHandle(schema, method, {});
    return [];
  } catch (error) {
    if (error instanceof SchemaError) return [{file: label, path: error.key, message: error.message}];
    throw error;
  }
}

async function readJobFile(file: string, label: string): Promise<unknown> {
  if (MODULE_EXTENSIONS.test(file)) return importJobModule(file, label);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ValidationError([
      {file: label, path: '', message: code === 'ENOENT' ? 'job file not found' : `cannot read the job file: ${(error as Error).message}`},
    ]);
  }
  if (text.trim() === '')
    throw new ValidationError([
      {file: label, path: '', message: 'the job file is empty; it needs at least target, proto, method and input'},
    ]);
  const format = /\.json$/i.test(file) ? 'JSON' : 'YAML';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {prettyErrors: false, uniqueKeys: true, lineCounter});
  if (doc.errors.length > 0) {
    // A broken file can make the parser report one error per character; the first few say it all.
    const shown = doc.errors.slice(0, MAX_SYNTAX_ERRORS);
    const more = doc.errors.length - shown.length;
    throw new ValidationError([
      ...shown.map((e) => {
        const pos = e.linePos?.[0] ?? (e.pos ? lineCounter.linePos(e.pos[0]) : undefined);
        const first = e.message.split('\n')[0]!;
        const text = /Maximum call stack/.test(first) ? `nested too deeply to parse (${first})` : clip(first);
        return {
          file: pos ? `${label}:${pos.line}:${pos.col}` : label,
          path: '',
          message: `${format} syntax error: ${text}${e.message.includes('block-seq-ind') ? LONE_DASH_HINT : ''}`,
        };
      }),
      ...(more > 0 ? [{file: label, path: '', message: `${more} more ${format} syntax errors`}] : []),
    ]);
  }
  try {
    return doc.toJS({maxAliasCount: 100});
  } catch (error) {
    // Aliases past maxAliasCount (a "billion laughs" file), an alias to nothing, a bad tag value.
    throw new ValidationError([{file: label, path: '', message: `${format} cannot be read: ${clip((error as Error).message)}`}], {
      cause: error,
    });
  }
}

/** Expands `${VAR}` in a value of a job file the way `loadJob` does; `issues` gets what is not set. */
export function expandVariables(value: unknown, keyPath: string, file: string, env: NodeJS.ProcessEnv, issues: Issue[]): unknown {
  return interpolate(value, keyPath, file, env, issues);
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

const MAX_SYNTAX_ERRORS = 5;

/** `input: -` reads as the start of a list in YAML. */
const LONE_DASH_HINT = ' (a lone "-" starts a list; for standard input write input: "-")';

/** A parser's message can quote a whole token of the file: keep the line readable. */
function clip(text: string, max = 160): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

async function importJobModule(file: string, label: string): Promise<unknown> {
  let module: {default?: unknown};
  try {
    if (/\.[cm]?ts$/i.test(file)) {
      const {tsImport} = await import('tsx/esm/api');
      module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as {default?: unknown};
    } else {
      module = (await import(pathToFileURL(file).href)) as {default?: unknown};
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message =
      code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(file)
        ? 'job file not found'
        : `the job module failed to load: ${(error as Error).message}`;
    throw new ValidationError([{file: label, path: '', message}], {cause: error});
  }
  const job = (module.default as {default?: unknown} | undefined)?.default ?? module.default;
  if (job === undefined)
    throw new ValidationError([
      {file: label, path: '', message: 'the module has no default export; write `export default defineJob({...})`'},
    ]);
  return job;
}

/**
 * The templated values of a job's `metadata`, recognised in the job's text before `${VAR}`
 * expansion: what a variable expands to is literal (a secret holding `{{` is never read as a
 * placeholder). Their fixed parts are then expanded. Keyed by the key in lower case; a string says
 * why the value is malformed.
 */
function templatesInText(raw: unknown, label: string, env: NodeJS.ProcessEnv): Map<string, MetadataTemplate | string> {
  const found = new Map<string, MetadataTemplate | string>();
  const metadata = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)['metadata'] : undefined;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return found;
  for (const [key, value] of Object.entries(metadata as Record<string, unknown>)) {
    if (typeof value !== 'string' || !isTemplate(value)) continue;
    const template = parseTemplate(key.toLowerCase(), value);
    // The whole value's expansion has reported its variables already.
    const expand = (text: string) => interpolate(text, `metadata.${key}`, label, env, []) as string;
    found.set(
      key.toLowerCase(),
      typeof template === 'string'
        ? template
        : {key: template.key, parts: template.parts.map((p) => (typeof p === 'string' ? expand(p) : p))},
    );
  }
  return found;
}

const VARIABLE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
/** `$$`, `${`, or a `$NAME` without braces (group 1), which is not replaced. */
const BARE_VARIABLE = /\$\$|\$\{|\$([A-Za-z_][A-Za-z0-9_]*)/g;
/** Far deeper than any job (a service config is about 6 levels); past it, a file is hostile or broken. */
const MAX_DEPTH = 64;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string; `$$` is a literal `$`. Also the one walk
 * over the whole parsed file, so it refuses cycles (`&a [*a]`) and absurd nesting before anything
 * else recurses into them.
 */
function interpolate(
  value: unknown,
  keyPath: string,
  file: string,
  env: NodeJS.ProcessEnv,
  issues: Issue[],
  ancestors: object[] = [],
): unknown {
  if (value !== null && typeof value === 'object') {
    if (ancestors.includes(value)) {
      issues.push({file, path: keyPath, message: 'expected a value, got a YAML alias to one of its own parents (a cycle)'});
      return undefined;
    }
    if (ancestors.length >= MAX_DEPTH) {
      issues.push({file, path: keyPath, message: `expected at most ${MAX_DEPTH} levels of nesting, got more`});
      return undefined;
    }
  }
  const inner = (v: unknown, p: string) => interpolate(v, p, file, env, issues, [...ancestors, value as object]);
  if (typeof value === 'string') {
    for (const bare of value.matchAll(BARE_VARIABLE)) {
      if (!bare[1]) continue;
      issues.push({
        file,
        path: keyPath,
        severity: 'warning',
        message: `"$${bare[1]}" is sent as written: write \${${bare[1]}} for the environment variable, or $$${bare[1]} for a literal $`,
      });
    }
    return value.replace(VARIABLE, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$$') return '$';
      const found = env[name!];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      const message =
        found === ''
          ? `environment variable ${name} is set but empty (write \${${name}:-} if empty is meant, or \${${name}:-default} for a default)`
          : `environment variable ${name} is not set (write \${${name}:-default} for a default)`;
      issues.push({file, path: keyPath, message});
      return match;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => inner(v, `${keyPath}[${i}]`));
  if (value !== null && typeof value === 'object' && !isPlainObject(value)) {
    // YAML tags make these: !!binary a Buffer, !!set a Set, !!omap a Map, !!timestamp a Date. The
    // checks below see only plain maps, so a Map would pass as an empty one and be silently ignored.
    const tagged =
      value instanceof Uint8Array
        ? 'binary data (!!binary)'
        : value instanceof Set
          ? 'a set (!!set)'
          : value instanceof Map
            ? 'an ordered map (!!omap or !!pairs)'
            : value instanceof Date
              ? 'a date (!!timestamp)'
              : undefined;
    const got = tagged
      ? `${tagged}; drop the YAML tag`
      : `a ${(value as {constructor?: {name?: string}}).constructor?.name ?? 'class'} instance`;
    issues.push({file, path: keyPath, message: `expected a string, number, true/false, list or map, got ${got}`});
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // defineProperty: a `__proto__` key stays a key instead of replacing the prototype.
      Object.defineProperty(out, k, {
        value: inner(v, keyPath ? `${keyPath}.${k}` : k),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

/**
 * Applies flags to a raw job, each to the key it is declared on (src/config/job-keys.ts): paths given
 * as flags are relative to the working folder, made relative to `jobDir`.
 */
export function applyOverrides(job: Record<string, unknown>, overrides: JobOverrides, jobDir: string): Record<string, unknown> {
  const out = {...job};
  // Paths given as flags are relative to the working folder; make them absolute before the job
  // folder becomes the base.
  const fromCwd = (p: string) => (p === '-' ? p : path.relative(jobDir, path.resolve(p)) || '.');
  for (const {
    path: keyPath,
    declaration: {flag},
  } of flaggedKeys()) {
    const value = (overrides as Record<string, unknown>)[flagAttribute(flag)];
    if (value === undefined) continue;
    const given = flag.value === 'path' && typeof value === 'string' ? fromCwd(value) : value;
    const [key, inner] = keyPath.split('.') as [string, string | undefined]; // flags set top-level keys or a map's key (retry.maxAttempts)
    out[key] = inner === undefined ? given : {...((out[key] ?? {}) as object), [inner]: given};
  }
  return out;
}

/**
 * Per-record metadata and deadlines are a unary call's: a stream (bidi, client-streaming) sends its
 * metadata once for all its records. What a job asks that its method cannot do, as `[key, message]`.
 */
export function checkPerRecordKeys(
  method: {readonly name: string; readonly kind: string},
  spec: TemplatedSpec & {readonly inputFormat?: InputFormat},
): [key: string, message: string][] {
  if (method.kind === 'unary') return [];
  const issues: [string, string][] = [];
  if (spec.inputFormat === 'envelope')
    issues.push([
      'inputFormat',
      `envelopes (metadata and deadline per record) apply to unary methods only; "${method.name}" is a ${method.kind} method, whose streams carry many records under one metadata`,
    ]);
  for (const {key} of templatesOf(spec)) {
    issues.push([
      `metadata.${key}`,
      `{{field}} placeholders apply to unary methods only; "${method.name}" is a ${method.kind} method, whose streams carry many records under one metadata`,
    ]);
  }
  return issues;
}
