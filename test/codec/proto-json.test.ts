import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {createMethodHandle} from '../../src/schema/method-handle.js';
import {loadProtoFiles} from '../../src/schema/source-proto.js';
import {loadProtosets} from '../../src/schema/source-protoset.js';
import {shortestFloat} from '../../src/codec/response-json.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const PROTO = path.join(FIXTURES, 'protos', 'json.proto');
const PROTOSET = path.join(FIXTURES, 'protos', 'json.protoset');
/** Canonical outputs of Python's json_format for the same bytes (test/fixtures/json/capture.py). */
const CANON = JSON.parse(readFileSync(path.join(FIXTURES, 'json', 'cases.json'), 'utf8')) as {
  cases: {name: string; binary: string; json: unknown; protoNames: unknown; emitDefaults: unknown}[];
};
const METHOD = 'jsonfx.v1.JsonService/Echo';

const sources = [
  ['a .proto source', () => loadProtoFiles([PROTO])],
  ['a protoset built by protoc', () => loadProtosets([PROTOSET])],
] as const;

/** The JSON as written to a results file and read back. */
const asWritten = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

for (const [label, load] of sources) {
  const schema = load();
  const plain = createMethodHandle(schema, METHOD);
  const protoNames = createMethodHandle(schema, METHOD, {jsonNames: 'proto'});
  const defaults = createMethodHandle(schema, METHOD, {emitDefaults: true});
  for (const canon of CANON.cases) {
    test(`${label}: "${canon.name}" prints as Python's json_format does, in all three forms`, () => {
      const bytes = Buffer.from(canon.binary, 'base64');
      assert.deepEqual(asWritten(plain.decodeResponse(bytes)), canon.json);
      assert.deepEqual(asWritten(protoNames.decodeResponse(bytes)), canon.protoNames);
      assert.deepEqual(asWritten(defaults.decodeResponse(bytes)), canon.emitDefaults);
    });
    test(`${label}: "${canon.name}" as printed is taken back as a request and gives the same message`, () => {
      for (const handle of [plain, protoNames, defaults]) {
        const printed = asWritten(handle.decodeResponse(Buffer.from(canon.binary, 'base64')));
        const again = handle.encodeRequest(printed);
        assert.deepEqual(asWritten(plain.decodeResponse(again)), canon.json);
      }
    });
  }
}

test('float32 prints at its shortest round-trip form', () => {
  assert.equal(shortestFloat(Math.fround(0.1)), 0.1);
  assert.equal(shortestFloat(Math.fround(16777217)), 16777216);
  assert.equal(shortestFloat(Math.fround(1 / 3)), 0.33333334);
  for (const n of [0.3, 123456.789, 3.4e38, 1e-40, 7.7]) assert.equal(Math.fround(shortestFloat(Math.fround(n))), Math.fround(n));
});
