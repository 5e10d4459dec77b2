/**
 * Checks a job's `channelOptions` before anything is sent. grpc-js silently ignores much of what it
 * does not understand: unknown option names, `true` where it compares with 0/1, a `retryPolicy` at
 * the top of `grpc.service_config`, a misspelled `maxAttempt`. Each of those becomes an `Issue` here.
 */
import {createRequire} from 'node:module';
import {experimental} from '@grpc/grpc-js';
import type {ErrorObject, ValidateFunction} from 'ajv';
import type {Issue} from '../errors.js';
import {didYouMean, suggest} from '../util/suggest.js';
import {METHOD_CONFIG_KEYS, SERVICE_CONFIG_SCHEMA, TOP_LEVEL_KEYS} from './service-config-schema.js';
import {STATUS_NAMES} from '../codec/status.js';

type Kind = 'number' | 'flag' | 'string' | 'compression' | 'service_config';

/**
 * Every option of grpc-js 1.14's `ChannelOptions` interface and `recognizedOptions` object
 * (build/src/channel-options.*), with how grpc-js reads it. `flag`: grpc-js compares with 0 or 1,
 * so `true`/`false` are silently ignored.
 */
const GRPC_JS_OPTIONS = {
  'grpc.ssl_target_name_override': 'string',
  'grpc.primary_user_agent': 'string',
  'grpc.secondary_user_agent': 'string',
  'grpc.default_authority': 'string',
  'grpc.keepalive_time_ms': 'number',
  'grpc.keepalive_timeout_ms': 'number',
  'grpc.keepalive_permit_without_calls': 'flag',
  'grpc.service_config': 'service_config',
  'grpc.max_concurrent_streams': 'number',
  'grpc.initial_reconnect_backoff_ms': 'number',
  'grpc.max_reconnect_backoff_ms': 'number',
  'grpc.use_local_subchannel_pool': 'flag',
  'grpc.max_send_message_length': 'number',
  'grpc.max_receive_message_length': 'number',
  'grpc.enable_http_proxy': 'flag',
  'grpc.http_connect_target': 'string',
  'grpc.http_connect_creds': 'string',
  'grpc.default_compression_algorithm': 'compression',
  'grpc.enable_channelz': 'flag',
  'grpc.dns_min_time_between_resolutions_ms': 'number',
  'grpc.enable_retries': 'flag',
  'grpc.per_rpc_retry_buffer_size': 'number',
  'grpc.retry_buffer_size': 'number',
  'grpc.max_connection_age_ms': 'number',
  'grpc.max_connection_age_grace_ms': 'number',
  'grpc.max_connection_idle_ms': 'number',
  'grpc-node.max_session_memory': 'number',
  'grpc.service_config_disable_resolution': 'flag',
  'grpc.client_idle_timeout_ms': 'number',
  'grpc-node.tls_enable_trace': 'flag',
  'grpc.lb.ring_hash.ring_size_cap': 'number',
  'grpc-node.retry_max_attempts_limit': 'number',
  'grpc-node.flow_control_window': 'number',
  'grpc.server_call_metric_recording': 'flag',
} as const satisfies Record<string, Kind>;

export const KNOWN_CHANNEL_OPTIONS: ReadonlySet<string> = new Set(Object.keys(GRPC_JS_OPTIONS));

/** Read only by a grpc-js server: a client channel ignores them. */
const SERVER_ONLY = new Set([
  'grpc.max_concurrent_streams',
  'grpc.max_connection_age_ms',
  'grpc.max_connection_age_grace_ms',
  'grpc.max_connection_idle_ms',
  'grpc.server_call_metric_recording',
]);
/** C-core options often copied from other languages; grpc-js 1.14 never reads them. */
const C_CORE_ONLY = new Set([
  'grpc.http2.max_frame_size',
  'grpc.http2.max_ping_strikes',
  'grpc.http2.min_time_between_pings_ms',
  'grpc.http2.max_pings_without_data',
  'grpc.min_reconnect_backoff_ms',
  'grpc.lb_policy_name',
  'grpc.max_metadata_size',
]);
/** Load-balancing policies grpc-js registers itself, for did-you-mean. */
const LB_POLICIES = ['pick_first', 'round_robin', 'weighted_round_robin', 'outlier_detection'];
const DEFAULT_MAX_ATTEMPTS_LIMIT = 5; // grpc-js retrying-call.js
const SC = 'grpc.service_config';

/** Checks a channelOptions map. Returns issues; never throws. `file` is the job file name, `keyPath` the key prefix (default 'channelOptions'). */
export function checkChannelOptions(options: unknown, file: string, keyPath = 'channelOptions'): Issue[] {
  const issues: Issue[] = [];
  const error = (path: string, message: string) => issues.push({file, path, message, severity: 'error'});
  const warn = (path: string, message: string) => issues.push({file, path, message, severity: 'warning'});
  try {
    if (!isPlainObject(options)) {
      error(keyPath, `expected a map of grpc-js channel options, got ${got(options)}`);
      return issues;
    }
    for (const [key, value] of Object.entries(options)) {
      const path = `${keyPath}.${key}`;
      const kind: Kind | undefined = (GRPC_JS_OPTIONS as Record<string, Kind>)[key];
      if (kind === undefined) {
        if (C_CORE_ONLY.has(key)) warn(path, 'a C-core option that grpc-js does not implement; grpc-js ignores it');
        else warn(path, `unknown channel option; grpc-js ignores it${didYouMean(key, KNOWN_CHANNEL_OPTIONS)}`);
        continue;
      }
      if (SERVER_ONLY.has(key)) warn(path, 'a server-side option; a grpc-js client ignores it');
      if (kind === 'number' && !(typeof value === 'number' && Number.isFinite(value))) error(path, `expected a number, got ${got(value)}`);
      if (kind === 'flag' && value !== 0 && value !== 1)
        error(path, `expected 0 or 1 (grpc-js ignores anything else, even true/false), got ${got(value)}`);
      if (kind === 'compression' && value !== 0 && value !== 1 && value !== 2)
        error(path, `expected 0 (identity), 1 (deflate) or 2 (gzip), got ${got(value)}`);
      if (kind === 'string' && typeof value !== 'string') error(path, `expected a string, got ${got(value)}`);
      if (kind === 'service_config') checkServiceConfig(value, options, path, `${keyPath}."${SC}"`, error, warn);
    }
  } catch (cause) {
    error(keyPath, `could not be checked: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
  return issues;
}

type Report = (path: string, message: string) => void;

function checkServiceConfig(
  value: unknown,
  options: Record<string, unknown>,
  path: string,
  base: string,
  error: Report,
  warn: Report,
): void {
  let config: unknown;
  if (typeof value === 'string') {
    try {
      config = JSON.parse(value);
    } catch (cause) {
      error(path, `expected a service config in JSON, got invalid JSON: ${(cause as Error).message}`);
      return;
    }
  } else if (isPlainObject(value)) {
    try {
      config = JSON.parse(JSON.stringify(value)); // what grpc-js will get
    } catch (cause) {
      error(path, `expected a service config that can be written as JSON, got one that cannot: ${(cause as Error).message}`);
      return;
    }
  } else {
    error(path, `expected a service config (a JSON string or a map), got ${got(value)}`);
    return;
  }
  const validate = compiled();
  if (!validate(config)) {
    for (const [where, message] of schemaMessages(validate.errors ?? [])) error(`${base}${where}`, message);
    return;
  }
  checkSemantics(config as ServiceConfig, options, base, error, warn);
}

let validator: ValidateFunction | undefined;
/** Ajv is loaded on the first service config checked, not by every command that imports this file. */
function compiled(): ValidateFunction {
  if (validator) return validator;
  const {Ajv} = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  validator = new Ajv({allErrors: true, verbose: true, allowUnionTypes: true}).compile(SERVICE_CONFIG_SCHEMA);
  return validator;
}

/** One `[path, message]` per problem, in ajv's order. */
function schemaMessages(errors: ErrorObject[]): Map<string, string> {
  const out = new Map<string, string>();
  // A misspelled key also shows as a missing one ("maxAttempt" unknown, "maxAttempts" missing): say it once.
  const suggested = new Set<string>();
  // A map with the wrong number of keys is one problem, not one more per key.
  const whole: string[] = [];
  for (const e of errors) {
    if (e.keyword === 'minProperties' || e.keyword === 'maxProperties') whole.push(`${e.instancePath}/`);
    if (e.keyword !== 'additionalProperties') continue;
    const hit = suggest(extraKey(e), allowedKeys(e));
    if (hit) suggested.add(`${e.instancePath}/${hit}`);
  }
  for (const e of errors) {
    if (whole.some((prefix) => e.instancePath.startsWith(prefix))) continue;
    const at = pathOf(e.instancePath);
    const schema = (e.parentSchema ?? {}) as {description?: string; properties?: Record<string, {description?: string}>};
    let where = at;
    let message: string;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = extraKey(e);
        where = `${at}${segment(key)}`;
        message =
          misplaced(key, e.instancePath) ??
          `unknown key "${key}"${didYouMean(key, allowedKeys(e))}; known keys: ${allowedKeys(e).join(', ')}`;
        break;
      }
      case 'required': {
        const key = (e.params as {missingProperty: string}).missingProperty;
        if (suggested.has(`${e.instancePath}/${key}`)) continue;
        where = `${at}${segment(key)}`;
        message = `missing required key; expected ${schema.properties?.[key]?.description ?? 'a value'}`;
        break;
      }
      case 'not':
        message = 'retryPolicy and hedgingPolicy are mutually exclusive; keep one of them';
        break;
      case 'enum':
        message = `expected ${schema.description ?? 'one of the allowed values'}, got ${got(e.data)}${didYouMean(String(e.data).toUpperCase(), STATUS_NAMES)}`;
        break;
      default:
        message = `expected ${schema.description ?? e.message ?? 'a valid value'}, got ${got(e.data)}`;
    }
    if (!out.has(where)) out.set(where, message);
  }
  return out;
}

const EXAMPLE: Record<string, string> = {timeout: '"10s"', waitForReady: 'true', name: '[{"service":"pkg.Service"}]'};

/** "retryPolicy belongs inside a methodConfig entry", "retryThrottling belongs at the top level". */
function misplaced(key: string, instancePath: string): string | undefined {
  if (instancePath === '' && METHOD_CONFIG_KEYS.includes(key) && key !== 'name') {
    return `${key} belongs inside a methodConfig entry: {"methodConfig":[{"name":[{"service":"pkg.Service"}],"${key}":${EXAMPLE[key] ?? '{...}'}}]}`;
  }
  if (/^\/methodConfig\/\d+$/.test(instancePath) && TOP_LEVEL_KEYS.includes(key)) {
    return `${key} belongs at the top level of the service config, next to methodConfig: {"${key}":...,"methodConfig":[...]}`;
  }
  return undefined;
}

interface MethodName {
  service?: string;
  method?: string;
}
interface Policy {
  maxAttempts: number;
  perAttemptRecvTimeout?: string;
}
interface MethodConfig {
  name: MethodName[];
  timeout?: string;
  retryPolicy?: Policy;
  hedgingPolicy?: Policy;
  [key: string]: unknown;
}
interface ServiceConfig {
  loadBalancingPolicy?: string;
  loadBalancingConfig?: Record<string, unknown>[];
  methodConfig?: MethodConfig[];
  healthCheckConfig?: unknown;
}

/**
 * What grpc-js's own (internal, not exported) `validateServiceConfig` rejects that the schema cannot
 * say, plus what grpc-js accepts but then ignores or misreads.
 */
function checkSemantics(config: ServiceConfig, options: Record<string, unknown>, base: string, error: Report, warn: Report): void {
  if (config.loadBalancingPolicy !== undefined) {
    warn(
      `${base}.loadBalancingPolicy`,
      `grpc-js ignores loadBalancingPolicy; use "loadBalancingConfig":[{"${config.loadBalancingPolicy}":{}}]`,
    );
  }
  if (config.healthCheckConfig !== undefined)
    warn(`${base}.healthCheckConfig`, 'grpc-js does not do client-side health checking; it ignores healthCheckConfig');
  checkLoadBalancing(config.loadBalancingConfig ?? [], base, error, warn);

  const limitOption = options['grpc-node.retry_max_attempts_limit'];
  const limit = typeof limitOption === 'number' ? limitOption : DEFAULT_MAX_ATTEMPTS_LIMIT;
  const seen = new Map<string, string>();
  (config.methodConfig ?? []).forEach((entry, i) => {
    const at = `${base}.methodConfig[${i}]`;
    entry.name.forEach((name, j) => {
      const service = name.service ?? '';
      const method = name.method ?? '';
      if (method !== '' && service === '')
        error(`${at}.name[${j}]`, `expected a "service" next to "method" (grpc-js rejects a method without a service), got ${got(name)}`);
      const id = `${service}/${method}`;
      const first = seen.get(id);
      if (first) error(`${at}.name[${j}]`, `expected each name once across methodConfig, got ${got(name)} again (first at ${first})`);
      else seen.set(id, `methodConfig[${i}].name[${j}]`);
    });
    // grpc-js 1.14 reads the digits after the dot as nanoseconds: "0.5s" is 5ns, every call fails at once.
    const fraction = entry.timeout?.match(/\.(\d+)s$/)?.[1];
    if (fraction !== undefined && fraction.length !== 9 && Number(fraction) !== 0) {
      error(
        `${at}.timeout`,
        `expected 9 digits after the dot (grpc-js reads "${entry.timeout}" as ${entry.timeout!.split('.')[0]}s + ${Number(fraction)}ns), got "${entry.timeout}"; write "${entry.timeout!.split('.')[0]}.${fraction.padEnd(9, '0')}s"`,
      );
    }
    for (const key of ['maxRequestMessageBytes', 'maxResponseMessageBytes']) {
      if (entry[key] !== undefined)
        warn(
          `${at}.${key}`,
          `grpc-js ignores ${key}; use the channel options grpc.max_send_message_length / grpc.max_receive_message_length`,
        );
    }
    for (const policyKey of ['retryPolicy', 'hedgingPolicy'] as const) {
      const policy = entry[policyKey];
      if (!policy) continue;
      if (policy.maxAttempts > limit)
        warn(
          `${at}.${policyKey}.maxAttempts`,
          `grpc-js caps maxAttempts at ${limit} (grpc-node.retry_max_attempts_limit), got ${policy.maxAttempts}`,
        );
      if (policy.perAttemptRecvTimeout !== undefined)
        warn(`${at}.${policyKey}.perAttemptRecvTimeout`, 'grpc-js ignores perAttemptRecvTimeout');
      if (options['grpc.enable_retries'] === 0)
        warn(`${at}.${policyKey}`, `grpc.enable_retries is 0, so grpc-js ignores this ${policyKey}`);
    }
  });
}

/** grpc-js uses the first entry it can parse and silently skips the others. */
function checkLoadBalancing(list: Record<string, unknown>[], base: string, error: Report, warn: Report): void {
  const failures: [string, string][] = [];
  list.forEach((entry, i) => {
    try {
      experimental.parseLoadBalancingConfig(entry as never);
    } catch (cause) {
      const name = Object.keys(entry)[0] ?? '';
      failures.push([
        `${base}.loadBalancingConfig[${i}]`,
        `grpc-js skips this entry: ${(cause as Error).message}${didYouMean(name, LB_POLICIES)}`,
      ]);
    }
  });
  const none = failures.length === list.length; // then grpc-js falls back to pick_first
  for (const [path, message] of failures)
    (none ? error : warn)(path, none ? `${message}; no entry is usable, so grpc-js falls back to pick_first` : message);
}

function extraKey(e: ErrorObject): string {
  return (e.params as {additionalProperty: string}).additionalProperty;
}

function allowedKeys(e: ErrorObject): string[] {
  return Object.keys((e.parentSchema as {properties?: object} | undefined)?.properties ?? {});
}

/** `/methodConfig/0/retryPolicy` -> `.methodConfig[0].retryPolicy`. */
function pathOf(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map(segment)
    .join('');
}

function segment(part: string): string {
  if (/^\d+$/.test(part)) return `[${part}]`;
  return /^[A-Za-z_$][\w$]*$/.test(part) ? `.${part}` : `."${part}"`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** `"10s" (string)`, `[1,2] (list)`, `null`. */
function got(value: unknown): string {
  if (value === null) return 'null';
  const type = Array.isArray(value) ? 'list' : isPlainObject(value) ? 'map' : typeof value;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value === 'object' ? type : String(value);
  }
  return `${text.length > 60 ? `${text.slice(0, 60)}…` : text} (${type})`;
}
