import assert from 'node:assert/strict';
import {test} from 'node:test';
import {runCli} from '../helpers/cli.js';
import {DEMO_PROTOSET, JSON_PROTO, JSON_PROTOSET, startSchemaServer} from '../helpers/schema-server.js';

test('describe TARGET lists the services the server reflects, sending -H headers with the reflection calls', async (t) => {
  const server = await startSchemaServer(t);
  const result = await runCli(['describe', server.address, '-H', 'authorization: Bearer t0k']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'demo.v1.DemoService\njsonfx.v1.JsonService\n');
  assert.equal(server.reflectionMetadata.at(-1)!['authorization'], 'Bearer t0k');
});

test('describe TARGET SERVICE, METHOD and MESSAGE print their definitions from reflection', async (t) => {
  const server = await startSchemaServer(t);
  const service = await runCli(['describe', server.address, 'jsonfx.v1.JsonService']);
  assert.equal(service.code, 0, service.stderr);
  assert.equal(
    service.stdout,
    [
      'jsonfx.v1.JsonService is a service:',
      'service JsonService {',
      '  rpc Echo ( .jsonfx.v1.Sample ) returns ( .jsonfx.v1.Sample );',
      '  rpc Watch ( .jsonfx.v1.Sample ) returns ( stream .jsonfx.v1.Sample );',
      '}',
      '',
    ].join('\n'),
  );
  const method = await runCli(['describe', server.address, 'demo.v1.DemoService/Process']);
  assert.equal(method.code, 0, method.stderr);
  assert.equal(
    method.stdout,
    'demo.v1.DemoService.Process is a method:\nrpc Process ( .demo.v1.ProcessRequest ) returns ( .demo.v1.ProcessResponse );\n',
  );
  const message = await runCli(['describe', server.address, 'demo.v1.ProcessRequest']);
  assert.equal(message.code, 0, message.stderr);
  assert.match(message.stdout, /^demo\.v1\.ProcessRequest is a message:\nmessage ProcessRequest \{\n  string id = 1;\n/);
  assert.match(message.stdout, /  uint32 latency_ms = 3 \[json_name = "latencyMs"\];\n/);
  assert.match(message.stdout, /  map<string, string> labels = 11;\n/);
  assert.match(message.stdout, /  \.demo\.v1\.Priority priority = 9;\n/);
});

test('describe from a protoset or a proto, no server needed; an unknown symbol is exit 2 with a suggestion', async () => {
  const list = await runCli(['describe', '--protoset', JSON_PROTOSET, '--protoset', DEMO_PROTOSET]);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, 'demo.v1.DemoService\njsonfx.v1.JsonService\n');
  const message = await runCli(['describe', '--proto', JSON_PROTO, 'jsonfx.v1.Color']);
  assert.equal(
    message.stdout,
    'jsonfx.v1.Color is an enum:\nenum Color {\n  COLOR_UNSPECIFIED = 0;\n  COLOR_RED = 1;\n  COLOR_BLUE = 2;\n}\n',
  );
  const names = await runCli(['describe', '--protoset', JSON_PROTOSET, 'jsonfx.v1.Sample']);
  assert.match(names.stdout, /  string custom = 4 \[json_name = "customJson"\];\n/);
  assert.match(names.stdout, /  map<int64, string> by_i64 = 40 \[json_name = "byI64"\];\n/);
  assert.match(names.stdout, /  optional int32 maybe = 63;\n/);
  assert.match(names.stdout, /  oneof choice \{\n    string pick_text = 60 \[json_name = "pickText"\];/);
  const unknown = await runCli(['describe', '--protoset', JSON_PROTOSET, 'jsonfx.v1.Sampel']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown symbol "jsonfx\.v1\.Sampel" \(did you mean "jsonfx\.v1\.Sample"\?\)/);
});

test('describe without a target or files, or against a server without reflection, is exit 2 with what to do', async (t) => {
  const bare = await runCli(['describe']);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /expected a TARGET \(host:port\) to ask by server reflection, or --proto \/ --protoset files/);
  const server = await startSchemaServer(t, {reflection: 'none'});
  const none = await runCli(['describe', server.address]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /does not offer server reflection/);
  const badHeader = await runCli(['describe', server.address, '-H', 'no-colon']);
  assert.equal(badHeader.code, 2);
  assert.match(badHeader.stderr, /expected "name: value", got "no-colon"/);
});

test('describe over TLS: --ca and --server-name, with a deadline', async (t) => {
  const {readFileSync} = await import('node:fs');
  const path = await import('node:path');
  const {PACKAGE_ROOT} = await import('../../src/util/paths.js');
  const tls = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'tls');
  const server = await startSchemaServer(t, {
    tls: {key: readFileSync(path.join(tls, 'server.key')), cert: readFileSync(path.join(tls, 'server.pem'))},
  });
  const result = await runCli(['describe', server.address, '--ca', path.join(tls, 'ca.pem'), '--server-name', 'localhost', '-d', '5s']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'demo.v1.DemoService\njsonfx.v1.JsonService\n');
  const plaintext = await runCli(['describe', server.address, '-d', '5s']);
  assert.equal(plaintext.code, 2);
  assert.match(plaintext.stderr, /server reflection at 127\.0\.0\.1:\d+ failed: 14 UNAVAILABLE/);
  const untrusted = await runCli(['describe', server.address, '--tls', '-d', '5s']);
  assert.equal(untrusted.code, 2, 'the test CA is not among the system roots');
});

test('describe errors speak of its flags, not of a job, and keep the hints run gives: mutual TLS without --cert, an expired certificate, a CA to trust', async (t) => {
  const {readFileSync} = await import('node:fs');
  const path = await import('node:path');
  const {PACKAGE_ROOT} = await import('../../src/util/paths.js');
  const {tempDir} = await import('../helpers/job.js');
  const {expiredServerCert} = await import('../helpers/certs.js');
  const tls = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'tls');
  const pem = (name: string) => readFileSync(path.join(tls, name));
  const mutual = await startSchemaServer(t, {tls: {key: pem('server.key'), cert: pem('server.pem'), ca: pem('ca.pem')}});
  const expired = await startSchemaServer(t, {tls: expiredServerCert(tempDir(t))});
  const cases: [string[], RegExp][] = [
    [
      [mutual.address, '--ca', path.join(tls, 'ca.pem')],
      /hint: the server wants a client certificate it accepts: give --cert and --key \(mutual TLS\)/,
    ],
    [
      [expired.address, '--ca', path.join(tls, 'ca.pem')],
      /certificate has expired \(hint: the server's certificate has expired: renew it on the server/,
    ],
    [
      [mutual.address, '--tls'],
      /hint: the server's certificate is not signed by a CA trusted here \(the system roots, or --ca\): give --ca with the PEM file of the CA that signed it/,
    ],
  ];
  for (const [args, hint] of cases) {
    const result = await runCli(['describe', ...args, '-d', '5s']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^grpc-batch: cannot describe 127\.0\.0\.1:\d+:\n {2}127\.0\.0\.1:\d+: server reflection at 127\.0\.0\.1:\d+ failed: 14 UNAVAILABLE: /,
    );
    assert.match(result.stderr, hint);
    assert.match(result.stderr, /give --proto or --protoset to work without it/);
    assert.doesNotMatch(result.stderr, /the job|nothing was sent|proto:|protoset:|tls\.|Resolution note|\d{4}-\d\d-\d\dT/);
  }
});
