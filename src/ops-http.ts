import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http';
import type {AddressInfo} from 'node:net';
import {getErrorMessage, UsageError} from './errors.js';
import type {Logger} from './log.js';
import type {OpsMetrics} from './ops-metrics.js';
import type {Scheduler} from './scheduler/scheduler.js';

/** Where `--http` binds when given without an address. */
export const DEFAULT_OPS_ADDRESS = '127.0.0.1:9464';

/** The operations endpoint: `GET /healthz`, `GET /metrics`, `POST /jobs/NAME/run`. */
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

export async function startOpsServer(options: {address: string; scheduler: Scheduler; metrics: OpsMetrics; logger?: Logger}): Promise<OpsServer> {
  const {host, port} = parseOpsAddress(options.address);
  const {scheduler, metrics, logger} = options;
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => send(res, 500, `internal error: ${getErrorMessage(error)}\n`));
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'use GET\n', {allow: 'GET, HEAD'});
      return scheduler.isAlive ? send(res, 200, 'ok\n') : send(res, 503, 'scheduler loop is not running\n');
    }
    if (url.pathname === '/metrics') {
      if (req.method !== 'GET') return send(res, 405, 'use GET\n', {allow: 'GET'});
      return send(res, 200, await metrics.render(), {'content-type': metrics.contentType});
    }
    const run = /^\/jobs\/([^/]+)\/run$/.exec(url.pathname);
    if (run) {
      if (req.method !== 'POST') return send(res, 405, 'use POST\n', {allow: 'POST'});
      const job = decodeURIComponent(run[1]!);
      const result = scheduler.trigger(job, 'manual');
      logger?.info({job, event: 'http:run', outcome: result.outcome}, `manual run requested over HTTP: ${result.outcome}`);
      const status = result.outcome === 'started' || result.outcome === 'queued' ? 202 : result.outcome === 'skipped' ? 409 : result.outcome === 'unknown-job' ? 404 : 503;
      return send(res, status, `${JSON.stringify({job, ...result})}\n`, {'content-type': 'application/json'});
    }
    return send(res, 404, 'not found: GET /healthz, GET /metrics, POST /jobs/NAME/run\n');
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new UsageError(`--http ${options.address}: cannot listen: ${getErrorMessage(error)}`, {cause: error})));
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

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {'content-type': 'text/plain; charset=utf-8', ...headers});
  res.end(body);
}
