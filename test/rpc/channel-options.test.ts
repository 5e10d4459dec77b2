import {createRequire} from 'node:module';
import {describe, it} from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import {checkChannelOptions, KNOWN_CHANNEL_OPTIONS} from '../../src/rpc/channel-options.js';

const SC = 'grpc.service_config';
const FILE = 'job.yaml';

const retryPolicy = {
  maxAttempts: 4,
  initialBackoff: '0.1s',
  maxBackoff: '1s',
  backoffMultiplier: 2,
  retryableStatusCodes: ['UNAVAILABLE', 'unavailable', 4],
};

const fullServiceConfig = {
  loadBalancingConfig: [{round_robin: {}}],
  retryThrottling: {maxTokens: 10, tokenRatio: 0.1},
  methodConfig: [
    {name: [{service: 'pkg.Service', method: 'Get'}], waitForReady: true, timeout: '10s', retryPolicy},
    {
      name: [{service: 'pkg.Other'}],
      timeout: '0.250000000s',
      hedgingPolicy: {maxAttempts: 3, hedgingDelay: '0.5s', nonFatalStatusCodes: ['UNAVAILABLE']},
    },
    {name: [{}], waitForReady: false},
  ],
};

const withMethodConfig = (entry: Record<string, unknown>) => ({[SC]: {methodConfig: [{name: [{service: 'pkg.Service'}], ...entry}]}});

interface Expected {
  severity: 'error' | 'warning';
  /** A word the message must contain. */
  word: string;
  /** The exact issue path, when it matters. */
  path?: string;
}

const cases: {name: string; options: unknown; keyPath?: string; expect: Expected[]}[] = [
  {
    name: 'valid options produce no issues',
    options: {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.primary_user_agent': 'grpc-batch/0.1',
      'grpc.default_compression_algorithm': 2,
      'grpc-node.retry_max_attempts_limit': 5,
    },
    expect: [],
  },
  {name: 'an empty map produces no issues', options: {}, expect: []},
  {
    name: 'a list instead of a map is an error',
    options: [['grpc.keepalive_time_ms', 1]],
    expect: [{severity: 'error', word: 'expected a map of grpc-js channel options', path: 'channelOptions'}],
  },
  {name: 'null instead of a map is an error', options: null, expect: [{severity: 'error', word: 'got null'}]},
  {
    name: 'the key prefix can be changed',
    options: {'grpc.keepalive_time': 1},
    keyPath: 'jobs[0].channelOptions',
    expect: [{severity: 'warning', word: 'unknown', path: 'jobs[0].channelOptions.grpc.keepalive_time'}],
  },
  {
    name: 'an unknown option name is a warning that suggests the known one',
    options: {'grpc.keepalive_time': 10_000},
    expect: [
      {
        severity: 'warning',
        word: 'unknown channel option; grpc-js ignores it (did you mean "grpc.keepalive_time_ms"?)',
        path: 'channelOptions.grpc.keepalive_time',
      },
    ],
  },
  {
    name: 'an unknown option with nothing close is a warning without a suggestion',
    options: {'my.option': 1},
    expect: [{severity: 'warning', word: 'ignores it'}],
  },
  {
    name: 'a C-core-only option is a warning that grpc-js does not implement it',
    options: {'grpc.http2.max_ping_strikes': 2},
    expect: [{severity: 'warning', word: 'C-core'}],
  },
  {
    name: 'a server-only option is a warning that a client ignores it',
    options: {'grpc.max_concurrent_streams': 100},
    expect: [{severity: 'warning', word: 'server-side'}],
  },
  {
    name: 'a duration string for a millisecond option is an error',
    options: {'grpc.keepalive_time_ms': '10s'},
    expect: [{severity: 'error', word: 'expected a number, got "10s" (string)', path: 'channelOptions.grpc.keepalive_time_ms'}],
  },
  {
    name: 'an infinite number is an error',
    options: {'grpc.keepalive_timeout_ms': Infinity},
    expect: [{severity: 'error', word: 'expected a number'}],
  },
  {
    name: 'true for a 0/1 flag is an error because grpc-js ignores it',
    options: {'grpc.enable_retries': false},
    expect: [{severity: 'error', word: '0 or 1'}],
  },
  {
    name: 'a compression name instead of its number is an error',
    options: {'grpc.default_compression_algorithm': 'gzip'},
    expect: [{severity: 'error', word: '2 (gzip)'}],
  },
  {
    name: 'a number for a string option is an error',
    options: {'grpc.default_authority': 443},
    expect: [{severity: 'error', word: 'expected a string'}],
  },
  {name: 'a correct full service config as JSON produces no issues', options: {[SC]: JSON.stringify(fullServiceConfig)}, expect: []},
  {name: 'a correct full service config as a plain object is also accepted', options: {[SC]: fullServiceConfig}, expect: []},
  {
    name: 'a service config that is neither JSON text nor a map is an error',
    options: {[SC]: 42},
    expect: [{severity: 'error', word: 'JSON string or a map'}],
  },
  {
    name: 'a service config with bad JSON is an error naming the JSON problem',
    options: {[SC]: '{"methodConfig": ['},
    expect: [{severity: 'error', word: 'invalid JSON', path: `channelOptions.${SC}`}],
  },
  {
    name: 'a retryPolicy at the top of the service config is an error saying it belongs inside methodConfig',
    options: {[SC]: JSON.stringify({retryPolicy})},
    expect: [{severity: 'error', word: 'belongs inside a methodConfig entry', path: `channelOptions."${SC}".retryPolicy`}],
  },
  {
    name: 'retryThrottling inside a methodConfig entry is an error saying it belongs at the top level',
    options: withMethodConfig({retryThrottling: {maxTokens: 10, tokenRatio: 0.1}}),
    expect: [{severity: 'error', word: 'top level'}],
  },
  {
    name: 'a misspelled maxAttempt is one error suggesting maxAttempts',
    options: withMethodConfig({retryPolicy: {...retryPolicy, maxAttempts: undefined, maxAttempt: 3}}),
    expect: [
      {severity: 'error', word: 'did you mean "maxAttempts"?', path: `channelOptions."${SC}".methodConfig[0].retryPolicy.maxAttempt`},
    ],
  },
  {
    name: 'a missing retry policy field is an error naming what was expected',
    options: withMethodConfig({retryPolicy: {...retryPolicy, initialBackoff: undefined}}),
    expect: [{severity: 'error', word: 'missing required key', path: `channelOptions."${SC}".methodConfig[0].retryPolicy.initialBackoff`}],
  },
  {
    name: 'a misspelled status name is an error suggesting the right one',
    options: withMethodConfig({retryPolicy: {...retryPolicy, retryableStatusCodes: ['UNAVAILBLE']}}),
    expect: [
      {
        severity: 'error',
        word: 'did you mean "UNAVAILABLE"?',
        path: `channelOptions."${SC}".methodConfig[0].retryPolicy.retryableStatusCodes[0]`,
      },
    ],
  },
  {
    name: 'an empty retryableStatusCodes list is an error',
    options: withMethodConfig({retryPolicy: {...retryPolicy, retryableStatusCodes: []}}),
    expect: [{severity: 'error', word: 'non-empty'}],
  },
  {
    name: 'maxAttempts of 1 is an error because the first attempt counts',
    options: withMethodConfig({retryPolicy: {...retryPolicy, maxAttempts: 1}}),
    expect: [{severity: 'error', word: 'from 2 up'}],
  },
  {
    name: 'a backoff in milliseconds is an error asking for seconds',
    options: withMethodConfig({retryPolicy: {...retryPolicy, maxBackoff: '500ms'}}),
    expect: [{severity: 'error', word: 'in seconds'}],
  },
  {
    name: 'a retryPolicy and a hedgingPolicy together are an error',
    options: withMethodConfig({retryPolicy, hedgingPolicy: {maxAttempts: 2}}),
    expect: [{severity: 'error', word: 'mutually exclusive', path: `channelOptions."${SC}".methodConfig[0]`}],
  },
  {
    name: 'a retryThrottling maxTokens above 1000 is an error',
    options: {[SC]: {retryThrottling: {maxTokens: 5000, tokenRatio: 1}}},
    expect: [{severity: 'error', word: 'at most 1000'}],
  },
  {
    name: 'a load balancing entry with two keys is one error',
    options: {[SC]: {loadBalancingConfig: [{round_robin: {}, pick_first: {}}]}},
    expect: [{severity: 'error', word: 'single-key'}],
  },
  {
    name: 'a misspelled load balancing policy is an error suggesting the right one',
    options: {[SC]: {loadBalancingConfig: [{roundrobin: {}}]}},
    expect: [{severity: 'error', word: 'did you mean "round_robin"?'}],
  },
  {
    name: 'an unusable load balancing entry before a usable one is only a warning',
    options: {[SC]: {loadBalancingConfig: [{xds_wrr: {}}, {round_robin: {}}]}},
    expect: [{severity: 'warning', word: 'skips this entry'}],
  },
  {
    name: 'loadBalancingPolicy is a warning because grpc-js ignores it',
    options: {[SC]: {loadBalancingPolicy: 'round_robin'}},
    expect: [{severity: 'warning', word: 'loadBalancingConfig'}],
  },
  {
    name: 'a method name without a service is an error',
    options: {[SC]: {methodConfig: [{name: [{method: 'Get'}]}]}},
    expect: [{severity: 'error', word: 'without a service'}],
  },
  {
    name: 'the same method name in two entries is an error',
    options: {[SC]: {methodConfig: [{name: [{service: 'pkg.Service'}]}, {name: [{service: 'pkg.Service'}]}]}},
    expect: [{severity: 'error', word: 'once', path: `channelOptions."${SC}".methodConfig[1].name[0]`}],
  },
  {
    name: 'a fractional timeout is an error because grpc-js reads the fraction as nanoseconds',
    options: withMethodConfig({timeout: '1.5s'}),
    expect: [{severity: 'error', word: '1.500000000s'}],
  },
  {
    name: 'maxAttempts above the grpc-js limit is a warning that it is capped',
    options: withMethodConfig({retryPolicy: {...retryPolicy, maxAttempts: 8}}),
    expect: [{severity: 'warning', word: 'caps maxAttempts at 5'}],
  },
  {
    name: 'maxRequestMessageBytes is a warning because grpc-js ignores it',
    options: withMethodConfig({maxRequestMessageBytes: 1024}),
    expect: [{severity: 'warning', word: 'grpc.max_send_message_length'}],
  },
];

describe('checkChannelOptions', () => {
  for (const {name, options, keyPath, expect} of cases) {
    it(name, () => {
      const issues = checkChannelOptions(options, FILE, keyPath);
      const shown = issues.map((i) => `[${i.severity}] ${i.path}: ${i.message}`).join('\n');
      assert.equal(issues.length, expect.length, `expected ${expect.length} issue(s), got:\n${shown}`);
      expect.forEach((want, index) => {
        const issue = issues[index]!;
        assert.equal(issue.file, FILE);
        assert.equal(issue.severity, want.severity, shown);
        assert.ok(issue.message.includes(want.word), `expected "${want.word}" in: ${issue.message}`);
        if (want.path !== undefined) assert.equal(issue.path, want.path);
      });
    });
  }

  it('never throws, even on values that cannot be written as JSON', () => {
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    for (const options of [undefined, 1n, Symbol('x'), {[SC]: circular}, {[SC]: {methodConfig: 1n}}, {'grpc.keepalive_time_ms': 1n}]) {
      assert.doesNotThrow(() => checkChannelOptions(options, FILE));
      assert.ok(checkChannelOptions(options, FILE).some((i) => i.severity === 'error'));
    }
  });

  it('knows every option the installed grpc-js recognises', () => {
    const {recognizedOptions} = createRequire(import.meta.url)('@grpc/grpc-js/build/src/channel-options.js') as {
      recognizedOptions: Record<string, boolean>;
    };
    const missing = Object.keys(recognizedOptions).filter((key) => !KNOWN_CHANNEL_OPTIONS.has(key));
    assert.deepEqual(missing, []);
  });

  it('passes a service config that grpc-js itself then accepts', () => {
    const options = {'grpc.keepalive_time_ms': 10_000, [SC]: JSON.stringify(fullServiceConfig)};
    assert.deepEqual(checkChannelOptions(options, FILE), []);
    const client = new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure(), options);
    client.close();
  });

  it('catches a service config that grpc-js would reject when the channel is created', () => {
    const options = withMethodConfig({retryPolicy: {...retryPolicy, maxAttempts: 1}});
    const json = {[SC]: JSON.stringify(options[SC])};
    assert.ok(checkChannelOptions(json, FILE).some((i) => i.severity === 'error'));
    assert.throws(() => new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure(), json), /maxAttempts/);
  });
});
