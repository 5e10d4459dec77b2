import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {Worker} from 'node:worker_threads';
import {InternalError} from '../errors.js';
import type {JobSpec} from '../config/spec.js';
import type {OutageStatus} from '../rpc/outage-gate.js';
import type {Executor, ExecutorEvents, RecordCall} from './executor.js';
import type {PipelineStatus} from './pipeline.js';
import type {RunStats} from './stats.js';
import type {MethodHandle} from '../schema/method-handle.js';
import {
  plainSpec,
  type FromWorker,
  type ResultItem,
  type ToWorker,
  type WorkerCall,
  type WorkerInit,
  type WorkerStatus,
} from './thread-protocol.js';
import {Waiter} from '../util/waiter.js';

/** Records sent to a worker in one message. The hop costs ~1 µs a record in batches of 64. */
const BATCH = 64;
/** Splits a total into `parts` integers that add up to it, as even as can be. */
export function splitInteger(total: number, parts: number): number[] {
  return Array.from({length: parts}, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

interface WorkerSlot {
  readonly worker: Worker;
  readonly share: {readonly concurrency: number; readonly rps: number};
  /** Records handed to it and not reported yet. */
  outstanding: number;
  batch: RecordCall[];
  status: WorkerStatus | undefined;
  final: Extract<FromWorker, {type: 'done'}> | undefined;
  exited: Promise<void>;
  /** Its results are being written: the next message waits (results stay in order). */
  busy: Promise<void>;
}

const EMPTY_OUTAGE: OutageStatus = {paused: false, pausedForMs: 0, reason: undefined, pauses: 0, pausedMs: 0};

/**
 * Runs the records on N worker threads, each with its own channel and a share of `concurrency`
 * and `rps` (the shares add up to the job's totals). The main thread hands out records in batches
 * (a few queued per worker), writes every result, then tells the worker its slots are free.
 */
export class ThreadExecutor implements Executor {
  readonly #slots: WorkerSlot[];
  readonly #events: ExecutorEvents;
  /** Writes what is buffered (the results of a batch) before the worker may reuse their slots. */
  readonly #flush: () => void;
  /** Records handed out and not reported yet, with the worker that has them. */
  readonly #calls = new Map<number, {readonly call: RecordCall; readonly slot: WorkerSlot}>();
  readonly #capacity: number;
  #outstanding = 0;
  #batchScheduled = false;
  #stopping = false;
  readonly #room = new Waiter(() => this.hasRoom || this.#stopping);
  readonly #idle = new Waiter(() => this.#outstanding === 0);
  #closing: Promise<void> | undefined;

  constructor(spec: JobSpec, workers: number, events: ExecutorEvents, flush: () => void, method: MethodHandle) {
    this.#events = events;
    this.#flush = flush;
    const count = Math.min(workers, spec.concurrency);
    const concurrency = splitInteger(spec.concurrency, count);
    const plain = plainSpec(spec);
    const schema = {json: method.root.toJSON(), origin: method.origin};
    this.#slots = concurrency.map((share, index) => {
      const init: WorkerInit = {spec: plain, share: {concurrency: share, rps: spec.rps / count}, index, schema};
      const worker = startWorker(init);
      const slot: WorkerSlot = {
        worker,
        share: init.share,
        outstanding: 0,
        batch: [],
        status: undefined,
        final: undefined,
        exited: Promise.resolve(),
        busy: Promise.resolve(),
      };
      slot.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
      worker.on('message', (message: FromWorker) => this.#onMessage(slot, message));
      worker.on('error', (error) => this.#workerFailed(slot, error));
      worker.on('exit', (code) => {
        if (!slot.final)
          this.#workerFailed(slot, new InternalError(`worker thread ${index} exited (code ${code}) before the end of the run`));
      });
      return slot;
    });
    // Room for every slot plus a few batches queued in each worker, so none waits for the next.
    this.#capacity = spec.concurrency + this.#slots.reduce((n, s) => n + Math.min(s.share.concurrency, 2 * BATCH), 0);
  }

  get hasRoom(): boolean {
    return this.#outstanding < this.#capacity && !this.#stopping;
  }

  room(): Promise<void> {
    return this.#room.wait();
  }

  submit(call: RecordCall): void {
    // The worker with the most room for its share.
    let best = this.#slots[0]!;
    for (const slot of this.#slots) if (slot.outstanding / slot.share.concurrency < best.outstanding / best.share.concurrency) best = slot;
    best.outstanding++;
    this.#outstanding++;
    this.#calls.set(call.line, {call, slot: best});
    best.batch.push(call);
    if (best.batch.length >= BATCH) this.#send(best);
    else if (!this.#batchScheduled) {
      this.#batchScheduled = true;
      setImmediate(() => {
        this.#batchScheduled = false;
        for (const slot of this.#slots) this.#send(slot);
      });
    }
  }

  idle(): Promise<void> {
    return this.#idle.wait();
  }

  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    // Batches not handed over yet never reach a worker.
    for (const slot of this.#slots) {
      const unsent = slot.batch;
      slot.batch = [];
      for (const call of unsent) this.#settle(call.line, () => this.#events.onUnsent(call));
    }
    this.#post({type: 'stop'});
    this.#room.check();
  }

  cancel(): void {
    this.stop();
    this.#post({type: 'cancel'});
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      this.#post({type: 'end'});
      await Promise.all(this.#slots.map((slot) => slot.exited));
    })());
  }

  status(): PipelineStatus {
    let calls = 0;
    let limit = 0;
    let records = 0;
    const outages: OutageStatus[] = [];
    for (const slot of this.#slots) {
      const status = slot.final?.status ?? slot.status;
      calls += status?.calls ?? 0;
      records += Math.min(status?.records ?? 0, status?.limit ?? slot.share.concurrency); // past its limit, a record waits in the worker's queue
      limit += status?.limit ?? slot.share.concurrency;
      if (status) outages.push(status.outage);
    }
    const paused = outages.find((o) => o.paused);
    // Workers pause together (one backend): the time paused is the longest of theirs, not the sum.
    const outage: OutageStatus = {
      paused: paused !== undefined,
      pausedForMs: Math.max(0, ...outages.map((o) => o.pausedForMs)),
      reason: paused?.reason,
      pauses: Math.max(0, ...outages.map((o) => o.pauses)),
      pausedMs: Math.max(0, ...outages.map((o) => o.pausedMs)),
    };
    // Records the workers have in flight, as they last reported: the records handed to a worker
    // ahead of their turn are not (the progress line's `in flight` stays within `concurrency`).
    return {records, calls, limit, outage};
  }

  get attempts(): number {
    return this.#slots.reduce((n, slot) => n + ((slot.final?.status ?? slot.status)?.attempts ?? 0), 0);
  }

  get throttled(): number {
    return this.#slots.reduce((n, slot) => n + ((slot.final?.status ?? slot.status)?.throttled ?? 0), 0);
  }

  limitRange(): {min: number; mean: number; max: number} | undefined {
    const ranges = this.#slots.map((slot) => slot.final?.limitRange);
    if (ranges.some((r) => r === undefined)) return undefined;
    const sum = (key: 'min' | 'mean' | 'max') => Math.round(ranges.reduce((n, r) => n + r![key], 0) * 10) / 10;
    return {min: sum('min'), mean: sum('mean'), max: sum('max')};
  }

  collectLatencies(into: RunStats): void {
    for (const slot of this.#slots) {
      if (!slot.final) continue;
      into.attempts += slot.final.status.attempts;
      if (slot.final.latencies.histogram) into.addLatencies(slot.final.latencies);
    }
  }

  #send(slot: WorkerSlot): void {
    if (slot.batch.length === 0) return;
    const calls = slot.batch.map(
      (call): WorkerCall => ({
        line: call.line,
        request: call.request,
        ...(call.metadata ? {metadata: call.metadata.toJSON() as WorkerCall['metadata']} : {}),
        ...(call.deadlineMs !== undefined ? {deadlineMs: call.deadlineMs} : {}),
      }),
    );
    slot.batch = [];
    slot.worker.postMessage({type: 'calls', calls} satisfies ToWorker);
  }

  #post(message: ToWorker): void {
    for (const slot of this.#slots) if (!slot.final) slot.worker.postMessage(message);
  }

  #onMessage(slot: WorkerSlot, message: FromWorker): void {
    switch (message.type) {
      case 'results':
        slot.status = message.status;
        slot.busy = slot.busy.then(() => this.#write(slot, message.items)).catch(this.#events.onFatal);
        break;
      case 'status':
        slot.status = message.status;
        break;
      case 'outage':
        this.#events.onOutage(message.event);
        break;
      case 'fatal':
        this.#events.onFatal(new InternalError(`worker thread: ${message.message}`));
        break;
      case 'done':
        slot.final = message;
        break;
    }
  }

  /** Writes a batch of results in order, flushes them to disk, then frees their slots in the worker. */
  async #write(slot: WorkerSlot, items: readonly ResultItem[]): Promise<void> {
    const written: number[] = [];
    for (const item of items) {
      const call = this.#calls.get(item.line)?.call;
      if (!call) continue;
      if (item.kind === 'unsent') this.#settle(item.line, () => this.#events.onUnsent(call));
      else {
        const done = this.#events.onFinal(call, item.code, item.attempts, item.text, item.details);
        if (done) await done;
        written.push(item.line);
        this.#settle(item.line);
      }
    }
    if (written.length === 0) return;
    this.#flush();
    if (!slot.final) slot.worker.postMessage({type: 'ack', lines: written} satisfies ToWorker);
  }

  #settle(line: number, report?: () => void): void {
    const entry = this.#calls.get(line);
    if (!entry) return;
    this.#calls.delete(line);
    report?.();
    entry.slot.outstanding--;
    this.#outstanding--;
    this.#room.check();
    this.#idle.check();
  }

  /** A worker that died: its records get no result (a resume sends them) and the run stops. */
  #workerFailed(slot: WorkerSlot, error: unknown): void {
    if (slot.final) return;
    slot.final = {
      type: 'done',
      status: slot.status ?? {records: 0, calls: 0, limit: 0, attempts: 0, throttled: 0, outage: EMPTY_OUTAGE},
      latencies: {histogram: ''},
      limitRange: undefined,
    };
    slot.batch = [];
    for (const [line, entry] of [...this.#calls]) if (entry.slot === slot) this.#settle(line, () => this.#events.onUnsent(entry.call));
    this.#events.onFatal(error);
  }
}

/**
 * Starts the worker entry next to this file. Compiled (.js), it runs as it is; from source (.ts,
 * the tests run through tsx), tsx's loader is registered in the worker first, since a worker does
 * not inherit the loader hooks of the main thread.
 */
function startWorker(init: WorkerInit): Worker {
  const extension = path.extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./thread-worker${extension}`, import.meta.url);
  if (extension !== '.ts') return new Worker(entry, {workerData: init});
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((api) => api.register()).then(() => import(${JSON.stringify(entry.href)}))`;
  return new Worker(boot, {eval: true, workerData: init});
}
