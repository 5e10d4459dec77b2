import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http';
import type {AddressInfo} from 'node:net';
import {getErrorMessage, UsageError} from '../errors.js';
import type {Logger} from '../util/log.js';
import type {OpsMetrics} from './metrics.js';
import type {Scheduler} from '../scheduler/scheduler.js';

/** Where `--http` binds when given without an address. */
export const DEFAULT_OPS_ADDRESS = '127.0.0.1:9464';

/** A running operations endpoint. */
export interface OpsServer {
  /** `host:port` actually bound (port 0 becomes the real port). */
  readonly address: string;
  /** Stops listening and closes idle connections. Idempotent. */
  close(): Promise<void>;
}

/** Parses `--http`: `host:port`, `:port` or `port`; the host defaults to loopback. */
export function parseOpsAddress(value: string): {host: string; port: number} {
  const match = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65_535) throw new UsageError(`--http: expected host:port like 127.0.0.1:9464 (or a port), got "${value}"`);
  return {host: match[1] || '127.0.0.1', port};
}

/**
 * One HTTP endpoint for operations, the daemon's and the worker's: `GET /healthz` (200, or 503 with
 * why), `GET /metrics` (Prometheus text), and the caller's own routes.
 */
export interface OpsEndpoint {
  /** `host:port`, `:port` or `port` (`--http`). */
  readonly address: string;
  /** `true` while healthy, else why not (answered with 503). */
  readonly health: () => true | string;
  readonly metrics: {render(): Promise<string>; readonly contentType: string};
  /** Answers the requests the two routes above do not (returns false for a path it does not know). */
  readonly route?: (req: IncomingMessage, url: URL, send: Send) => Promise<boolean>;
  /** The routes listed in a 404. @default 'GET /healthz, GET /metrics' */
  readonly routes?: string;
}

type Send = (status: number, body: string, headers?: Record<string, string>) => void;

/** Starts an endpoint; throws `UsageError` when the address cannot be listened on. */
export async function startOpsEndpoint(endpoint: OpsEndpoint): Promise<OpsServer> {
  const {host, port} = parseOpsAddress(endpoint.address);
  const server: Server = createServer((req, res) => {
    const reply: Send = (status, body, headers) => send(res, status, body, headers);
    handle(req, reply).catch((error: unknown) => reply(500, `internal error: ${getErrorMessage(error)}\n`));
  });
  const handle = async (req: IncomingMessage, reply: Send) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz' || url.pathname === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'use GET\n', {allow: 'GET, HEAD'});
      if (url.pathname === '/metrics') return reply(200, await endpoint.metrics.render(), {'content-type': endpoint.metrics.contentType});
      const health = endpoint.health();
      return health === true ? reply(200, 'ok\n') : reply(503, `${health}\n`);
    }
    if (await endpoint.route?.(req, url, reply)) return;
    return reply(404, `not found: ${endpoint.routes ?? 'GET /healthz, GET /metrics'}\n`);
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(new UsageError(`--http ${endpoint.address}: cannot listen: ${getErrorMessage(error)}`, {cause: error})),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    address: `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close() {
      return (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }));
    },
  };
}

/** The daemon's endpoint: `/healthz` (its scheduler loop), `/metrics`, and `POST /jobs/NAME/run`. */
export function startOpsServer(options: {address: string; scheduler: Scheduler; metrics: OpsMetrics; logger?: Logger}): Promise<OpsServer> {
  const {scheduler, logger} = options;
  return startOpsEndpoint({
    address: options.address,
    health: () => scheduler.isAlive || 'scheduler loop is not running',
    metrics: options.metrics,
    routes: 'GET /healthz, GET /metrics, POST /jobs/NAME/run',
    route: async (req, url, reply) => {
      const run = /^\/jobs\/([^/]+)\/run$/.exec(url.pathname);
      if (!run) return false;
      if (req.method !== 'POST') return (reply(405, 'use POST\n', {allow: 'POST'}), true);
      const job = decodeURIComponent(run[1]!);
      const result = scheduler.trigger(job, 'manual');
      logger?.info({job, event: 'http:run', outcome: result.outcome}, `manual run requested over HTTP: ${result.outcome}`);
      const status =
        result.outcome === 'started' || result.outcome === 'queued'
          ? 202
          : result.outcome === 'skipped'
            ? 409
            : result.outcome === 'unknown-job'
              ? 404
              : 503;
      reply(status, `${JSON.stringify({job, ...result})}\n`, {'content-type': 'application/json'});
      return true;
    },
  });
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {'content-type': 'text/plain; charset=utf-8', ...headers});
  res.end(body);
}
