import assert from 'node:assert/strict';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import protobuf from 'protobufjs';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {loadMethod} from '../../src/schema/method-handle.js';
import {methodFromJson, methodToJson} from '../../src/scale/method-json.js';

const WKT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'protos', 'wkt.proto');

test('a method rebuilt from JSON (no proto file) decodes responses exactly as the loaded one', () => {
  const loaded = loadMethod({proto: WKT, method: 'wkt.v1.S/Get'});
  const json = JSON.parse(JSON.stringify(methodToJson(loaded, 'wkt.v1.S/Get', {}))) as ReturnType<typeof methodToJson>;
  const rebuilt = methodFromJson(json);
  assert.equal(rebuilt.path, '/wkt.v1.S/Get');
  const root = protobuf.loadSync(WKT);
  const type = root.lookupType('wkt.v1.Rich');
  const samples = [
    {
      at: {seconds: 1706702400, nanos: 123_456_000},
      ttl: {seconds: -2, nanos: -500_000_000},
      big: {value: '9007199254740993'},
      blob: {value: Buffer.from('hi')},
    },
    {
      attrs: {fields: {n: {numberValue: 1.5}, list: {listValue: {values: [{stringValue: 'a'}]}}}},
      updateMask: {paths: ['user.display_name']},
      score: Number.NaN,
      total: '-9007199254740993',
    },
    {
      inner: {createdAt: {seconds: 86400}, name: 'a', child: {name: 'b'}},
      timeouts: {fast: {nanos: 250_000_000}},
      history: [{seconds: 1, nanos: 1}],
      nothing: {},
    },
    {packed: {type_url: 'type.googleapis.com/wkt.v1.Inner', value: root.lookupType('wkt.v1.Inner').encode({name: 'x'}).finish()}},
  ];
  for (const sample of samples) {
    const bytes = Buffer.from(type.encode(type.fromObject(sample)).finish());
    assert.deepEqual(rebuilt.decodeResponse(bytes), loaded.decodeResponse(bytes));
  }
  assert.deepEqual(
    rebuilt.encodeRequest({at: '2024-01-31T12:00:00Z', note: 'x'}),
    loaded.encodeRequest({at: '2024-01-31T12:00:00Z', note: 'x'}),
  );
});

test("the demo method survives the trip through JSON, with the job's jsonNames", () => {
  const loaded = loadMethod({proto: DEMO_PROTO, method: DEMO_METHOD, jsonNames: 'proto'});
  const rebuilt = methodFromJson(
    JSON.parse(JSON.stringify(methodToJson(loaded, DEMO_METHOD, {jsonNames: 'proto'}))) as ReturnType<typeof methodToJson>,
  );
  assert.equal(rebuilt.responseType, loaded.responseType);
  const type = protobuf.loadSync(DEMO_PROTO).lookupType('demo.v1.ProcessResponse');
  const bytes = Buffer.from(type.encode(type.fromObject({id: 'a', attempt: 2, payloadLength: 7, echoedMetadata: 'm'})).finish());
  assert.deepEqual(rebuilt.decodeResponse(bytes), {id: 'a', attempt: 2, payload_length: 7, echoed_metadata: 'm'});
  assert.deepEqual(rebuilt.decodeResponse(bytes), loaded.decodeResponse(bytes));
});
