import {createHash} from 'node:crypto';
import {mkdirSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {stringify} from 'yaml';
import {applyOverrides, parseHeaders, type JobOverrides} from './load.js';
import {flaggedKeys, flagName} from './job-keys.js';

/**
 * A job made from `run`'s flags, the way grpcurl takes a call: `grpc-batch run --target HOST:PORT
 * --method pkg.Svc/Method --proto api.proto -i in.jsonl -H 'k: v'`. It is checked like a job file
 * (every problem at once, each named by its flag), and written as a YAML job file: under the state
 * folder so `--resume` and the daemon can load it again (the state database records a run's job
 * file), or where `--save-job` says, so a one-off becomes a schedule.
 */
export interface JobFlags extends JobOverrides {
  readonly method?: string;
  readonly proto?: readonly string[];
  readonly importPath?: readonly string[];
  readonly protoset?: readonly string[];
  readonly tls?: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly serverName?: string;
}

/** What names a run made from flags in issues: `grpc-batch run: --method: missing ...`. */
export const FLAGS_LABEL = 'grpc-batch run';

/**
 * The flag of each job key a run made from flags can set: the override flags declared in
 * src/config/job-keys.ts, and those that only make a job without a file.
 */
const FLAG_OF_KEY: Readonly<Record<string, string>> = {
  ...Object.fromEntries(flaggedKeys().map((k) => [k.path, flagName(k.declaration.flag)])),
  method: '--method',
  proto: '--proto',
  importPaths: '--import-path',
  protoset: '--protoset',
  metadata: '-H',
  tls: '--tls',
  'tls.ca': '--ca',
  'tls.cert': '--cert',
  'tls.key': '--key',
  'tls.serverName': '--server-name',
  retry: '--max-attempts',
};

/** The flag an issue's key path came from: `proto[1]` -> `--proto`, `metadata.authorization` -> `-H`. */
export function flagForKey(keyPath: string): string {
  const bare = keyPath.replace(/\[\d+\]/g, '');
  for (let key = bare; key; key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '') {
    if (FLAG_OF_KEY[key]) return key === 'metadata' && bare !== 'metadata' ? `-H ${bare.slice('metadata.'.length)}` : FLAG_OF_KEY[key]!;
  }
  return keyPath;
}

/** Whether `run` was given a job by flags (no job file). */
export function hasJobFlags(flags: JobFlags): boolean {
  return flags.method !== undefined || (flags.proto?.length ?? 0) > 0 || (flags.protoset?.length ?? 0) > 0;
}

/** The job's name: the method's service and name (`DemoService-Process`), which names its files and its runs. */
export function flagJobName(method: string | undefined): string {
  const match = /([\w]+)\/([\w]+)$/.exec(method ?? '');
  return match ? `${match[1]}-${match[2]}` : 'run';
}

/**
 * The job the flags describe, before the run's other flags (concurrency, output...), which apply
 * as overrides: paths absolute, `-H` headers as `metadata` (`${VAR}` still unexpanded).
 */
export function jobFromFlags(flags: JobFlags, cwd = process.cwd()): Record<string, unknown> {
  const abs = (file: string) => path.resolve(cwd, file);
  const list = (files: readonly string[] | undefined) => (files && files.length > 0 ? files.map(abs) : undefined);
  const tls =
    flags.tls || flags.ca || flags.cert || flags.key || flags.serverName
      ? {
          ...(flags.ca ? {ca: abs(flags.ca)} : {}),
          ...(flags.cert ? {cert: abs(flags.cert)} : {}),
          ...(flags.key ? {key: abs(flags.key)} : {}),
          ...(flags.serverName ? {serverName: flags.serverName} : {}),
        }
      : undefined;
  const job: Record<string, unknown> = {
    name: flagJobName(flags.method),
    target: flags.target,
    method: flags.method,
    proto: list(flags.proto),
    importPaths: list(flags.importPath),
    protoset: list(flags.protoset),
    input: flags.input === undefined || flags.input === '-' ? flags.input : abs(flags.input),
    metadata: flags.headers && flags.headers.length > 0 ? parseHeaders(flags.headers) : undefined,
    tls,
  };
  for (const key of Object.keys(job)) if (job[key] === undefined) delete job[key];
  return job;
}

/**
 * The job file text of a job made from flags, with every flag that changes the run applied, and
 * its paths relative to `dir` (the folder the file is written to) when `relative`, else absolute.
 */
export function flagJobText(job: Record<string, unknown>, overrides: JobOverrides, dir: string, options: {relative: boolean}): string {
  const merged = applyOverrides(job, overrides, dir);
  const rebase = (file: unknown) =>
    typeof file === 'string' && file !== '-'
      ? options.relative
        ? path.relative(dir, path.resolve(dir, file)) || '.'
        : path.resolve(dir, file)
      : file;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(merged)) {
    if (value === undefined) continue;
    if (key === 'input' || key === 'output' || key === 'failures') out[key] = rebase(value);
    else if (key === 'proto' || key === 'protoset' || key === 'importPaths') out[key] = (value as string[]).map(rebase);
    else if (key === 'tls')
      out[key] = Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, k === 'serverName' ? v : rebase(v)]));
    else out[key] = value;
  }
  return `# made by: grpc-batch run --save-job (run it with: grpc-batch run <this file>)\n${stringify(out)}`;
}

/** Writes a job file (its folder made), readable by its owner only: `-H` values may hold secrets. */
export function writeJobFile(file: string, text: string): void {
  mkdirSync(path.dirname(file), {recursive: true});
  writeFileSync(file, text, {mode: 0o600});
}

/** Where a run made from flags is recorded, under the state database's folder: one file per job, named by its content. */
export function recordedJobPath(stateFile: string, name: string, text: string): string {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return path.join(path.dirname(stateFile), 'jobs', `${name}-${hash}.yaml`);
}
