import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {Ajv} from 'ajv';
import {jobSchema, jobSchemaText, SCHEMA_FILE} from '../../scripts/job-schema.js';
import {declaredKeys, flagAttribute, flaggedKeys, flagName, JOB_KEYS} from '../../src/config/job-keys.js';
import {DEFAULTS} from '../../src/config/spec.js';
import {DEFAULT_MAX_LINE_BYTES} from '../../src/io/input.js';
import {SCHEDULE_DEFAULTS} from '../../src/config/schedule-spec.js';
import {loadJob} from '../../src/config/load.js';
import {DEFAULT_RETRY} from '../../src/rpc/retry.js';
import {parseSize} from '../../src/util/size.js';
import {statusName} from '../../src/codec/status.js';
import {givenSpecKeys, resumeInfoFor} from '../../src/state/resumable.js';
import {shipRun} from '../../src/scale/run-spec.js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';
import {run} from '../../bin/commands/run.js';
import {validate} from '../../bin/commands/validate.js';
import {resumeStep} from '../../bin/next-step.js';
import {tempDir, writeJob, writeJsonl} from '../helpers/job.js';

const README = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');

/** The rows of the README table whose header line is `header`: cells, code spans unwrapped later. */
function tableRows(header: string): string[][] {
  const lines = README.split('\n');
  const start = lines.indexOf(header);
  assert.ok(start >= 0, `README has a table headed ${header}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .replace(/\\\|/g, '\u0000')
        .split('|')
        .slice(1, -1)
        // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL stands in for an escaped pipe while the row is split
        .map((cell) => cell.trim().replace(/\u0000/g, '|')),
    );
  }
  return rows;
}

const codeSpans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/** A default as the README writes it: `4MiB`, `false`, `[UNAVAILABLE]`, `[]`. */
const shown = (value: unknown) => (Array.isArray(value) ? `[${value.join(', ')}]` : String(value));

/** The keys a job writes: declared maps (`retry`, `tls`) are documented by their keys. */
const documented = declaredKeys().filter(({path: key, declaration}) => !key.startsWith('$') && declaration.keys === undefined);

test('schema/job.schema.json is the one generated from the declaration (npm run schema)', () => {
  assert.equal(
    readFileSync(SCHEMA_FILE, 'utf8'),
    jobSchemaText(),
    'schema/job.schema.json differs from src/config/job-keys.ts: run npm run schema',
  );
});

test('every declared default is valid for its own key, and the schema compiles under Ajv strict mode', () => {
  const check = new Ajv({strict: true, allowUnionTypes: true, allErrors: true}).compile(jobSchema());
  const job: Record<string, unknown> = {target: '127.0.0.1:1', method: 'a.B/C', ...DEFAULTS};
  for (const {path: key, declaration} of declaredKeys()) {
    if (!key.includes('.') || declaration.default === undefined) continue;
    const [map, ...rest] = key.split('.');
    let at = (job[map!] ??= {}) as Record<string, unknown>;
    for (const part of rest.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>;
    at[rest.at(-1)!] = declaration.default;
  }
  assert.ok(check(job), JSON.stringify(check.errors));
});

test('the defaults the code applies are the declared ones', () => {
  assert.equal(parseSize(DEFAULTS.maxLineBytes), DEFAULT_MAX_LINE_BYTES);
  const retry = JOB_KEYS.retry.keys;
  assert.equal(retry.maxAttempts.default, DEFAULT_RETRY.maxAttempts);
  assert.equal(retry.backoffMultiplier.default, DEFAULT_RETRY.backoffMultiplier);
  assert.deepEqual(retry.retryableStatusCodes.default, [...DEFAULT_RETRY.retryableStatusCodes].map(statusName));
  assert.deepEqual(
    {overlap: DEFAULTS.overlap, catchUp: DEFAULTS.catchUp, jitter: DEFAULTS.jitter, enabled: DEFAULTS.enabled},
    SCHEDULE_DEFAULTS,
  );
});

test('a job without workers, maxAttempts or maxLineBytes gets the declared defaults', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const {spec} = await loadJob(writeJob(dir, '127.0.0.1:1'));
  assert.equal(spec.workersSetting, DEFAULTS.workers);
  assert.equal(spec.retry.maxAttempts, JOB_KEYS.retry.keys.maxAttempts.default);
  assert.equal(spec.maxLineBytes, parseSize(DEFAULTS.maxLineBytes));
  assert.equal(spec.concurrency, DEFAULTS.concurrency);
  assert.equal(spec.channels, DEFAULTS.channels);
});

test('an override flag sets its declared key: --channels, --max-attempts (a key of retry), --output (a path from the working folder)', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const {spec} = await loadJob(writeJob(dir, '127.0.0.1:1'), {channels: 3, maxAttempts: 2, output: path.join(dir, 'elsewhere.jsonl')});
  assert.equal(spec.channels, 3);
  assert.equal(spec.retry.maxAttempts, 2);
  assert.equal(spec.output, path.join(dir, 'elsewhere.jsonl'));
});

test('the README key table has one row per declared key, with its declared default', () => {
  const rows = tableRows('| key | default | what it does |');
  const inReadme = new Map<string, string>();
  for (const [keys, fallback] of rows)
    for (const key of codeSpans(keys!)) inReadme.set(key, codeSpans(keys!).length === 1 ? fallback! : '');
  assert.deepEqual([...inReadme.keys()].sort(), documented.map((k) => k.path).sort(), 'README.md job key table vs src/config/job-keys.ts');
  for (const {path: key, declaration} of documented) {
    const cell = inReadme.get(key)!;
    if (declaration.required) assert.match(cell, /^required/, `${key}: README default column`);
    else if (declaration.default !== undefined && cell !== '')
      assert.equal(codeSpans(cell)[0], shown(declaration.default), `${key}: README default column`);
  }
});

test('the README flag table lists every declared override flag with its key', () => {
  const rows = tableRows('| flag | overrides | example |');
  for (const {
    path: key,
    declaration: {flag},
  } of flaggedKeys()) {
    const row = rows.find(([flags]) => codeSpans(flags!).some((span) => span.split(/,\s*|\s+/).includes(flagName(flag))));
    assert.ok(row, `README.md has no row for ${flagName(flag)}`);
    assert.ok(
      codeSpans(row[1]!).some((span) => span === key || span.startsWith(`${key}:`)),
      `README.md: ${flagName(flag)} overrides ${key}, it says ${row[1]}`,
    );
  }
});

test('run takes every declared override flag, validate those marked for it', () => {
  const longs = (command: typeof run) => command.options.map((o) => o.long);
  for (const {
    declaration: {flag},
  } of flaggedKeys()) {
    assert.ok(longs(run).includes(flagName(flag)), `run ${flagName(flag)}`);
    assert.equal(longs(validate).includes(flagName(flag)), flag.validate === true, `validate ${flagName(flag)}`);
  }
});

test('a key declared recorded is what a run records, what a flag given with --resume replaces, and what the printed --resume carries', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = await loadJob(writeJob(dir, '127.0.0.1:1'));
  const recorded = flaggedKeys().filter((k) => k.declaration.recorded !== undefined);
  assert.deepEqual(recorded.map((k) => k.declaration.recorded).sort(), Object.keys(resumeInfoFor(job, 'r1').spec!).sort());
  const flags = Object.fromEntries(
    recorded.map((k) => [flagAttribute(k.declaration.flag), k.declaration.flag.value === 'switch' ? true : 7]),
  );
  assert.deepEqual([...givenSpecKeys(flags)].sort(), recorded.map((k) => k.declaration.recorded).sort());
  const {command} = resumeStep('r1', {jobFile: 'job.yaml', flags, resumable: true, maxFailures: undefined, maxInvalid: undefined});
  for (const {
    declaration: {flag},
  } of recorded)
    assert.match(command, new RegExp(` ${flagName(flag)}( |$)`), `the printed --resume keeps ${flagName(flag)}`);
});

test('a key declared shipped is what a distributed run ships to its workers', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const job = await loadJob(writeJob(dir, '127.0.0.1:1'));
  /** What a run ships that is no job key: its identity, where it runs, the method (with jsonNames and emitDefaults). */
  const notKeys = ['runId', 'jobDir', 'method', 'startedAt', 'coordinator', 'keysTtlMs'];
  const shipped = Object.keys(shipRun(job, 'r1')).filter((name) => !notKeys.includes(name));
  assert.deepEqual(
    declaredKeys()
      .flatMap((k) => k.declaration.shipped ?? [])
      .sort(),
    shipped.sort(),
  );
});
