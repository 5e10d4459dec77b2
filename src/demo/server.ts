import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {DEMO_PROTO} from '../util/paths.js';

/**
 * The demo server: `demo.v1.DemoService/Process` with latency and failure knobs in the request,
 * and the same knobs on its streaming methods `ProcessStream` (bidi) and `ProcessBatch`
 * (client-streaming); demo.proto says what each does on a stream.
 * Used by `grpc-batch demo`, by the tests (which assert on what it measured) and by the benchmarks.
 * It binds loopback only.
 */

export interface DemoServerOptions {
  /** Address to bind. @default '127.0.0.1:0' (a free loopback port) */
  readonly address?: string;
  /** TLS: PEM key and certificate, and a CA to require client certificates. Omitted = plaintext. */
  readonly tls?: {readonly key: Buffer; readonly cert: Buffer; readonly ca?: Buffer};
  /** Extra server options passed to grpc-js. */
  readonly serverOptions?: grpc.ServerOptions;
  /** Latency added to every call, in ms, on top of the request's `latency_ms`. @default 0 */
  readonly latencyMs?: number;
  /** Fail this fraction (0..1) of calls with UNAVAILABLE, drawn at random. @default 0 */
  readonly unavailableRate?: number;
  /** Shed load: a call that arrives while this many are being handled fails at once with RESOURCE_EXHAUSTED. @default no limit */
  readonly shedAbove?: number;
  /** The failures asked by `fail_first_attempts` carry server pushback (`grpc-retry-pushback-ms`) of this many ms. */
  readonly pushbackMs?: number;
}

/** What the server saw: the tests assert on these, never on wall time. */
export interface DemoServerStats {
  /** Requests received (every attempt counts): unary calls, and messages on the streaming methods. */
  calls: number;
  /** Requests being handled right now. */
  inFlight: number;
  /** The most requests ever in flight at once. */
  maxInFlight: number;
  /** Calls of the streaming methods (`ProcessStream`, `ProcessBatch`) opened. */
  streams: number;
  /** Streaming calls open right now. */
  openStreams: number;
  /** The most streaming calls ever open at once. */
  maxOpenStreams: number;
  /** The deadline of the last streaming call, in ms from when it was opened; Infinity = none. */
  lastStreamDeadlineMs: number | undefined;
  /** Calls answered per status name. */
  byStatus: Record<string, number>;
  /** Attempts seen per request id (only for requests with `fail_first_attempts`). */
  attemptsById: Map<string, number>;
  /** When each attempt of those ids arrived (performance.now() ms). */
  attemptTimesById: Map<string, number[]>;
  /** Calls shed with RESOURCE_EXHAUSTED (`shedAbove`). */
  shed: number;
  /** Every request id received, in order (bounded: the first 1,000,000). */
  ids: string[];
  /** Metadata of the last call. */
  lastMetadata: Record<string, unknown> | undefined;
  /** Whether the last call came over TLS with a client certificate. */
  lastPeerHadCert: boolean;
}

export interface DemoServer {
  readonly port: number;
  readonly address: string;
  readonly stats: DemoServerStats;
  /** Clears the counters. */
  reset(): void;
  /** Changes the latency added to every call from now on (`latencyMs`). */
  setLatency(ms: number): void;
  /** Stops the server; in-flight calls are cancelled after `graceMs`. Idempotent. @default 1000 */
  stop(graceMs?: number): Promise<void>;
}

const MAX_IDS = 1_000_000;

interface ProcessRequest {
  id?: string;
  payload?: string;
  latency_ms?: number;
  fail_code?: number;
  fail_first_attempts?: number;
}

export async function startDemoServer(options: DemoServerOptions = {}): Promise<DemoServer> {
  const definition = protoLoader.loadSync(DEMO_PROTO, {keepCase: true, longs: String, enums: String, defaults: true});
  const proto = grpc.loadPackageDefinition(definition) as unknown as {
    demo: {v1: {DemoService: grpc.ServiceClientConstructor}};
  };
  const stats = freshStats();
  const server = new grpc.Server(options.serverOptions);
  let extraLatency = options.latencyMs ?? 0;
  const unavailableRate = options.unavailableRate ?? 0;

  server.addService(proto.demo.v1.DemoService.service, {
    Process(call: grpc.ServerUnaryCall<ProcessRequest, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const request = call.request;
      const id = request.id ?? '';
      stats.calls++;
      if (options.shedAbove !== undefined && stats.inFlight >= options.shedAbove) {
        stats.shed++;
        stats.byStatus['RESOURCE_EXHAUSTED'] = (stats.byStatus['RESOURCE_EXHAUSTED'] ?? 0) + 1;
        return callback(serviceError(grpc.status.RESOURCE_EXHAUSTED, `demo: shedding above ${options.shedAbove} calls in flight`));
      }
      stats.inFlight++;
      if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
      if (stats.ids.length < MAX_IDS) stats.ids.push(id);
      stats.lastMetadata = call.metadata.getMap();
      stats.lastPeerHadCert = Boolean(call.getAuthContext().sslPeerCertificate);
      const echoed = call.metadata.get('x-demo-echo')[0];
      let attempt = 1;
      if (request.fail_first_attempts) {
        attempt = (stats.attemptsById.get(id) ?? 0) + 1;
        stats.attemptsById.set(id, attempt);
        const times = stats.attemptTimesById.get(id) ?? [];
        times.push(performance.now());
        stats.attemptTimesById.set(id, times);
      }
      let done = false;
      const finish = (error: grpc.ServiceError | null, value?: unknown) => {
        if (done) return;
        done = true;
        stats.inFlight--;
        const name = error ? (grpc.status[error.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN') : 'OK';
        stats.byStatus[name] = (stats.byStatus[name] ?? 0) + 1;
        callback(error, value);
      };
      let timer: NodeJS.Timeout | undefined;
      call.on('cancelled', () => {
        if (timer) clearTimeout(timer);
        if (!done) {
          done = true;
          stats.inFlight--;
          stats.byStatus['CANCELLED'] = (stats.byStatus['CANCELLED'] ?? 0) + 1;
        }
      });
      const answer = () => {
        if (request.fail_code) {
          return finish(serviceError(request.fail_code, `demo: asked to fail with code ${request.fail_code}`));
        }
        if (request.fail_first_attempts && attempt <= request.fail_first_attempts) {
          const error = serviceError(grpc.status.UNAVAILABLE, `demo: attempt ${attempt} of ${id} fails on purpose`);
          if (options.pushbackMs !== undefined) error.metadata.set('grpc-retry-pushback-ms', String(options.pushbackMs));
          return finish(error);
        }
        if (unavailableRate > 0 && Math.random() < unavailableRate) {
          return finish(serviceError(grpc.status.UNAVAILABLE, 'demo: random UNAVAILABLE'));
        }
        finish(null, {
          id,
          attempt,
          payload_length: Buffer.byteLength(request.payload ?? ''),
          echoed_metadata: typeof echoed === 'string' ? echoed : '',
        });
      };
      const latency = (request.latency_ms ?? 0) + extraLatency;
      if (latency > 0) timer = setTimeout(answer, latency);
      else answer();
    },
    ProcessStream(call: grpc.ServerDuplexStream<ProcessRequest, unknown>) {
      const stream = openStream(call);
      // Answers in request order: `queue[0]` is the oldest request not answered yet.
      const queue: Judged[] = [];
      let readEnded = false;
      let ended = false;
      const release = () => {
        while (!ended && queue.length > 0 && queue[0]!.ready) {
          const judged = queue.shift()!;
          if (judged.error) {
            ended = true;
            stream.close();
            stats.inFlight -= queue.length + 1;
            count(grpc.status[judged.error.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN');
            call.emit('error', judged.error);
            return;
          }
          stats.inFlight--;
          count('OK');
          call.write(judged.response);
        }
        if (!ended && readEnded && queue.length === 0) {
          ended = true;
          stream.close();
          call.end();
        }
      };
      call.on('data', (request: ProcessRequest) => {
        if (ended) return;
        const judged = judge(request, stream.echoed);
        queue.push(judged);
        const latency = (request.latency_ms ?? 0) + extraLatency;
        if (latency > 0) stream.timers.add(setTimeout(() => ((judged.ready = true), release()), latency));
        else (judged.ready = true), release();
      });
      call.on('end', () => ((readEnded = true), release()));
      call.on('cancelled', () => {
        if (!ended) {
          ended = true;
          stats.inFlight -= queue.length;
        }
        stream.close();
      });
      call.on('close', stream.close);
    },
    ProcessBatch(call: grpc.ServerReadableStream<ProcessRequest, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const stream = openStream(call);
      const batch: Judged[] = [];
      let latency = 0;
      let payloadLength = 0;
      call.on('data', (request: ProcessRequest) => {
        batch.push(judge(request, stream.echoed));
        latency = Math.max(latency, request.latency_ms ?? 0);
        payloadLength += Buffer.byteLength(request.payload ?? '');
      });
      let answered = false;
      const answer = () => {
        if (answered) return;
        answered = true;
        stream.close();
        stats.inFlight -= batch.length;
        const failed = batch.find((judged) => judged.error)?.error;
        const name = failed ? (grpc.status[failed.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN') : 'OK';
        for (let i = 0; i < batch.length; i++) count(name);
        if (failed) callback(failed);
        else
          callback(null, {
            count: batch.length,
            ids: batch.map((judged) => judged.id),
            payload_length: payloadLength,
            echoed_metadata: stream.echoed,
          });
      };
      call.on('end', () => {
        const wait = latency + extraLatency;
        if (wait > 0) stream.timers.add(setTimeout(answer, wait));
        else answer();
      });
      call.on('cancelled', () => {
        if (!answered) {
          answered = true;
          stats.inFlight -= batch.length;
        }
        stream.close();
      });
      call.on('close', stream.close);
    },
  });

  /** A request of a streaming method, counted and judged as `Process` would (its answer or its status). */
  interface Judged {
    readonly id: string;
    readonly error?: grpc.ServiceError;
    readonly response?: unknown;
    ready: boolean;
  }

  const count = (name: string) => (stats.byStatus[name] = (stats.byStatus[name] ?? 0) + 1);

  function openStream(call: grpc.ServerReadableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) {
    stats.streams++;
    stats.openStreams++;
    if (stats.openStreams > stats.maxOpenStreams) stats.maxOpenStreams = stats.openStreams;
    stats.lastMetadata = call.metadata.getMap();
    stats.lastPeerHadCert = Boolean(call.getAuthContext().sslPeerCertificate);
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    stats.lastStreamDeadlineMs = Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : Infinity;
    const echoed = call.metadata.get('x-demo-echo')[0];
    const timers = new Set<NodeJS.Timeout>();
    let closed = false;
    return {
      echoed: typeof echoed === 'string' ? echoed : '',
      timers,
      close: () => {
        if (closed) return;
        closed = true;
        stats.openStreams--;
        for (const timer of timers) clearTimeout(timer);
      },
    };
  }

  function judge(request: ProcessRequest, echoed: string): Judged {
    const id = request.id ?? '';
    stats.calls++;
    stats.inFlight++;
    if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
    if (stats.ids.length < MAX_IDS) stats.ids.push(id);
    let attempt = 1;
    if (request.fail_first_attempts) {
      attempt = (stats.attemptsById.get(id) ?? 0) + 1;
      stats.attemptsById.set(id, attempt);
    }
    if (request.fail_code)
      return {id, ready: false, error: serviceError(request.fail_code, `demo: asked to fail with code ${request.fail_code}`)};
    if (request.fail_first_attempts && attempt <= request.fail_first_attempts) {
      return {id, ready: false, error: serviceError(grpc.status.UNAVAILABLE, `demo: attempt ${attempt} of ${id} fails on purpose`)};
    }
    if (unavailableRate > 0 && Math.random() < unavailableRate)
      return {id, ready: false, error: serviceError(grpc.status.UNAVAILABLE, 'demo: random UNAVAILABLE')};
    return {id, ready: false, response: {id, attempt, payload_length: Buffer.byteLength(request.payload ?? ''), echoed_metadata: echoed}};
  }

  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(
        options.tls.ca ?? null,
        [{private_key: options.tls.key, cert_chain: options.tls.cert}],
        Boolean(options.tls.ca),
      )
    : grpc.ServerCredentials.createInsecure();
  const address = options.address ?? '127.0.0.1:0';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort))),
  );
  const host = address.slice(0, address.lastIndexOf(':'));
  let stopping: Promise<void> | undefined;
  return {
    port,
    address: `${host}:${port}`,
    stats,
    reset() {
      Object.assign(stats, freshStats());
    },
    setLatency(ms) {
      extraLatency = ms;
    },
    stop(graceMs = 1000) {
      return (stopping ??= new Promise<void>((resolve) => {
        // forceShutdown does not always call tryShutdown's callback (a client that sent TLS to this
        // plaintext server leaves a session that never started): resolve here too.
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }));
    },
  };
}

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), {code, details, metadata: new grpc.Metadata()});
}

function freshStats(): DemoServerStats {
  return {
    calls: 0,
    inFlight: 0,
    maxInFlight: 0,
    streams: 0,
    openStreams: 0,
    maxOpenStreams: 0,
    lastStreamDeadlineMs: undefined,
    byStatus: {},
    attemptsById: new Map(),
    attemptTimesById: new Map(),
    shed: 0,
    ids: [],
    lastMetadata: undefined,
    lastPeerHadCert: false,
  };
}
