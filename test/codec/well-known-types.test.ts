import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import protobuf from 'protobufjs';
import {loadMethod} from '../../src/schema/method-handle.js';
import {messageToJson} from '../../src/codec/response-json.js';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'protos', 'wkt.proto');
const method = loadMethod({proto: PROTO, method: 'wkt.v1.S/Put'});
const rich = loadMethod({proto: PROTO, method: 'wkt.v1.S/Get'});
const root = protobuf.loadSync(PROTO);

/** Encodes a `wkt.v1.Rich` response as a server would send it (protobufjs, plain message objects). */
function richResponse(object: Record<string, unknown>): Buffer {
  const type = root.lookupType('wkt.v1.Rich');
  return Buffer.from(type.encode(type.fromObject(object)).finish());
}

test('takes Timestamp, Duration and wrapper fields in their proto3 JSON forms, and gives them back so', () => {
  const bytes = method.encodeRequest({at: '2024-01-31T12:00:00.5Z', ttl: '1.5s', big: '9007199254740993', note: 'hi'});
  assert.deepEqual(method.decodeResponse(bytes), {at: '2024-01-31T12:00:00.500Z', ttl: '1.500s', big: '9007199254740993', note: 'hi'});
});

test('a response with every well-known type decodes to proto3 JSON', () => {
  const bytes = richResponse({
    at: {seconds: 1706702400, nanos: 123_456_000},
    ttl: {seconds: -2, nanos: -500_000_000},
    big: {value: '9007199254740993'},
    note: {value: ''},
    flag: {value: true},
    blob: {value: Buffer.from('hi')},
    ratio: {value: 0.25},
    count: {},
    attrs: {
      fields: {
        name: {stringValue: 'x'},
        n: {numberValue: 1.5},
        ok: {boolValue: false},
        none: {nullValue: 0},
        list: {listValue: {values: [{numberValue: 1}, {stringValue: 'a'}, {structValue: {fields: {deep: {boolValue: true}}}}]}},
      },
    },
    anyValue: {stringValue: 'v'},
    list: {values: [{numberValue: 2}]},
    updateMask: {paths: ['user.display_name', 'created_at']},
    history: [{seconds: 0}, {seconds: 1, nanos: 1}],
    timeouts: {fast: {nanos: 250_000_000}, slow: {seconds: 30}},
    inner: {createdAt: {seconds: 86400}, name: 'a', child: {createdAt: {seconds: 60}, name: 'b'}},
    nothing: {},
    score: Number.NaN,
    total: '-9007199254740993',
  });
  assert.deepEqual(rich.decodeResponse(bytes), {
    at: '2024-01-31T12:00:00.123456Z',
    ttl: '-2.500s',
    big: '9007199254740993',
    note: '',
    flag: true,
    blob: 'aGk=',
    ratio: 0.25,
    count: 0,
    attrs: {name: 'x', n: 1.5, ok: false, none: null, list: [1, 'a', {deep: true}]},
    anyValue: 'v',
    list: [2],
    updateMask: 'user.displayName,createdAt',
    history: ['1970-01-01T00:00:00Z', '1970-01-01T00:00:01.000000001Z'],
    timeouts: {fast: '0.250s', slow: '30s'},
    inner: {createdAt: '1970-01-02T00:00:00Z', name: 'a', child: {createdAt: '1970-01-01T00:01:00Z', name: 'b'}},
    nothing: {},
    score: 'NaN',
    total: '-9007199254740993',
  });
});

test('well-known types at their proto3 limits', () => {
  const bytes = richResponse({
    at: {seconds: '-62135596800'},
    history: [{seconds: '253402300799', nanos: 999_999_999}],
    ttl: {seconds: '315576000000'},
  });
  assert.deepEqual(rich.decodeResponse(bytes), {
    at: '0001-01-01T00:00:00Z',
    history: ['9999-12-31T23:59:59.999999999Z'],
    ttl: '315576000000s',
  });
  // Beyond them a Timestamp has no RFC 3339 form: the answer keeps the message form instead of failing.
  const beyond = richResponse({at: {seconds: '-62135596801'}, history: [{seconds: '253402300800'}]});
  assert.deepEqual(rich.decodeResponse(beyond), {at: {seconds: '-62135596801'}, history: [{seconds: '253402300800'}]});
});

test('an Any is unpacked when the proto imports its type, and stays packed, losslessly, when not', () => {
  const pack = (typeName: string, object: Record<string, unknown>) => {
    const type = root.lookupType(typeName);
    return {type_url: `type.googleapis.com/${typeName}`, value: type.encode(type.fromObject(object)).finish()};
  };
  assert.deepEqual(rich.decodeResponse(richResponse({packed: pack('wkt.v1.Inner', {createdAt: {seconds: 60}, name: 'b'})})), {
    packed: {'@type': 'type.googleapis.com/wkt.v1.Inner', createdAt: '1970-01-01T00:01:00Z', name: 'b'},
  });
  assert.deepEqual(rich.decodeResponse(richResponse({packed: pack('google.protobuf.Duration', {seconds: 3})})), {
    packed: {'@type': 'type.googleapis.com/google.protobuf.Duration', value: '3s'},
  });
  assert.deepEqual(
    rich.decodeResponse(richResponse({packed: {type_url: 'type.googleapis.com/other.v1.Unknown', value: Buffer.from('zz')}})),
    {
      packed: {'@type': 'type.googleapis.com/other.v1.Unknown', value: 'eno='},
    },
  );
});

test('a recursive message type prints to any depth', () => {
  const inner = root.lookupType('wkt.v1.Inner');
  const bytes = Buffer.from(
    inner.encode(inner.fromObject({name: 'a', child: {name: 'b', child: {name: 'c', createdAt: {seconds: 60}}}})).finish(),
  );
  assert.deepEqual(messageToJson(inner, inner.decode(bytes)), {
    name: 'a',
    child: {name: 'b', child: {name: 'c', createdAt: '1970-01-01T00:01:00Z'}},
  });
});

test('a request with every well-known type in its proto3 JSON form round-trips to the same JSON', () => {
  const echo = loadMethod({proto: PROTO, method: 'wkt.v1.S/Echo'});
  const json = {
    at: '2024-01-31T12:00:00.123456Z',
    ttl: '-2.500s',
    big: '9007199254740993',
    flag: true,
    blob: 'aGk=',
    count: 7,
    attrs: {name: 'x', n: 1.5, ok: false, none: null, list: [1, 'a', {deep: true}], empty: {}},
    anyValue: null,
    list: [2, [3], null],
    updateMask: 'user.displayName,createdAt',
    history: ['1970-01-01T00:00:00Z'],
    timeouts: {fast: '0.250s'},
    inner: {createdAt: '1970-01-02T00:00:00Z', name: 'a'},
    packed: {'@type': 'type.googleapis.com/wkt.v1.Inner', createdAt: '1970-01-01T00:01:00Z', name: 'b'},
  };
  assert.deepEqual(echo.decodeResponse(echo.encodeRequest(json)), json);
  const packedDuration = {packed: {'@type': 'type.googleapis.com/google.protobuf.Duration', value: '3s'}};
  assert.deepEqual(echo.decodeResponse(echo.encodeRequest(packedDuration)), packedDuration);
});

test('refuses malformed Struct, FieldMask and Any values, naming the field', () => {
  const echo = loadMethod({proto: PROTO, method: 'wkt.v1.S/Echo'});
  assert.throws(() => echo.encodeRequest({attrs: [1]}), /^Error: attrs: expected a JSON object \(google.protobuf.Struct\), got an array/);
  assert.throws(() => echo.encodeRequest({list: {a: 1}}), /^Error: list: expected a JSON array \(google.protobuf.ListValue\)/);
  assert.throws(() => echo.encodeRequest({attrs: {s: '\ud800'}}), /^Error: attrs.s: expected valid Unicode text/);
  assert.throws(
    () => echo.encodeRequest(JSON.parse('{"attrs": {"n": [1e400]}}')),
    /^Error: attrs.n\[0\]: expected a number \(double\).*too large for a double/,
  );
  assert.throws(
    () => echo.encodeRequest({updateMask: 'user.display_name'}),
    /^Error: updateMask: expected a field mask of lowerCamelCase field paths/,
  );
  assert.throws(() => echo.encodeRequest({packed: {name: 'b'}}), /^Error: packed: expected a JSON object with an "@type"/);
  assert.throws(
    () => echo.encodeRequest({packed: {'@type': 'type.googleapis.com/other.v1.Nope'}}),
    /^Error: packed.@type: unknown message type "other.v1.Nope"/,
  );
  assert.throws(
    () => echo.encodeRequest({packed: {'@type': 'type.googleapis.com/wkt.v1.Inner', nmae: 'b'}}),
    /^Error: packed.nmae: unknown field of Inner \(did you mean "name"\?\)/,
  );
  assert.throws(
    () => echo.encodeRequest({packed: {'@type': 'type.googleapis.com/google.protobuf.Duration', seconds: 3}}),
    /^Error: packed: expected \{"@type": "type.googleapis.com\/google.protobuf.Duration", "value": \.\.\.\}/,
  );
});

test('refuses malformed Timestamp, Duration and wrapper values, naming the field', () => {
  assert.throws(() => method.encodeRequest({at: 'yesterday'}), /^Error: at: expected an RFC 3339 timestamp/);
  assert.throws(() => method.encodeRequest({ttl: '10'}), /^Error: ttl: expected a duration like "1.5s"/);
  assert.throws(() => method.encodeRequest({big: 'x'}), /^Error: big: expected an integer \(int64\)/);
  assert.throws(() => method.encodeRequest({note: 5}), /^Error: note: expected a string/);
});
