import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {stringify} from 'yaml';
import {ValidationError} from '../../src/errors.js';
import {loadJob} from '../../src/config/load.js';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {tempDir} from '../helpers/job.js';

/**
 * Fuzzes the job loader: random and mutated YAML/JSON job files must each end in a loaded job or a
 * ValidationError, never in another exception. Deterministic (seeded), a fixed number of cases.
 * The target is 127.0.0.1:1 and no job is ever run: nothing touches the network.
 */

// FUZZ_SEED and FUZZ_CASES explore further by hand; the suite always runs the same 500 cases.
const SEED = Number(process.env['FUZZ_SEED'] ?? 0x9e3779b9);
const CASES = Number(process.env['FUZZ_CASES'] ?? 500);

/** mulberry32: small, fast, and the same sequence on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Json[] | {[key: string]: Json};

class Fuzzer {
  readonly #random: () => number;
  constructor(seed: number) {
    this.#random = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.#random() * n);
  }
  chance(p: number): boolean {
    return this.#random() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  unicode(length: number): string {
    const ranges: [number, number][] = [
      [0x20, 0x7e],
      [0x00, 0x1f],
      [0xa0, 0x2ff],
      [0x400, 0x4ff],
      [0x4e00, 0x4fff],
      [0xd800, 0xdfff],
      [0x1f600, 0x1f64f],
      [0xfeff, 0xfeff],
      [0x202e, 0x202e],
    ];
    let out = '';
    for (let i = 0; i < length; i++) {
      const [lo, hi] = this.pick(ranges);
      out += String.fromCodePoint(lo + this.int(hi - lo + 1));
    }
    return out;
  }
  bytes(length: number): Buffer {
    return Buffer.from(Array.from({length}, () => this.int(256)));
  }
  value(depth = 0): Json {
    switch (this.int(depth > 2 ? 9 : 11)) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1, 0.5, -0, 1e308, -1e308, 2 ** 53 + 1, 100001, 65, 17, 4294967296]);
      case 3:
        return this.pick([
          '',
          ' ',
          '10s',
          'ten seconds',
          '-5ms',
          '1e3s',
          '${TARGET}',
          '${',
          '${NOPE}',
          '$$',
          '${A:-}',
          'UNAVAILABLE',
          'unavailable',
          '-',
          '.',
          '/',
          '\\',
          'null',
          '~',
        ]);
      case 4:
        return this.unicode(this.int(12));
      case 5:
        return 'x'.repeat(this.int(5000));
      case 6:
        return this.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']);
      case 7:
        return this.pick([DEMO_PROTO, DEMO_METHOD, 'demo.v1.DemoService/Nope', 'a/b/c', '/', 'input.jsonl', '127.0.0.1:1']);
      case 8:
        return String(this.int(1000));
      case 9:
        return Array.from({length: this.int(4)}, () => this.value(depth + 1));
      default: {
        const out: {[key: string]: Json} = {};
        for (let i = this.int(4); i > 0; i--) out[this.key()] = this.value(depth + 1);
        return out;
      }
    }
  }
  key(): string {
    return this.pick([
      ...KEYS,
      ...KEYS,
      'concurrancy',
      'retry.maxAttempts',
      '__proto__',
      'constructor',
      'prototype',
      '',
      ' ',
      this.unicode(1 + this.int(6)),
      'maxAttempts',
      'ca',
      'grpc.service_config',
      'grpc.keepalive_time_ms',
      'methodConfig',
      'retryPolicy',
    ]);
  }
}

const KEYS = [
  'name',
  'target',
  'proto',
  'importPaths',
  'method',
  'input',
  'concurrency',
  'rps',
  'deadline',
  'waitForReady',
  'channels',
  'retry',
  'metadata',
  'tls',
  'channelOptions',
  'output',
  'failures',
];

function baseJob(): {[key: string]: Json} {
  return {
    name: 'fuzz',
    target: '${TARGET}',
    proto: DEMO_PROTO,
    method: DEMO_METHOD,
    input: 'input.jsonl',
    concurrency: 8,
    rps: 0,
    deadline: '10s',
    waitForReady: false,
    channels: 1,
    retry: {
      maxAttempts: 3,
      initialBackoff: '100ms',
      maxBackoff: '2s',
      backoffMultiplier: 2,
      retryableStatusCodes: ['UNAVAILABLE', 'DEADLINE_EXCEEDED'],
    },
    metadata: {'x-team': 'batch', 'trace-bin': 'AAEC'},
    channelOptions: {
      'grpc.keepalive_time_ms': 30000,
      'grpc.service_config': {
        methodConfig: [
          {
            name: [{service: 'demo.v1.DemoService'}],
            retryPolicy: {
              maxAttempts: 3,
              initialBackoff: '0.1s',
              maxBackoff: '1s',
              backoffMultiplier: 2,
              retryableStatusCodes: ['UNAVAILABLE'],
            },
          },
        ],
      },
    },
    output: 'out/{name}-{runId}.jsonl',
    failures: 'out/{name}-{runId}.failed.jsonl',
  };
}

/** Every [container, key] in a job, so a mutation can reach nested keys too. */
function slots(
  value: Json,
  out: [Json[] | {[key: string]: Json}, string | number][] = [],
): [Json[] | {[key: string]: Json}, string | number][] {
  if (Array.isArray(value)) value.forEach((v, i) => (out.push([value, i]), slots(v, out)));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push([value, k]), slots(v, out);
  return out;
}

function set(container: Json[] | {[key: string]: Json}, key: string | number, value: Json): void {
  if (Array.isArray(container)) container[key as number] = value;
  else Object.defineProperty(container, key, {value, enumerable: true, writable: true, configurable: true}); // `__proto__` as an own key
}

/** A structural mutation: the job object changes, then it is written as YAML or JSON. */
function mutateTree(f: Fuzzer, job: {[key: string]: Json}): void {
  for (let n = 1 + f.int(3); n > 0; n--) {
    const all = slots(job);
    const [container, key] = f.pick(all);
    switch (f.int(6)) {
      case 0: // delete a key
        if (Array.isArray(container)) container.splice(key as number, 1);
        else delete container[key as string];
        break;
      case 1: // swap the value's type
        set(container, key, f.value());
        break;
      case 2: // add a key, known or not
        if (!Array.isArray(container)) set(container, f.key(), f.value());
        break;
      case 3: // a key of the prototype chain
        set(job, f.pick(['__proto__', 'constructor', 'prototype']), f.chance(0.5) ? {target: 'evil:1', polluted: true} : f.value());
        break;
      case 4: // deep nesting
        set(container, key, nest(f.int(2) === 0 ? 'list' : 'map', 20 + f.int(200)));
        break;
      default: // huge numbers
        set(container, key, f.pick([1e308 * 10, -(1e308 * 10), Number.MAX_VALUE, Number.MIN_VALUE, 2 ** 64, -(2 ** 63)]));
    }
  }
}

function nest(kind: 'list' | 'map', depth: number): Json {
  let value: Json = 'deep';
  for (let i = 0; i < depth; i++) value = kind === 'list' ? [value] : {a: value};
  return value;
}

/** Text-level mutations of an already written job file. */
function mutateText(f: Fuzzer, text: string): string | Buffer {
  switch (f.int(12)) {
    case 0: // truncate
      return text.slice(0, f.int(text.length));
    case 1: {
      // random bytes somewhere
      const at = f.int(text.length);
      return Buffer.concat([Buffer.from(text.slice(0, at)), f.bytes(1 + f.int(16)), Buffer.from(text.slice(at))]);
    }
    case 2: // nothing but random bytes
      return f.bytes(f.int(300));
    case 3: {
      // random unicode somewhere
      const at = f.int(text.length);
      return text.slice(0, at) + f.unicode(1 + f.int(8)) + text.slice(at);
    }
    case 4: {
      // duplicate a line (duplicate key)
      const lines = text.split('\n');
      const i = f.int(lines.length);
      lines.splice(i, 0, lines[i]!);
      return lines.join('\n');
    }
    case 5: {
      // delete a line
      const lines = text.split('\n');
      lines.splice(f.int(lines.length), 1);
      return lines.join('\n');
    }
    case 6: // anchors and aliases, up to a "billion laughs"
      return f.pick([
        `${text}\nx-base: &base {concurrency: 3}\n`,
        `base: &b\n  concurrency: 3\n<<: *b\n${text}`,
        'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n',
        `${text}\nmetadata: *nowhere\n`,
        `target: &t 127.0.0.1:1\nname: *t\n${text.replace(/^target:.*$/m, '')}`,
        '&a [*a]\n',
      ]);
    case 7: // tags
      return text.replace(
        /^(\w+): /m,
        `$1: ${f.pick(['!!binary', '!!set', '!!omap', '!!timestamp', '!!int', '!!float', '!!str', '!!map', '!!seq', '!!null', '!!bool', '!js/function', '!<tag:yaml.org,2002:binary>', '!custom'])} `,
      );
    case 8: // deep nesting in flow style
      return `${text}\nchannelOptions: ${'['.repeat(1000 + f.int(5000))}${f.chance(0.5) ? ']'.repeat(3000) : ''}\n`;
    case 9: // odd documents and directives
      return f.pick([
        `---\n${text}\n---\nname: second\n`,
        `%YAML 1.1\n---\n${text}`,
        `%TAG ! tag:example.com,2000:\n---\n${text}`,
        '...\n',
        '---\n',
        '~\n',
        '[]\n',
        '"just a string"\n',
        '42\n',
        `\ufeff${text}`,
        text.replace(/\n/g, '\r\n'),
        text.replace(/\n/g, '\r'),
        text.replace(/: /g, ':\t'),
      ]);
    case 10: // ${VAR} edge cases
      return text.replace(
        /127\.0\.0\.1:1|\$\{TARGET\}/,
        f.pick([
          '${',
          '${}',
          '${TARGET',
          '${1X}',
          '${TARGET:-}',
          '${UNSET_FUZZ_VAR}',
          '$${TARGET}',
          '${TARGET:-${TARGET}}',
          '${__proto__}',
          '${constructor}',
          '${toString}',
        ]),
      );
    default: // flip a few characters
      return Array.from(text, (c) =>
        f.chance(0.02)
          ? f.pick(['{', '}', '[', ']', ':', '-', '"', "'", '&', '*', '!', '|', '>', '#', '%', '@', '`', ',', '?', '\t', '\n', ' '])
          : c,
      ).join('');
  }
}

test(`loadJob ends every one of ${CASES} fuzzed job files in a job or a ValidationError`, async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'input.jsonl'), '{"id":"a"}\n');
  const f = new Fuzzer(SEED);
  const env = {TARGET: '127.0.0.1:1'};
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort().join();
  const outcomes = {valid: 0, invalid: 0};

  for (let i = 0; i < CASES; i++) {
    const job = baseJob();
    const asJson = f.chance(0.3);
    if (f.chance(0.7)) mutateTree(f, job);
    let text: string | Buffer = asJson ? JSON.stringify(job, null, 2) : stringify(job, {aliasDuplicateObjects: false});
    if (f.chance(0.6)) text = mutateText(f, text);
    const file = path.join(dir, `case-${i}.${asJson ? 'json' : 'yaml'}`);
    writeFileSync(file, text);
    try {
      const loaded = await loadJob(file, {}, env);
      outcomes.valid++;
      assert.equal(typeof loaded.spec.target, 'string');
      assert.ok(loaded.spec.concurrency >= 1, `case ${i}: concurrency ${loaded.spec.concurrency}`);
      assert.ok(Number.isFinite(loaded.spec.deadlineMs), `case ${i}: deadline ${loaded.spec.deadlineMs}`);
    } catch (error) {
      if (!(error instanceof ValidationError)) {
        assert.fail(
          `case ${i} (${file}) threw ${error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error)}\n--- job file ---\n${String(text).slice(0, 2000)}`,
        );
      }
      outcomes.invalid++;
      assert.ok(error.issues.length > 0, `case ${i}: a ValidationError with no issue`);
      for (const issue of error.issues) {
        assert.equal(typeof issue.message, 'string');
        assert.ok(
          issue.message.length > 0 && issue.message.length < 5000,
          `case ${i}: message of ${issue.message.length} chars: ${issue.message.slice(0, 300)}`,
        );
        assert.ok(issue.file.includes(`case-${i}.`), `case ${i}: the issue names ${issue.file}`);
        assert.doesNotMatch(issue.message, /\[object Object\]|undefined$/, `case ${i}: ${issue.message}`);
      }
    }
    assert.equal(Object.getOwnPropertyNames(Object.prototype).sort().join(), prototypeKeys, `case ${i} polluted Object.prototype`);
    assert.equal(({} as {polluted?: unknown}).polluted, undefined, `case ${i} polluted Object.prototype`);
  }
  t.diagnostic(`valid: ${outcomes.valid}, invalid: ${outcomes.invalid}`);
  // The mix must exercise both ends, or the mutations are too weak (or too strong).
  assert.ok(outcomes.valid >= CASES * 0.1, `only ${outcomes.valid} valid cases`);
  assert.ok(outcomes.invalid >= CASES * 0.3, `only ${outcomes.invalid} invalid cases`);
});
