import assert from 'node:assert/strict';
import {mkdirSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {checkKeyPair, checkPem} from '../../src/rpc/pem.js';
import {checkTarget} from '../../src/rpc/target.js';
import {tempDir} from '../helpers/job.js';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');

/** [target, undefined when valid, else a piece of the message]. */
const TARGETS: readonly [string, string | undefined][] = [
  ['127.0.0.1:50051', undefined],
  ['localhost:50051', undefined],
  ['users.internal:443', undefined],
  ['dns:///users.internal:443', undefined],
  ['dns:users.internal:443', undefined],
  ['dns://8.8.8.8/users.internal:443', undefined],
  ['[::1]:50051', undefined],
  ['ipv4:127.0.0.1:1,127.0.0.2:2', undefined],
  ['ipv6:[::1]:50051', undefined],
  ['unix:/tmp/app.sock', undefined],
  ['unix:///tmp/app.sock', undefined],
  ['http://localhost:50051', 'not a URL: write localhost:50051'],
  ['https://api.example.com', 'not a URL: write api.example.com:443 and add tls to the job'],
  ['users.internal', 'got no port in "users.internal" (grpc-js would use 443): write users.internal:443 if that is meant'],
  ['dns:///users.internal', 'got no port'],
  ['127.0.0.1:99999', 'expected a port from 1 to 65535, got "99999"'],
  ['127.0.0.1:0', 'expected a port from 1 to 65535, got "0"'],
  ['127.0.0.1:http', 'got "http"'],
  ['/run/app.sock', 'a socket path needs the scheme: write unix:/run/app.sock'],
  ['unix://host/run/app.sock', 'a unix: target has no host'],
  ['unix:', 'got no path'],
  ['::1', 'an IPv6 address needs brackets and a port: write [::1]:PORT'],
  ['xds:///users', 'unknown scheme "xds:"'],
  ['ipv4:localhost:1', 'expected an IPv4 address, got "localhost"'],
  ['my host:50051', 'expected a host name or IP address before the port, got "my host"'],
  ['', 'got an empty string'],
];

test('checkTarget accepts what grpc-js resolves and names what is wrong with the rest', () => {
  for (const [target, expected] of TARGETS) {
    const problem = checkTarget(target);
    if (expected === undefined) assert.equal(problem, undefined, `${target}: ${problem}`);
    else
      assert.ok(
        problem?.includes(expected),
        `${JSON.stringify(target)}: expected ${JSON.stringify(expected)} in ${JSON.stringify(problem)}`,
      );
  }
});

test('checkTarget refuses a unix: path that is a file or a folder, not a socket', (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'file'), '');
  mkdirSync(path.join(dir, 'folder'));
  assert.match(checkTarget(`unix:${dir}/file`)!, /is a file, not a socket/);
  assert.match(checkTarget(`unix:${dir}/folder`)!, /is a folder, not a socket/);
});

test('checkPem tells a certificate from a key, PEM from DER, and a plain key from an encrypted one', (t) => {
  const dir = tempDir(t);
  const file = (name: string, content: string | Buffer) => (writeFileSync(path.join(dir, name), content), path.join(dir, name));
  assert.equal(checkPem(path.join(TLS, 'ca.pem'), 'ca'), undefined);
  assert.equal(checkPem(path.join(TLS, 'client.pem'), 'cert'), undefined);
  assert.equal(checkPem(path.join(TLS, 'client.key'), 'key'), undefined);
  assert.match(
    checkPem(path.join(TLS, 'ca.key'), 'ca')!,
    /expected a PEM certificate of the CA .*, got -----BEGIN (RSA |EC )?PRIVATE KEY-----: is it tls.key\?/,
  );
  assert.match(
    checkPem(path.join(TLS, 'client.pem'), 'key')!,
    /expected a PEM private key .*, got -----BEGIN CERTIFICATE-----: is it tls.cert\?/,
  );
  assert.match(
    checkPem(file('der.crt', Buffer.from([0x30, 0x82, 0x01, 0x0a, 0x02])), 'ca')!,
    /a file with no PEM block \(a DER file\? convert it: openssl x509 -inform der/,
  );
  assert.match(checkPem(file('empty.pem', ''), 'cert')!, /got an empty file/);
  assert.match(
    checkPem(file('enc.key', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n'), 'key')!,
    /encrypted, and grpc-js takes no passphrase/,
  );
  assert.match(
    checkPem(file('bad.pem', '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n'), 'ca')!,
    /does not parse/,
  );
  assert.match(
    checkKeyPair(path.join(TLS, 'client.pem'), path.join(TLS, 'server.key'))!,
    /tls.key is not the private key of the certificate in tls.cert/,
  );
  assert.equal(checkKeyPair(path.join(TLS, 'client.pem'), path.join(TLS, 'client.key')), undefined);
});
