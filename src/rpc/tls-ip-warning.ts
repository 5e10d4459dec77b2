/**
 * grpc-js hands a target's host to TLS as the server name, an IP address too
 * (grpc/grpc-node#1919), and Node then warns once per process: "[DEP0123] DeprecationWarning:
 * Setting the TLS ServerName to an IP address is not permitted by RFC 6066". The certificate is
 * still checked against that address; nothing in the job can change it, so the warning is only
 * noise on a user's screen (and on a run's log). Every TLS channel's credentials are made by
 * `createCredentials`, which calls this: that one warning is dropped in the process or worker
 * thread that makes them; every other warning goes through as before.
 */
const DROPPED = 'DEP0123';
let installed = false;

export function dropTlsIpServernameWarning(): void {
  if (installed) return;
  installed = true;
  const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const options = rest[0];
    const code = typeof options === 'object' && options !== null ? (options as {code?: unknown}).code : rest[1];
    if (code === DROPPED) return;
    emitWarning(warning, ...rest);
  }) as typeof process.emitWarning;
}
