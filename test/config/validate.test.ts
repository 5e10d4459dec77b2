import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {ValidationError, formatIssue} from '../../src/errors.js';
import {loadJob} from '../../src/config/load.js';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {tempDir} from '../helpers/job.js';

/**
 * The loader and validator in process, for what a CLI fixture would make slow to list: each case is
 * a job file text and the words its one-line issues must hold. Nothing here is sent: the target is
 * 127.0.0.1:1 and no job is run.
 */

const ENV = {TARGET: '127.0.0.1:1'};
const BASE = `target: \${TARGET}\nproto: ${JSON.stringify(DEMO_PROTO)}\nmethod: ${DEMO_METHOD}\ninput: "-"\n`;

async function issuesOf(t: import('node:test').TestContext, text: string, name = 'job.yaml'): Promise<string[]> {
  const file = path.join(tempDir(t), name);
  writeFileSync(file, text);
  try {
    await loadJob(file, {}, ENV);
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
    return error.issues.map(formatIssue);
  }
  assert.fail('expected the job to be invalid');
}

/** [case, job file text, words that one issue line must hold]. */
const CASES: readonly [string, string, readonly string[]][] = [
  ['a misspelled top-level key gets a did-you-mean', `${BASE}concurrancy: 3\n`, ['concurrancy: unknown key (did you mean "concurrency"?)']],
  ['an unknown key with no near name lists the known keys', `${BASE}colour: red\n`, ['colour: unknown key; known keys: name, target']],
  ['a misspelled nested key', `${BASE}retry: {maxAtempts: 3}\n`, ['retry.maxAtempts: unknown key (did you mean "maxAttempts"?)']],
  [
    'concurrency out of range says the range',
    `${BASE}concurrency: 0\n`,
    ['concurrency: expected an integer from 1 to 100000, got 0 (number)'],
  ],
  ['channels out of range says the range', `${BASE}channels: 65\n`, ['channels: expected an integer from 1 to 64, got 65 (number)']],
  ['a negative rps', `${BASE}rps: -1\n`, ['rps: expected a number from 0 and up, got -1 (number)']],
  ['a fractional concurrency', `${BASE}concurrency: 2.5\n`, ['concurrency: expected an integer, got 2.5 (number)']],
  ['a huge number', `${BASE}concurrency: 1e400\n`, ['concurrency: expected an integer']],
  ['an empty target', `${BASE.replace('${TARGET}', '""')}`, ['target: expected a non-empty string, got "" (string)']],
  [
    'a missing method says what to write',
    `target: x\nproto: ${JSON.stringify(DEMO_PROTO)}\ninput: "-"\n`,
    ['method: missing required key (e.g. method: package.Service/Method)'],
  ],
  ['a method without a service', `${BASE.replace(DEMO_METHOD, 'Process')}`, ['method: expected "package.Service/Method", got "Process"']],
  [
    'an empty retryable status list',
    `${BASE}retry: {retryableStatusCodes: []}\n`,
    ['retry.retryableStatusCodes: expected a list of at least 1 item(s), got [] (list)'],
  ],
  ['OK as a retryable status', `${BASE}retry: {retryableStatusCodes: [OK]}\n`, ['retry.retryableStatusCodes[0]: OK is not a failure']],
  [
    'a status number out of range',
    `${BASE}retry: {retryableStatusCodes: [17]}\n`,
    ['retry.retryableStatusCodes[0]: expected a status name like UNAVAILABLE or a number 0-16, got 17 (number)'],
  ],
  [
    'maxBackoff below initialBackoff',
    `${BASE}retry: {initialBackoff: 2s, maxBackoff: 1s}\n`,
    ['retry.maxBackoff: expected a duration no shorter than retry.initialBackoff (2000ms), got "1s" (string)'],
  ],
  ['a negative duration', `${BASE}deadline: -5\n`, ['deadline: expected a duration like 500ms, 10s', 'got -5 (number)']],
  [
    'a metadata value that is a map',
    `${BASE}metadata: {x-team: {a: 1}}\n`,
    ['metadata.x-team: expected a string or a number or true or false, got {"a":1} (map)'],
  ],
  [
    'a -bin metadata value that is not base64',
    `${BASE}metadata: {trace-bin: "not base64!"}\n`,
    ['metadata.trace-bin: metadata key "trace-bin" ends in -bin, so its value must be base64'],
  ],
  [
    'a duplicate key names its line',
    `${BASE}concurrency: 3\nconcurrency: 4\n`,
    ['job.yaml:6:1: YAML syntax error: Map keys must be unique'],
  ],
  ['two YAML documents', `${BASE}---\nname: again\n`, ['job.yaml:5:1: YAML syntax error']],
  ['a lone dash for stdin', 'target: x\ninput: -\n', ['job.yaml:2:8: YAML syntax error', 'write input: "-"']],
  ['a list instead of a job', '- target: x\n', ['job.yaml: expected a job (a map of keys like target, proto, method, input), got a list']],
  ['a file of only comments', '# nothing yet\n', ['job.yaml: expected a job', 'got null']],
  ['a JSON string instead of a job', '"target"\n', ['job.yaml: expected a job', 'got string']],
  [
    'an unset ${VAR}',
    BASE.replace('${TARGET}', '${GB_NEVER_SET_IN_TESTS}'),
    ['target: environment variable GB_NEVER_SET_IN_TESTS is not set (write ${GB_NEVER_SET_IN_TESTS:-default} for a default)'],
  ],
  [
    'an alias that refers to itself',
    `${BASE}channelOptions: &loop {a: *loop}\n`,
    ['channelOptions.a: expected a value, got a YAML alias to one of its own parents (a cycle)'],
  ],
  [
    'a billion laughs',
    'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n',
    ['job.yaml: YAML cannot be read: Excessive alias count'],
  ],
  ['an alias to no anchor', `${BASE}metadata: *nowhere\n`, ['job.yaml: YAML cannot be read: Unresolved alias', 'nowhere']],
  [
    'maps nested 100 deep',
    `${BASE}channelOptions: ${'{a: '.repeat(100)}1${'}'.repeat(100)}\n`,
    ['expected at most 64 levels of nesting, got more'],
  ],
  [
    'lists nested 5000 deep',
    `${BASE}channelOptions: ${'['.repeat(5000)}${']'.repeat(5000)}\n`,
    ['YAML syntax error: nested too deeply to parse'],
  ],
  [
    'a !!binary tag',
    `${BASE}name: !!binary aGVsbG8=\n`,
    ['name: expected a string, number, true/false, list or map, got binary data (!!binary); drop the YAML tag'],
  ],
  [
    'a !!omap tag',
    `${BASE}metadata: !!omap [x-a: "1"]\n`,
    ['metadata: expected a string, number, true/false, list or map, got an ordered map (!!omap or !!pairs)'],
  ],
  [
    'a !!set tag',
    `${BASE}importPaths: !!set {a, b}\n`,
    ['importPaths: expected a string, number, true/false, list or map, got a set (!!set)'],
  ],
  [
    'a !!timestamp tag',
    `${BASE}deadline: !!timestamp 2001-12-14\n`,
    ['deadline: expected a string, number, true/false, list or map, got a date (!!timestamp)'],
  ],
  ['a __proto__ key', `${BASE}__proto__: {concurrency: 0}\n`, ['__proto__: unknown key']],
  ['a constructor key inside retry', `${BASE}retry: {constructor: 1}\n`, ['retry.constructor: unknown key']],
  ['a very long value is cut short', `${BASE}deadline: "${'x'.repeat(5000)}"\n`, ['deadline: expected a duration like 500ms', 'xxx…']],
];

for (const [name, text, words] of CASES) {
  test(`says what is wrong with ${name}`, async (t) => {
    const issues = await issuesOf(t, text);
    const line = issues.find((i) => words.every((w) => i.includes(w)));
    assert.ok(line, `one issue should hold ${JSON.stringify(words)}; got:\n${issues.join('\n')}`);
    for (const issue of issues) {
      assert.ok(issue.length < 600, `issue too long: ${issue.slice(0, 200)}`);
      assert.doesNotMatch(issue, /\[object Object\]/);
    }
  });
}

test('reports one issue for a maxBackoff of the wrong type, not a second about its size', async (t) => {
  const issues = await issuesOf(t, `${BASE}retry: {maxBackoff: {a: 1}}\n`);
  assert.deepEqual(issues.filter((i) => i.includes('retry.maxBackoff')).length, 1, issues.join('\n'));
});

test('a __proto__ key neither reaches the prototype nor sets the job', async (t) => {
  await issuesOf(t, `${BASE}__proto__: {polluted: true}\n`);
  assert.equal(({} as {polluted?: unknown}).polluted, undefined);
});

test('a YAML syntax error stops at a few lines, however broken the file', async (t) => {
  const issues = await issuesOf(t, `${BASE}${'}]'.repeat(500)}\n`);
  assert.ok(issues.length <= 6, `${issues.length} lines`);
});

test('names the line and column of a JSON syntax error', async (t) => {
  const issues = await issuesOf(t, '{\n  "target": "x",\n  "proto": "p"\n  "method": "m"\n}\n', 'job.json');
  assert.ok(
    issues.some((i) => /job\.json:4:\d+: JSON syntax error: Missing ,/.test(i)),
    issues.join('\n'),
  );
});

test('says a job file that does not exist is not found', async (t) => {
  await assert.rejects(
    loadJob(path.join(tempDir(t), 'nowhere.yaml'), {}, ENV),
    (error: unknown) => error instanceof ValidationError && /nowhere\.yaml: job file not found/.test(error.message),
  );
});

test('loads a valid JSON job, with ${VAR:-default} and $$', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'job.json');
  writeFileSync(
    file,
    JSON.stringify({
      target: '${GB_UNSET_TARGET:-127.0.0.1:1}',
      proto: DEMO_PROTO,
      method: DEMO_METHOD,
      input: '-',
      metadata: {'x-price': '$$5'},
    }),
  );
  const job = await loadJob(file, {}, {});
  assert.equal(job.spec.target, '127.0.0.1:1');
  assert.equal(job.spec.metadata['x-price'], '$5');
});

test('YAML merge keys and anchors in a valid job are read as written', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'job.yaml');
  writeFileSync(file, `${BASE}retry: &r {maxAttempts: 3}\nmetadata: {x-a: &v "1", x-b: *v}\n`);
  const job = await loadJob(file, {}, ENV);
  assert.equal(job.spec.retry.maxAttempts, 3);
  assert.deepEqual(job.spec.metadata, {'x-a': '1', 'x-b': '1'});
});
