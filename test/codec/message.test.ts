import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import protobuf from 'protobufjs';
import {MessageError} from '../../src/codec/message.js';
import {loadMethod} from '../../src/schema/method-handle.js';
import {DEMO_METHOD, DEMO_PROTO, PACKAGE_ROOT} from '../../src/util/paths.js';

const LEGACY_PROTO = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'protos', 'legacy.proto');
const demo = loadMethod({proto: DEMO_PROTO, method: DEMO_METHOD});
const legacy = loadMethod({proto: LEGACY_PROTO, method: 'legacy.v1.LegacyService/Put'});
const demoType = protobuf.loadSync(DEMO_PROTO).lookupType('demo.v1.ProcessRequest');
const legacyType = protobuf.loadSync(LEGACY_PROTO).lookupType('legacy.v1.PutRequest');

/** Encodes `json` (a JSONL line) and decodes it back, so a test sees what the server would get. */
function roundTrip(json: string, method = demo, type = demoType): Record<string, unknown> {
  const bytes = method.encodeRequest(JSON.parse(json));
  return type.toObject(type.decode(bytes), {longs: String, enums: String, bytes: String}) as Record<string, unknown>;
}

function rejection(json: string, method = demo): MessageError {
  try {
    method.encodeRequest(JSON.parse(json));
  } catch (error) {
    assert.ok(error instanceof MessageError, `expected a MessageError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${json} to be rejected`);
}

/** [case, JSONL line, field path named, words the message must hold]. */
const REJECTED: readonly [string, string, string, readonly string[]][] = [
  ['a JSON array', '[1,2]', '', ['expected a JSON object for ProcessRequest', 'an array']],
  ['a JSON number', '42', '', ['expected a JSON object', '42 (number)']],
  ['a JSON string', '"id"', '', ['expected a JSON object', '"id" (string)']],
  ['JSON null', 'null', '', ['expected a JSON object', 'null']],
  [
    'an unknown field, with a suggestion',
    '{"cont":3}',
    'cont',
    ['unknown field of ProcessRequest', 'did you mean "count"', 'fields: id, payload'],
  ],
  ['a string where an int32 goes', '{"count":"many"}', 'count', ['expected an integer (int32)', '"many"']],
  ['a fraction where an int32 goes', '{"count":1.5}', 'count', ['expected an integer (int32)', '1.5']],
  ['an int32 above its range', '{"count":2147483648}', 'count', ['out of range for int32', '-2147483648 to 2147483647']],
  ['an int32 below its range', '{"count":-2147483649}', 'count', ['out of range for int32']],
  ['a negative uint32', '{"latencyMs":-1}', 'latencyMs', ['-1 is out of range for uint32', '0 to 4294967295']],
  [
    'an int64 beyond its range, as a string',
    '{"amount":"9223372036854775808"}',
    'amount',
    ['out of range for int64', '9223372036854775807'],
  ],
  ['an int64 too big for a JSON number', '{"amount":9223372036854775807}', 'amount', ['as a decimal string', 'quote it']],
  ['an int64 in exponent form', '{"amount":"1e3"}', 'amount', ['expected an integer (int64)', '"1e3"']],
  ['bytes that are not base64', '{"blob":"!!!"}', 'blob', ['expected base64 bytes', '"!!!"']],
  ['base64 of an impossible length', '{"blob":"a"}', 'blob', ['expected base64 bytes', '"a"']],
  ['base64 with wrong padding', '{"blob":"ab="}', 'blob', ['expected base64 bytes']],
  [
    'an enum name that does not exist',
    '{"priority":"PRIORITY_HI"}',
    'priority',
    ['"PRIORITY_HI" is not a value of enum Priority', 'did you mean "PRIORITY_HIGH"', 'PRIORITY_LOW'],
  ],
  ['an enum given as a fraction', '{"priority":1.5}', 'priority', ['expected an enum Priority name or int32 number']],
  ['a string for a bool', '{"flag":"true"}', 'flag', ['expected true or false', '"true" (string)']],
  ['a number for a string', '{"id":5}', 'id', ['expected a string', '5 (number)']],
  ['a lone surrogate in a string', '{"payload":"a\\ud800b"}', 'payload', ['expected valid Unicode text', 'lone surrogate']],
  ['a wrong type inside a nested message', '{"nested":{"level":"x"}}', 'nested.level', ['expected an integer (int32)']],
  ['an unknown field inside a nested message', '{"nested":{"lvl":1}}', 'nested.lvl', ['unknown field of Nested', 'note, level']],
  ['a nested message that is not an object', '{"nested":7}', 'nested', ['expected a JSON object for Nested']],
  ['a wrong element of a repeated field', '{"tags":["a",2]}', 'tags[1]', ['expected a string', '2 (number)']],
  ['a null element of a repeated field', '{"tags":["a",null]}', 'tags[1]', ['expected a string', 'null']],
  ['a repeated field that is not an array', '{"tags":"a"}', 'tags', ['expected a JSON array (repeated string)']],
  ['a wrong map value', '{"labels":{"env":1}}', 'labels["env"]', ['expected a string', '1 (number)']],
  ['a map that is not an object', '{"labels":["a"]}', 'labels', ['expected a JSON object (map<string, string>)', 'an array']],
  ['a double spelled in lower case', '{"score":"nan"}', 'score', ['expected a number (double)', '"NaN", "Infinity", "-Infinity"']],
  ['a double string that overflows', '{"score":"1e400"}', 'score', ['expected a number (double)']],
  ['a double number that overflows', '{"score":1e400}', 'score', ['too large for a double', 'write "Infinity" as a string']],
  ['one field under both its names', '{"latencyMs":1,"latency_ms":2}', 'latency_ms', ['already set as "latencyMs"']],
  ['a __proto__ key', '{"__proto__":{"id":"x"}}', '__proto__', ['unknown field of ProcessRequest']],
  ['a constructor key', '{"constructor":1}', 'constructor', ['unknown field of ProcessRequest']],
];

for (const [name, json, fieldPath, words] of REJECTED) {
  test(`rejects ${name} and names the field`, () => {
    const error = rejection(json);
    assert.equal(error.path, fieldPath);
    if (fieldPath) assert.ok(error.message.startsWith(`${fieldPath}: `), error.message);
    for (const word of words) assert.ok(error.message.includes(word), `"${error.message}" should include "${word}"`);
  });
}

/** proto2 and key/float checks, on test/fixtures/protos/legacy.proto. */
const REJECTED_LEGACY: readonly [string, string, string, readonly string[]][] = [
  ['a missing required field', '{"value":"v"}', 'key', ['missing required field of PutRequest', 'string']],
  ['a required field given as null', '{"key":null}', 'key', ['missing required field of PutRequest']],
  ['a missing required field in a nested message', '{"key":"k","inner":{}}', 'inner.level', ['missing required field of Inner', 'int32']],
  [
    'an int32 map key that is not a number',
    '{"key":"k","codes":{"x":"a"}}',
    'codes["x"]',
    ['expected a map key that is an integer (int32)'],
  ],
  ['an int32 map key out of range', '{"key":"k","codes":{"99999999999":"a"}}', 'codes["99999999999"]', ['out of range for int32']],
  ['a bool map key that is not true or false', '{"key":"k","flags":{"yes":"a"}}', 'flags["yes"]', ['"true" or "false"']],
  ['a float beyond float32', '{"key":"k","ratio":1e39}', 'ratio', ['out of range for float']],
  ['a negative uint64', '{"key":"k","big":-1}', 'big', ['out of range for uint64']],
];

for (const [name, json, fieldPath, words] of REJECTED_LEGACY) {
  test(`rejects ${name} (proto2 fixture)`, () => {
    const error = rejection(json, legacy);
    assert.equal(error.path, fieldPath);
    for (const word of words) assert.ok(error.message.includes(word), `"${error.message}" should include "${word}"`);
  });
}

test('accepts "NaN", "Infinity" and "-Infinity" as strings for a double', () => {
  assert.ok(Number.isNaN(roundTrip('{"score":"NaN"}')['score']));
  assert.equal(roundTrip('{"score":"Infinity"}')['score'], Infinity);
  assert.equal(roundTrip('{"score":"-Infinity"}')['score'], -Infinity);
});

test('accepts a double given as a number or a numeric string', () => {
  assert.equal(roundTrip('{"score":1.25}')['score'], 1.25);
  assert.equal(roundTrip('{"score":"1.25"}')['score'], 1.25);
  assert.equal(roundTrip('{"score":-0.5e3}')['score'], -500);
});

test('accepts int64 at both ends of its range as decimal strings, and a safe integer as a number', () => {
  assert.equal(roundTrip('{"amount":"9223372036854775807"}')['amount'], '9223372036854775807');
  assert.equal(roundTrip('{"amount":"-9223372036854775808"}')['amount'], '-9223372036854775808');
  assert.equal(roundTrip('{"amount":9007199254740991}')['amount'], '9007199254740991');
});

test('accepts int32 and uint32 at the edges of their ranges, and as strings', () => {
  assert.equal(roundTrip('{"count":2147483647}')['count'], 2147483647);
  assert.equal(roundTrip('{"count":-2147483648}')['count'], -2147483648);
  assert.equal(roundTrip('{"count":"12"}')['count'], 12);
  assert.equal(roundTrip('{"latencyMs":4294967295}')['latencyMs'], 4294967295);
});

test('accepts standard and URL-safe base64, with or without padding', () => {
  assert.equal(roundTrip('{"blob":"aGVsbG8="}')['blob'], 'aGVsbG8=');
  assert.equal(roundTrip('{"blob":"aGVsbG8"}')['blob'], 'aGVsbG8=');
  assert.equal(roundTrip('{"blob":"-_8"}')['blob'], '+/8=');
  assert.equal(roundTrip('{"blob":""}')['blob'], '');
});

test('accepts both the JSON name and the proto name of a field', () => {
  assert.deepEqual(demo.encodeRequest({latencyMs: 5}), demo.encodeRequest({latency_ms: 5}));
  assert.equal(roundTrip('{"latency_ms":5}')['latencyMs'], 5);
});

test('treats null as the default value, for a message field too', () => {
  assert.deepEqual(roundTrip('{"id":"a","nested":null,"count":null}'), {id: 'a'});
});

test('accepts enums by name and by number, unknown numbers included (proto3 enums are open)', () => {
  assert.equal(roundTrip('{"priority":"PRIORITY_HIGH"}')['priority'], 'PRIORITY_HIGH');
  assert.equal(roundTrip('{"priority":1}')['priority'], 'PRIORITY_LOW');
  assert.equal(roundTrip('{"priority":7}')['priority'], 7);
});

test('encodes nested, repeated and map fields as given', () => {
  const decoded = roundTrip('{"id":"x","tags":["a","b"],"labels":{"env":"prod"},"nested":{"note":"n","level":3},"flag":true}');
  assert.deepEqual(decoded, {id: 'x', tags: ['a', 'b'], labels: {env: 'prod'}, nested: {note: 'n', level: 3}, flag: true});
});

test('accepts a proto2 message once its required fields are set', () => {
  const bytes = legacy.encodeRequest({key: 'k', inner: {level: 1}, codes: {'-3': 'a'}, flags: {true: 'y'}, big: '18446744073709551615'});
  const decoded = legacyType.toObject(legacyType.decode(bytes), {longs: String}) as Record<string, unknown>;
  assert.deepEqual(decoded, {key: 'k', inner: {level: 1}, codes: {'-3': 'a'}, flags: {true: 'y'}, big: '18446744073709551615'});
});
