import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {loadMethod} from '../../src/rpc/method.js';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'protos', 'wkt.proto');
const method = loadMethod({proto: PROTO, method: 'wkt.v1.S/Put'});

test('takes Timestamp, Duration and wrapper fields in their proto3 JSON forms', () => {
  const bytes = method.encodeRequest({at: '2024-01-31T12:00:00.5Z', ttl: '1.5s', big: '9007199254740993', note: 'hi'});
  assert.deepEqual(method.decodeResponse(bytes), {
    at: {seconds: '1706702400', nanos: 500_000_000},
    ttl: {seconds: '1', nanos: 500_000_000},
    big: {value: '9007199254740993'},
    note: {value: 'hi'},
  });
});

test('refuses malformed Timestamp, Duration and wrapper values, naming the field', () => {
  assert.throws(() => method.encodeRequest({at: 'yesterday'}), /^Error: at: expected an RFC 3339 timestamp/);
  assert.throws(() => method.encodeRequest({ttl: '10'}), /^Error: ttl: expected a duration like "1.5s"/);
  assert.throws(() => method.encodeRequest({big: 'x'}), /^Error: big: expected an integer \(int64\)/);
  assert.throws(() => method.encodeRequest({note: 5}), /^Error: note: expected a string/);
});
