import {statSync} from 'node:fs';
import {isIPv4, isIPv6} from 'node:net';

/** The target schemes grpc-js resolves. */
const SCHEMES = ['dns', 'unix', 'ipv4', 'ipv6'];
const WEB_SCHEMES = /^(https?|grpcs?|tcp|h2c?):\/\//i;
const HOST = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/**
 * Why a target is not one grpc-js can use as meant, or undefined: a URL (`http://host`), a bare
 * socket path, a missing port (grpc-js would quietly use 443), a port out of range, an IPv6 address
 * without brackets, an unknown scheme, or a `unix:` path that is not a socket.
 */
export function checkTarget(target: string): string | undefined {
  const value = target.trim();
  if (value === '') return 'expected host:port, dns:///host:port or unix:/path, got an empty string';
  if (WEB_SCHEMES.test(value)) {
    const rest = value.replace(WEB_SCHEMES, '').replace(/\/.*$/, '');
    const tls = /^(https|grpcs):/i.test(value);
    const port = /:\d+$/.test(rest) ? '' : tls ? ':443' : ':PORT';
    return `expected host:port, not a URL: write ${rest}${port}${tls ? ' and add tls to the job' : ''} (gRPC speaks HTTP/2 itself)`;
  }
  if (value.startsWith('/') || value.startsWith('./') || value.startsWith('../'))
    return `expected host:port or unix:/path; a socket path needs the scheme: write unix:${value}`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/.exec(value);
  if (scheme && (SCHEMES.includes(scheme[1]!.toLowerCase()) || scheme[2]!.startsWith('//'))) {
    const name = scheme[1]!.toLowerCase();
    const rest = scheme[2]!;
    if (!SCHEMES.includes(name)) return `unknown scheme "${scheme[1]}:"; grpc-js knows ${SCHEMES.map((s) => `${s}:`).join(', ')}`;
    if (name === 'unix') return checkUnix(rest);
    if (name === 'dns') return checkHostPort(rest.replace(/^\/\/[^/]*\//, ''), value);
    const addresses = rest.split(',');
    for (const address of addresses) {
      const problem = checkHostPort(address, value, name === 'ipv4' ? isIPv4 : isIPv6);
      if (problem) return problem;
    }
    return undefined;
  }
  return checkHostPort(value, value);
}

function checkUnix(rest: string): string | undefined {
  if (/^\/\/[^/]/.test(rest)) return 'a unix: target has no host: write unix:/path/to.sock or unix:///path/to.sock';
  const file = rest.replace(/^\/\//, '');
  if (file === '') return 'expected unix:/path/to.sock, got no path';
  const stat = statSync(file, {throwIfNoEntry: false});
  if (stat && !stat.isSocket()) return `${file} is ${stat.isDirectory() ? 'a folder' : 'a file'}, not a socket`;
  return undefined;
}

function checkHostPort(address: string, target: string, isAddress?: (host: string) => boolean): string | undefined {
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(address);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
    if (!isIPv6(host)) return `expected an IPv6 address between [ and ], like [::1]:50051`;
  } else if (isIPv6(address)) {
    return `an IPv6 address needs brackets and a port: write [${address}]:PORT`;
  } else {
    const colon = address.lastIndexOf(':');
    host = colon >= 0 ? address.slice(0, colon) : address;
    port = colon >= 0 ? address.slice(colon + 1) : undefined;
    if (!HOST.test(host) && !isIPv4(host)) return `expected a host name or IP address before the port, got "${host}"`;
  }
  if (isAddress && !isAddress(host)) return `expected ${isAddress === isIPv4 ? 'an IPv4' : 'an IPv6'} address, got "${host}"`;
  if (port === undefined || port === '')
    return `expected host:port, got no port in "${target}" (grpc-js would use 443): write ${bracketed ? `[${host}]` : host}:443 if that is meant`;
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) return `expected a port from 1 to 65535, got "${port}"`;
  return undefined;
}
