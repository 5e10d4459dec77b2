import {Status} from '../codec/status.js';

/**
 * Failures, explained: grpc-js's details cleaned up for people (the same cause reads the same
 * whatever the call), and a hint for the causes a user can fix on their side (nothing listening,
 * TLS against plaintext and back, a certificate for another name, an unknown CA, a name that does
 * not resolve).
 */

/** What a hint may depend on besides the message. */
export interface ExplainContext {
  /** The job's target, as written. */
  readonly target: string;
  /** Whether the job uses TLS. */
  readonly tls: boolean;
  /** The job's per-attempt deadline in ms (0 = none). */
  readonly deadlineMs?: number;
  /** Whose words the fixes are in: the job file's keys (`run`, `validate`), or `describe`'s flags. @default 'job' */
  readonly words?: 'job' | 'describe';
}

/** Each fix a hint names, in the words of a job file and of `describe`'s flags. */
const FIXES = {
  job: {
    noTls: 'remove tls from the job (or point target at the TLS port)',
    serverName: 'set tls.serverName to one of them, or use that name in target',
    trusted: 'a CA the job trusts',
    ca: 'set tls.ca to the PEM file of the CA that signed it',
    clientCert: 'set tls.cert and tls.key (mutual TLS)',
    addTls: 'add tls to the job (tls: {} trusts the system CAs)',
    deadline: 'raise deadline',
    method: 'check method, and that target is the right server',
    credentials: 'check metadata (authorization) and tls',
  },
  describe: {
    noTls: 'leave out --tls, --ca, --cert and --key (or give the TLS port)',
    serverName: 'give --server-name with one of them, or use that name in the target',
    trusted: 'a CA trusted here (the system roots, or --ca)',
    ca: 'give --ca with the PEM file of the CA that signed it',
    clientCert: 'give --cert and --key (mutual TLS)',
    addTls: 'add --tls (the system CAs) or --ca',
    deadline: 'raise --deadline',
    method: 'check that the target is the right server',
    credentials: 'check the -H headers (authorization) and the TLS flags',
  },
} as const;

/**
 * `No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:50999. Resolution note: `
 * becomes `connect ECONNREFUSED 127.0.0.1:50999`: the wrapping, the timestamps and OpenSSL's source
 * locations differ from call to call and say nothing to the user.
 */
export function cleanDetails(details: string): string {
  let text = details
    .replace(/No connection established\. Last error: /g, '')
    .replace(/\.? ?Resolution note: .*$/s, '')
    .replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)/g, '')
    .replace(/(^|: )(Error( \[[A-Z_]+\])?: )+/g, '$1');
  // 805C0B99F07F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/...:350:
  const ssl = /(^|\s)[0-9A-F]+:error:[0-9A-F]+:SSL routines:[a-z0-9_]+:([^:]+)(?::\S*)?/.exec(text);
  if (ssl) {
    const alert = /SSL alert number (\d+)/.exec(text);
    text = `${text.slice(0, ssl.index)}${ssl[1]}TLS: ${ssl[2]!.trim()}${alert ? ` (alert ${alert[1]})` : ''}`;
  }
  text = text.replace(/\s+/g, ' ').trim();
  return text === '' ? details.trim() : text;
}

/** A hint for a failure the user can fix, or undefined. */
export function hintFor(code: number, details: string, context: ExplainContext): string | undefined {
  const text = details;
  const fix = FIXES[context.words ?? 'job'];
  if (/ECONNREFUSED/.test(text)) return `nothing is listening at ${context.target}: is the server up, and is the port right?`;
  if (/^no (connection to the backend|answer from the backend|connection after)/.test(text)) {
    return `nothing answers at ${context.target}, not even with an error: packets dropped on the way (a partition, a firewall), a host that is down, or a port that accepts TCP but does not speak gRPC`;
  }
  if (/wrong version number|packet length too long|WRONG_VERSION_NUMBER|http request/i.test(text)) {
    return `the server speaks plaintext, not TLS: ${fix.noTls}`;
  }
  const altnames = /is not in the cert's altnames: (.*?)(?:\.? Resolution note|$)/.exec(text);
  if (altnames || /ERR_TLS_CERT_ALTNAME_INVALID/.test(text)) {
    const names = altnames?.[1]?.replace(/\.$/, '');
    return `the server's certificate is for ${names ?? 'another name'}: ${fix.serverName}`;
  }
  if (/certificate has expired|CERT_HAS_EXPIRED/i.test(text)) {
    return "the server's certificate has expired: renew it on the server (nothing in the client's settings can accept it); if it was renewed, check this machine's clock";
  }
  if (/certificate is not yet valid|CERT_NOT_YET_VALID/i.test(text)) {
    return "the server's certificate is not valid yet: this machine's clock (or the server's) is wrong; check date, or renew the certificate with a start in the past";
  }
  if (
    /unable to verify the first certificate|self[- ]signed certificate|unable to get local issuer certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT/i.test(
      text,
    )
  ) {
    return `the server's certificate is not signed by ${fix.trusted}: ${fix.ca}`;
  }
  if (/certificate required|alert number 116|alert handshake failure|alert bad certificate/i.test(text)) {
    return `the server wants a client certificate it accepts: ${fix.clientCert}`;
  }
  if (/Name resolution failed|ENOTFOUND|EAI_AGAIN|getaddrinfo/.test(text)) {
    return `the host name in target ${context.target} does not resolve: check its spelling, or this machine's DNS`;
  }
  if (code === Status.UNAVAILABLE && /Failed to connect|Connection dropped|Protocol error|socket hang up/.test(text) && !context.tls) {
    return `the connection failed during the HTTP/2 handshake: if the server expects TLS, ${fix.addTls}`;
  }
  if (code === Status.DEADLINE_EXCEEDED && context.deadlineMs) {
    return `calls took longer than the deadline (${context.deadlineMs}ms per attempt): ${fix.deadline}, or lower concurrency if the server is overloaded`;
  }
  if (code === Status.UNIMPLEMENTED && /unknown service|not found|unimplemented/i.test(text)) {
    return `the server does not serve this method: ${fix.method}`;
  }
  if (code === Status.UNAUTHENTICATED) return `the server refused the credentials: ${fix.credentials}`;
  return undefined;
}
