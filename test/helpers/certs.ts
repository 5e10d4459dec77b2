import {spawnSync} from 'node:child_process';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const TLS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');

/**
 * A server certificate for localhost / 127.0.0.1 signed by the test CA (test/fixtures/tls/ca.pem)
 * that expired on 2020-01-02, made with openssl in `dir` (openssl ca: `req -x509` cannot backdate).
 */
export function expiredServerCert(dir: string): {key: Buffer; cert: Buffer} {
  const file = (name: string) => path.join(dir, name);
  writeFileSync(
    file('ca.cnf'),
    [
      '[ca]',
      'default_ca = test',
      '[test]',
      `database = ${file('index.txt')}`,
      `new_certs_dir = ${dir}`,
      `serial = ${file('serial')}`,
      'default_md = sha256',
      'policy = any',
      'copy_extensions = copy',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  writeFileSync(file('index.txt'), '');
  writeFileSync(file('serial'), '01\n');
  const openssl = (args: string[]) => {
    const result = spawnSync('openssl', args, {encoding: 'utf8'});
    if (result.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  };
  openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    file('expired.key'),
    '-out',
    file('expired.csr'),
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  openssl([
    'ca',
    '-batch',
    '-config',
    file('ca.cnf'),
    '-cert',
    path.join(TLS, 'ca.pem'),
    '-keyfile',
    path.join(TLS, 'ca.key'),
    '-in',
    file('expired.csr'),
    '-out',
    file('expired.pem'),
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200102000000Z',
    '-notext',
  ]);
  return {key: readFileSync(file('expired.key')), cert: readFileSync(file('expired.pem'))};
}
