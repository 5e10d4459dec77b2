import type {LookupAddress} from 'node:dns';
import {lookup} from 'node:dns/promises';
import {isIP} from 'node:net';

/** One address to connect to. */
export interface H2Address {
  readonly host: string;
  readonly port: number;
}

/** A target as the `h2` transport reads it. */
export interface H2Target {
  /** `:authority` and the TLS name: the target's host (and port). */
  readonly authority: string;
  readonly host: string;
  /** Fixed addresses (`ipv4:`, `ipv6:`, an IP literal), or undefined: resolve `host` each time (DNS). */
  readonly addresses: readonly H2Address[] | undefined;
  readonly port: number;
}

/**
 * Reads `host:port`, `dns:host:port`, `dns:///host:port`, `dns://server/host:port` (the DNS server
 * part is not used: the system resolver answers), `ipv4:a:p,b:p` and `ipv6:[a]:p,[b]:p`. Returns
 * why not for `unix:` and anything else (the job check says it first, as `checkTarget` does).
 */
export function parseH2Target(target: string): H2Target | string {
  const value = target.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(value);
  const name = scheme?.[1]?.toLowerCase();
  if (name === 'unix' || name === 'unix-abstract') return 'the h2 transport does not connect to unix: sockets yet; use transport: grpc-js';
  if (name === 'ipv4' || name === 'ipv6') {
    const addresses: H2Address[] = [];
    for (const part of scheme![2]!.split(',')) {
      const address = splitHostPort(part);
      if (typeof address === 'string') return address;
      addresses.push(address);
    }
    if (addresses.length === 0) return `expected at least one address in "${target}"`;
    const first = addresses[0]!;
    return {authority: hostPort(first.host, first.port), host: first.host, port: first.port, addresses};
  }
  const rest = name === 'dns' ? scheme![2]!.replace(/^\/\/[^/]*\//, '') : value;
  const address = splitHostPort(rest);
  if (typeof address === 'string') return address;
  return {
    authority: hostPort(address.host, address.port),
    host: address.host,
    port: address.port,
    addresses: isIP(address.host) ? [address] : undefined,
  };
}

/** Every address of the target now (DNS: every A and AAAA record, in the resolver's order). */
export async function resolveH2Target(target: H2Target): Promise<readonly H2Address[]> {
  if (target.addresses) return target.addresses;
  let found: LookupAddress[];
  try {
    found = await lookup(target.host, {all: true, verbatim: true});
  } catch (error) {
    throw new Error(`Name resolution failed for target dns:${target.authority}: ${(error as Error).message}`);
  }
  if (found.length === 0) throw new Error(`Name resolution failed for target dns:${target.authority}: no addresses`);
  return found.map((a) => ({host: a.address, port: target.port}));
}

function splitHostPort(text: string): H2Address | string {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  const plain = /^([^:[\]]+):(\d+)$/.exec(text);
  const match = bracketed ?? plain;
  if (!match) return `expected host:port, got "${text}"`;
  const port = Number(match[2]);
  if (port < 1 || port > 65_535) return `expected a port from 1 to 65535, got "${match[2]}"`;
  return {host: match[1]!, port};
}

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
