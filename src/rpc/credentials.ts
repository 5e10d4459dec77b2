import {readFileSync} from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import {dropTlsIpServernameWarning} from './tls-ip-warning.js';

/** TLS settings of a job. Paths are resolved by the job loader. Omitted `tls` = plaintext. */
export interface TlsSpec {
  /** PEM file of the CA that signed the server's certificate. @default the system roots */
  readonly ca?: string;
  /** PEM client certificate, for mutual TLS (needs `key`). */
  readonly cert?: string;
  /** PEM private key of the client certificate (needs `cert`). */
  readonly key?: string;
  /** Name to verify the server certificate against, when it differs from the target host. */
  readonly serverName?: string;
}

/** Builds channel credentials; reading a file that is missing throws with its path. */
export function createCredentials(tls: TlsSpec | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  dropTlsIpServernameWarning();
  return grpc.credentials.createSsl(
    tls.ca ? readFileSync(tls.ca) : null,
    tls.key ? readFileSync(tls.key) : null,
    tls.cert ? readFileSync(tls.cert) : null,
  );
}
