/**
 * One bench client run, in its own process (bench/run.ts pins it to a core). Prints one JSON line:
 * `{calls, ok, ms, rate, cpuUsPerCall, maxRssMb}`. The modes:
 *
 * - `sequential`: one awaited grpc-js call after another (the one-at-a-time script).
 * - `pump`: a hand-written grpc-js pump, `makeUnaryRequest` with `concurrency` calls in flight
 *   over one client, the request encoded once: the ceiling a library over grpc-js can reach.
 * - `pump-call`: the same pump over grpc-batch's call path (`callUnary`, one `ChannelPool`): what the
 *   call path costs without the per-record work (parse, check, encode, decode, results file).
 * - `h2-pump`: no grpc-js at all: gRPC unary calls written by hand on Node's `http2` (one session,
 *   5-byte framing, `grpc-status` from the trailers), `concurrency` in flight, at most 8 started per
 *   event-loop turn as grpc-batch does. What Node's HTTP/2 allows without grpc-js's call layers:
 *   a yardstick for the (a) target, not a client anyone should ship (no resolver, TLS, keepalive,
 *   reconnection, deadlines or status details).
 * - `batch`: grpc-batch itself, `runJob` over a JSONL file, results file written, as a user runs it.
 *   `BENCH_JOB` (JSON) adds job keys (`{"adaptive": true, "retry": {...}}`, or a streaming method:
 *   `{"method": "demo.v1.DemoService/ProcessStream", "streams": 4}`); it also reports `attempts`.
 * - `pump-h2`: the `pump-call` pump over the `h2` transport (`callUnaryH2`, src/rpc/h2-transport.ts):
 *   grpc-batch's own HTTP/2 client instead of grpc-js and `node:http2`.
 * - `pump-sender`: the `pump-call` pump over `createSender` (src/rpc/sender.ts) for the method of
 *   `BENCH_JOB`: what a streaming primitive costs without the per-record work.
 *
 * Every mode also reports `secondHalfRate`, the calls/s over the second half of its calls: the first
 * half includes V8's warm-up (see bench/README.md).
 *
 * Usage: client.ts <mode> <address> <latencyMs> <calls> <concurrency> [inputFile] [channelOptionsJson]
 */
import {rmSync, writeFileSync} from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {loadJob} from '../src/config/load.js';
import {runJob} from '../src/engine/run.js';
import {callUnary} from '../src/rpc/call.js';
import {createSender} from '../src/rpc/sender.js';
import {ChannelPool} from '../src/rpc/channel.js';
import {callUnaryH2} from '../src/rpc/h2-transport.js';
import {loadMethod} from '../src/schema/method-handle.js';
import {DEMO_METHOD, DEMO_PROTO} from '../src/util/paths.js';

const [mode, address, latencyArg, callsArg, concurrencyArg, input, channelOptionsArg] = process.argv.slice(2);
/** Extra grpc-js channel options for `pump-call` and `batch` (JSON), to compare settings. */
const channelOptions = JSON.parse(channelOptionsArg || '{}') as Record<string, unknown>;
/** Extra job keys for `batch` and `pump-sender` (`BENCH_JOB`, JSON). */
const jobKeys = JSON.parse(process.env['BENCH_JOB'] || '{}') as {method?: string; streams?: number; batchSize?: number};
const latencyMs = Number(latencyArg);
const calls = Number(callsArg);
const concurrency = Number(concurrencyArg);
const DEADLINE_MS = 60_000;

interface Result {
  calls: number;
  ok: number;
  ms: number;
  /** Calls made, retries included (`batch` only). */
  attempts?: number;
  /** When at least half the calls had finished: ms since the start, and how many had. */
  half?: {ms: number; done: number};
}

/** Notes the first time `done` reaches half of `calls`. */
function halfway(startedAt: number) {
  let half: {ms: number; done: number} | undefined;
  return {
    check(done: number) {
      if (half === undefined && done * 2 >= calls) half = {ms: performance.now() - startedAt, done};
    },
    get value() {
      return half;
    },
  };
}

const identity = (value: Buffer): Buffer => value;

/** The request every raw call sends, encoded once. */
function rawSetup() {
  const method = loadMethod({proto: DEMO_PROTO, method: DEMO_METHOD});
  const request = method.encodeRequest({id: 'bench', payload: 'record 1', latencyMs});
  const client = new grpc.Client(address!, grpc.credentials.createInsecure());
  const call = (done: (error: grpc.ServiceError | null) => void) =>
    client.makeUnaryRequest(method.path, identity, identity, request, new grpc.Metadata(), {deadline: Date.now() + DEADLINE_MS}, (error) =>
      done(error),
    );
  return {client, call};
}

async function sequential(): Promise<Result> {
  const {client, call} = rawSetup();
  let ok = 0;
  const started = performance.now();
  const half = halfway(started);
  for (let i = 0; i < calls; i++) {
    const error = await new Promise<grpc.ServiceError | null>((resolve) => call(resolve));
    if (!error) ok++;
    half.check(i + 1);
  }
  const ms = performance.now() - started;
  client.close();
  return {calls, ok, ms, half: half.value};
}

async function pump(): Promise<Result> {
  const {client, call} = rawSetup();
  let started = 0;
  let finished = 0;
  let ok = 0;
  const startedAt = performance.now();
  const half = halfway(startedAt);
  await new Promise<void>((resolve) => {
    const next = () => {
      started++;
      call((error) => {
        finished++;
        half.check(finished);
        if (!error) ok++;
        if (started < calls) next();
        else if (finished === calls) resolve();
      });
    };
    for (let i = 0; i < concurrency && i < calls; i++) next();
  });
  const ms = performance.now() - startedAt;
  client.close();
  return {calls, ok, ms, half: half.value};
}

async function pumpCall(): Promise<Result> {
  const method = loadMethod({proto: DEMO_PROTO, method: DEMO_METHOD});
  const request = method.encodeRequest({id: 'bench', payload: 'record 1', latencyMs});
  const pool = new ChannelPool({target: address!, channelOptions});
  const options = {deadlineMs: DEADLINE_MS};
  let next = 0;
  let ok = 0;
  let done = 0;
  const startedAt = performance.now();
  const half = halfway(startedAt);
  const worker = async () => {
    while (next < calls) {
      next++;
      if ((await callUnary(pool.pick(), method, request, options)).ok) ok++;
      half.check(++done);
    }
  };
  await Promise.all(Array.from({length: Math.min(concurrency, calls)}, worker));
  const ms = performance.now() - startedAt;
  pool.close();
  return {calls, ok, ms, half: half.value};
}

async function pumpH2(): Promise<Result> {
  const method = loadMethod({proto: DEMO_PROTO, method: DEMO_METHOD});
  const request = method.encodeRequest({id: 'bench', payload: 'record 1', latencyMs});
  const pool = new ChannelPool({target: address!, channelOptions, transport: 'h2'});
  const options = {deadlineMs: DEADLINE_MS};
  let next = 0;
  let ok = 0;
  let done = 0;
  const startedAt = performance.now();
  const half = halfway(startedAt);
  const worker = async () => {
    while (next < calls) {
      next++;
      if ((await callUnaryH2(pool.pickH2(), method, request, options)).ok) ok++;
      half.check(++done);
    }
  };
  await Promise.all(Array.from({length: Math.min(concurrency, calls)}, worker));
  const ms = performance.now() - startedAt;
  pool.close();
  return {calls, ok, ms, half: half.value};
}

/**
 * `batch-checkpoint-N`: `batch` with a checkpoint every N ms, as `grpc-batch run --state` records
 * (every 1000 ms): both files flushed and fsynced before each. Against `batch` (fsync at the end
 * only), it is the cost of durability at checkpoints.
 */
const CHECKPOINT_MS = /^batch-checkpoint-(\d+)$/.exec(mode ?? '')?.[1];

async function pumpSender(): Promise<Result> {
  const method = loadMethod({proto: DEMO_PROTO, method: jobKeys.method ?? DEMO_METHOD});
  const request = method.encodeRequest({id: 'bench', payload: 'record 1', latencyMs});
  const pool = new ChannelPool({target: address!, channelOptions});
  const sender = createSender(pool, method, {deadlineMs: DEADLINE_MS, concurrency, streams: jobKeys.streams, batchSize: jobKeys.batchSize});
  let next = 0;
  let ok = 0;
  let done = 0;
  const startedAt = performance.now();
  const half = halfway(startedAt);
  const worker = async () => {
    while (next < calls) {
      next++;
      if ((await sender.send(request)).ok) ok++;
      half.check(++done);
    }
  };
  await Promise.all(Array.from({length: Math.min(concurrency, calls)}, worker));
  const ms = performance.now() - startedAt;
  await sender.close();
  pool.close();
  return {calls, ok, ms, half: half.value};
}

async function batch(): Promise<Result> {
  const inputFile = path.resolve(input!);
  const dir = path.dirname(inputFile);
  const out = path.join(dir, `out-${process.pid}`);
  const jobFile = path.join(dir, `job-${process.pid}.json`);
  writeFileSync(
    jobFile,
    JSON.stringify({
      name: 'bench',
      target: address,
      proto: DEMO_PROTO,
      method: DEMO_METHOD,
      input: path.basename(inputFile),
      concurrency,
      deadline: DEADLINE_MS,
      channelOptions,
      output: `${out}/results.jsonl`,
      failures: `${out}/failed.jsonl`,
      ...jobKeys,
    }),
  );
  try {
    const job = await loadJob(jobFile);
    const startedAt = performance.now();
    const half = halfway(startedAt);
    // Progress every 10 ms, as the CLI's (every 1 s) but finer: the half-way point is off by at most 10 ms.
    const checkpoints = CHECKPOINT_MS ? {onCheckpoint: () => undefined, checkpointIntervalMs: Number(CHECKPOINT_MS)} : {};
    const summary = await runJob(job, {onProgress: (progress) => half.check(progress.done), progressIntervalMs: 10, ...checkpoints});
    const ms = performance.now() - startedAt;
    return {calls: summary.total, ok: summary.ok, ms, attempts: summary.attempts, half: half.value};
  } finally {
    rmSync(jobFile, {force: true});
    rmSync(out, {recursive: true, force: true});
  }
}

/** Calls started per event-loop turn by `h2-pump`, as `CALLS_PER_TURN` in src/engine/turn-pacer.ts. */
const H2_CALLS_PER_TURN = 8;

async function h2Pump(): Promise<Result> {
  const method = loadMethod({proto: DEMO_PROTO, method: DEMO_METHOD});
  const request = method.encodeRequest({id: 'bench', payload: 'record 1', latencyMs});
  const framed = Buffer.alloc(5 + request.length); // flag 0 (not compressed), then the length
  framed.writeUInt32BE(request.length, 1);
  request.copy(framed, 5);
  const session = http2.connect(`http://${address}`);
  await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject));
  const headers = {':method': 'POST', ':path': method.path, 'content-type': 'application/grpc', te: 'trailers'};
  const call = (done: (ok: boolean) => void) => {
    const stream = session.request(headers);
    let status: unknown;
    stream.on('data', () => {});
    stream.on('trailers', (trailers) => (status = trailers['grpc-status']));
    stream.on('close', () => done(status === '0'));
    stream.end(framed);
  };
  let started = 0;
  let finished = 0;
  let ok = 0;
  // Pacing: at most H2_CALLS_PER_TURN starts per turn; the rest wait for the next turn.
  let startedThisTurn = 0;
  let turnScheduled = false;
  const waiting: (() => void)[] = [];
  const newTurn = () => {
    turnScheduled = false;
    startedThisTurn = 0;
    while (waiting.length > 0 && startedThisTurn < H2_CALLS_PER_TURN) {
      startedThisTurn++;
      waiting.shift()!();
    }
    if (startedThisTurn > 0) scheduleTurn();
  };
  const scheduleTurn = () => {
    if (!turnScheduled) {
      turnScheduled = true;
      setImmediate(newTurn);
    }
  };
  const startedAt = performance.now();
  const half = halfway(startedAt);
  await new Promise<void>((resolve) => {
    const next = () => {
      call((good) => {
        finished++;
        half.check(finished);
        if (good) ok++;
        if (started < calls) start();
        else if (finished === calls) resolve();
      });
    };
    const start = () => {
      started++;
      scheduleTurn();
      if (startedThisTurn < H2_CALLS_PER_TURN) {
        startedThisTurn++;
        next();
      } else {
        waiting.push(next);
      }
    };
    for (let i = 0; i < concurrency && i < calls; i++) start();
  });
  const ms = performance.now() - startedAt;
  session.close();
  return {calls, ok, ms, half: half.value};
}

const runs: Record<string, () => Promise<Result>> = {
  sequential,
  pump,
  'pump-call': pumpCall,
  'pump-h2': pumpH2,
  'pump-sender': pumpSender,
  'h2-pump': h2Pump,
  batch,
  ...(CHECKPOINT_MS ? {[mode!]: batch} : {}),
};
const run = runs[mode!];
if (!run) throw new TypeError(`Expected a mode of ${Object.keys(runs).join(', ')}, got \`${mode}\``);
const cpuBefore = process.cpuUsage();
const result = await run();
const cpu = process.cpuUsage(cpuBefore);
const {half, ...counts} = result;
process.stdout.write(
  `${JSON.stringify({
    ...counts,
    ms: Math.round(result.ms),
    rate: Math.round((result.calls * 1000) / result.ms),
    ...(half && half.ms < result.ms ? {secondHalfRate: Math.round(((result.calls - half.done) * 1000) / (result.ms - half.ms))} : {}),
    cpuUsPerCall: Math.round((cpu.user + cpu.system) / Math.max(1, result.calls)),
    maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  })}\n`,
);
