import {createPrivateKey, X509Certificate} from 'node:crypto';
import {readFileSync} from 'node:fs';

/** Which TLS file a job key names. */
export type PemKind = 'ca' | 'cert' | 'key';

const WANT: Record<PemKind, string> = {
  ca: "a PEM certificate of the CA that signed the server's certificate (-----BEGIN CERTIFICATE-----)",
  cert: 'a PEM client certificate (-----BEGIN CERTIFICATE-----)',
  key: 'a PEM private key (-----BEGIN PRIVATE KEY-----)',
};

/**
 * Why a TLS file is not what its key needs, or undefined: not PEM (a DER file), the wrong kind (a
 * private key given as `tls.ca`), an encrypted key (grpc-js takes no passphrase), or PEM that does
 * not parse.
 */
export function checkPem(file: string, kind: PemKind): string | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    return `cannot read ${file}: ${(error as Error).message}`;
  }
  const text = bytes.toString('latin1');
  const labels = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]!);
  if (labels.length === 0) {
    const convert =
      kind === 'key' ? `openssl pkey -inform der -in ${file} -out key.pem` : `openssl x509 -inform der -in ${file} -out cert.pem`;
    return `expected ${WANT[kind]}, got ${bytes.length === 0 ? 'an empty file' : 'a file with no PEM block'} (a DER file? convert it: ${convert})`;
  }
  const certificates = labels.filter((l) => l === 'CERTIFICATE' || l === 'TRUSTED CERTIFICATE');
  const keys = labels.filter((l) => l.endsWith('PRIVATE KEY'));
  if (kind === 'key') {
    if (keys.length === 0) return `expected ${WANT.key}, got ${describe(labels)}${certificates.length > 0 ? ': is it tls.cert?' : ''}`;
    if (keys.includes('ENCRYPTED PRIVATE KEY') || /Proc-Type: 4,ENCRYPTED/.test(text)) {
      return `the private key is encrypted, and grpc-js takes no passphrase: decrypt it (openssl pkey -in ${file} -out key.pem)`;
    }
    try {
      createPrivateKey(bytes);
    } catch (error) {
      return `the private key does not parse: ${(error as Error).message}`;
    }
    return undefined;
  }
  if (certificates.length === 0) return `expected ${WANT[kind]}, got ${describe(labels)}${keys.length > 0 ? ': is it tls.key?' : ''}`;
  try {
    for (const block of text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) new X509Certificate(block);
  } catch (error) {
    return `a certificate in it does not parse: ${(error as Error).message}`;
  }
  return undefined;
}

/** Why a client certificate and key do not belong together, or undefined. Both must pass `checkPem` first. */
export function checkKeyPair(certFile: string, keyFile: string): string | undefined {
  try {
    const certificate = new X509Certificate(readFileSync(certFile));
    if (!certificate.checkPrivateKey(createPrivateKey(readFileSync(keyFile))))
      return `tls.key is not the private key of the certificate in tls.cert (${certFile})`;
  } catch {
    return undefined; // checkPem has said what is wrong
  }
  return undefined;
}

function describe(labels: readonly string[]): string {
  const unique = [...new Set(labels)];
  return unique.map((l) => `-----BEGIN ${l}-----`).join(', ');
}
