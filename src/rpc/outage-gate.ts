import {connectivityState} from '@grpc/grpc-js';
import {Status} from '../codec/status.js';
import {firstPart, NEVER_SENT, Suspicion} from './outage-suspicion.js';

/**
 * Outage = pause, not failure. The gate is open while the backend answers. When it stops answering
 * (the connection is lost or refused, nothing but UNAVAILABLE comes back for a while, a connection
 * attempt gets no answer for `connectTimeoutMs`, or calls time out with no answer at all and a probe
 * confirms the silence), the gate closes: no record is sent, the records at the gate wait, and the
 * gate probes the backend with backoff (waiting for the channel to be READY, then letting one record
 * through). The first OK opens it again. After `maxOutageMs` of outage it gives up: the run stops,
 * resumable.
 *
 * A silent network (packets dropped: a partition, a host that drops SYNs, a port that accepts TCP
 * and never speaks HTTP/2) shows only as DEADLINE_EXCEEDED. So a timeout makes an outage *suspected*:
 * the record waits for the verdict, which every call that times out meanwhile shares. The backend
 * answering anything after the timeout (another call's OK or error of its own, within a short grace;
 * else one probe call, `OutageGateOptions.probe`) clears it: the backend is there, merely slow for
 * those calls, and they fail as timeouts. No connection, or no answer to the probe either: an
 * outage, and the records go back to the gate, to be sent again. (An answer *before* the timeout
 * proves nothing: the calls caught by a partition were sent before it, among calls that were
 * answered.)
 */
export interface OutageGateOptions {
  /** The channel's connectivity (the best of the run's channels); `tryToConnect` starts a connection. */
  readonly state: (tryToConnect: boolean) => connectivityState;
  /** Calls back once the state is no longer `current`, or at `deadline` (grpc-js `watchConnectivityState`). */
  readonly watch: (current: connectivityState, deadline: number, callback: () => void) => void;
  /** Give up after this long unreachable; 0 = never. @default 300_000 */
  readonly maxOutageMs?: number;
  /** An outage also begins when only UNAVAILABLE came back for this long (at least `burstCount` of them). @default 1000 */
  readonly burstMs?: number;
  /** @default 5 */
  readonly burstCount?: number;
  /** First wait between probes. @default 200 */
  readonly initialProbeMs?: number;
  /** Longest wait between probes. @default 5000 */
  readonly maxProbeMs?: number;
  /**
   * One call that asks whether the backend answers at all (rpc/probe.ts); resolves `undefined` when
   * it answered, else why not. `signal` aborts when the gate stops. Without it, a connected channel
   * counts as an answer.
   */
  readonly probe?: (signal: AbortSignal) => Promise<string | undefined>;
  /** How long a suspected outage waits for another call to answer before it sends the probe. @default 200 */
  readonly suspicionGraceMs?: number;
  /**
   * A channel that has not connected after this long while records are out is an outage (grpc-js
   * gives a connection attempt no time limit: a host that drops SYNs keeps it CONNECTING for the
   * kernel's two minutes, a port that never speaks HTTP/2 forever). Checked by `checkConnecting`.
   * @default 20_000
   */
  readonly connectTimeoutMs?: number;
  /** Called when the backend goes down, comes back, or the gate gives up. */
  readonly onChange?: (event: OutageEvent) => void;
  /** @default performance.now */
  readonly now?: () => number;
}

export type OutageEvent =
  | {readonly type: 'down'; readonly reason: string}
  | {readonly type: 'up'; readonly pausedMs: number}
  | {readonly type: 'gave-up'; readonly pausedMs: number; readonly reason: string};

/** What the gate reports for progress and the summary. */
export interface OutageStatus {
  /** Whether records are being held back now. */
  readonly paused: boolean;
  /** How long the current outage has lasted, ms (0 when open). */
  readonly pausedForMs: number;
  /** The last error seen from the backend during the current outage. */
  readonly reason: string | undefined;
  /** Outages so far (each pause counts once). */
  readonly pauses: number;
  /** Time spent paused, ms, the current pause included. */
  readonly pausedMs: number;
}

export const DEFAULT_MAX_OUTAGE_MS = 300_000;
/** gRPC's minimum connect timeout (MIN_CONNECT_TIMEOUT in grpc's doc/connection-backoff.md). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

export class OutageGate {
  readonly #options: Required<Omit<OutageGateOptions, 'onChange' | 'probe'>> & Pick<OutageGateOptions, 'onChange' | 'probe'>;
  #closedAt: number | undefined;
  #reason: string | undefined;
  #pauses = 0;
  #pausedMs = 0;
  /** Records waiting at the gate, in arrival order; each is resolved with whether to send. */
  #waiters: ((send: boolean) => void)[] = [];
  /** A probe record is out: the gate waits for its answer before letting another through. */
  #probing = false;
  #lastProbeFailedAt: number | undefined;
  #probeWaitMs: number;
  #loop: Promise<void> | undefined;
  #stopped = false;
  #stoppedAt: number | undefined;
  #gaveUp = false;
  readonly #timers = new Map<NodeJS.Timeout, () => void>();
  /** Start of the current run of UNAVAILABLE answers with no OK in between, and its length. */
  #streakStart: number | undefined;
  #streak = 0;
  /** The suspected outage under way (see the class), if any. */
  #suspicion: Suspicion | undefined;
  /**
   * The outage is a silent network (calls timed out, a connection attempt got no answer): the gate
   * probes with the probe call, not with a record, which would only be caught too (and received
   * twice once the network heals: TCP delivers what it retransmits).
   */
  #silent = false;
  /** Aborted by `stop()`: ends a probe call under way. */
  readonly #stopAbort = new AbortController();
  /** Since when the channel has not been connected while records were out (`checkConnecting`). */
  #notConnectedSince: number | undefined;

  constructor(options: OutageGateOptions) {
    this.#options = {
      maxOutageMs: DEFAULT_MAX_OUTAGE_MS,
      burstMs: 1000,
      burstCount: 5,
      initialProbeMs: 200,
      maxProbeMs: 5000,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      suspicionGraceMs: 200,
      now: () => performance.now(),
      ...options,
    };
    this.#probeWaitMs = this.#options.initialProbeMs;
  }

  get isOpen(): boolean {
    return this.#closedAt === undefined;
  }

  /** Whether the gate gave up (`maxOutageMs` passed). */
  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /**
   * Waits for the right to send. `undefined` (no promise, the fast path) when the gate is open; else a
   * promise of `true` (send: the gate opened, or this record is the probe) or `false` (the run is
   * stopping or the gate gave up: do not send).
   */
  pass(): Promise<boolean> | undefined {
    if (this.#closedAt === undefined) return undefined;
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#kick();
    });
  }

  /** An attempt was answered OK: the backend is there. */
  onOk(): void {
    this.#settleSuspicion(false);
    this.#streak = 0;
    this.#streakStart = undefined;
    this.#probing = false;
    if (this.#closedAt !== undefined) this.#open();
  }

  /**
   * An attempt failed for a reason of the job's own (its TLS settings, a server that resets a
   * plaintext connection): as far as the gate goes the backend is there, as when it answers with
   * an error of the record's own; it starts no outage and ends an UNAVAILABLE streak and a probe.
   */
  onOwnMistake(): void {
    this.onOk();
  }

  /**
   * An attempt failed. `connectionLost`: it failed because there is no connection (refused, reset,
   * dropped), so the backend is unreachable now. Returns whether the failure is part of an outage:
   * such a failure does not count against the record's attempts, and the record goes back to the
   * gate (or, when the run is stopping, is left unsent). A timeout returns a promise: the verdict on
   * the suspected outage (see the class).
   */
  onFailure(code: number, details: string, connectionLost: boolean): boolean | Promise<boolean> {
    if (connectionLost) {
      if (this.#probing) this.#probeFailed();
      this.#close(details);
      return true;
    }
    if (code === Status.DEADLINE_EXCEEDED) return this.#onTimeout(details);
    if (code !== Status.UNAVAILABLE) {
      // The server answered (with an error of the record's own): it is there.
      this.onOk();
      return false;
    }
    if (this.#probing) this.#probeFailed();
    const now = this.#options.now();
    this.#streakStart ??= now;
    this.#streak++;
    if (this.#closedAt !== undefined) {
      this.#reason = details;
      return true;
    }
    if (this.#streak >= this.#options.burstCount && now - this.#streakStart >= this.#options.burstMs) {
      this.#close(`UNAVAILABLE with no OK for ${Math.round(now - this.#streakStart)}ms: ${details}`);
      return true;
    }
    return false;
  }

  /**
   * Call every so often while records are out (`busy`): a channel that has not been connected for
   * `connectTimeoutMs` while they were closes the gate.
   */
  checkConnecting(busy: boolean): void {
    const o = this.#options;
    if (!busy || this.#closedAt !== undefined || this.#stopped || o.state(false) === connectivityState.READY) {
      this.#notConnectedSince = undefined;
      return;
    }
    const now = o.now();
    this.#notConnectedSince ??= now;
    if (now - this.#notConnectedSince >= o.connectTimeoutMs) {
      this.#notConnectedSince = undefined;
      this.#close(
        `no connection after ${formatSeconds(o.connectTimeoutMs)}: the connection attempt got no answer (packets dropped, or a port that does not speak HTTP/2)`,
        true,
      );
    }
  }

  status(): OutageStatus {
    const now = this.#stoppedAt ?? this.#options.now();
    const current = this.#closedAt === undefined ? 0 : now - this.#closedAt;
    return {
      paused: this.#closedAt !== undefined,
      pausedForMs: current,
      reason: this.#reason,
      pauses: this.#pauses,
      pausedMs: this.#pausedMs + current,
    };
  }

  /**
   * The run is stopping: records at the gate, and any that come to it while it is shut, leave
   * without sending (`false`); records go on through an open gate. The probing ends. Idempotent.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stoppedAt = this.#options.now();
    this.#settleSuspicion(true); // unfinished: a resume sends them again
    this.#stopAbort.abort();
    this.#release(false);
    for (const [timer, resolve] of this.#timers) {
      clearTimeout(timer);
      resolve();
    }
    this.#timers.clear();
  }

  /** A DEADLINE_EXCEEDED: the record's own timeout, or part of a (suspected) outage. */
  #onTimeout(details: string): boolean | Promise<boolean> {
    if (this.#probing) this.#probeFailed(); // the probe record got no answer either
    if (this.#closedAt !== undefined) return true;
    // Stopping: no verdict to wait for; the record is left unsent (a resume sends it again).
    if (this.#stopped) return true;
    const suspicion = (this.#suspicion ??= this.#suspect(details));
    // A call that timed out before it was sent is sent again, once the gate knows whether to hold it.
    return NEVER_SENT.test(details) ? suspicion.verdict.then(() => true) : suspicion.verdict;
  }

  /** Starts a suspected outage: the probe goes out after the grace, unless an answer came first. */
  #suspect(details: string): Suspicion {
    return new Suspicion(this.#options.suspicionGraceMs, (suspicion) => void this.#check(suspicion, details));
  }

  /**
   * Whether the backend is silent: the channel is not connected, or it is and the probe call gets
   * no answer either. Closes the gate if so.
   */
  async #check(suspicion: Suspicion, details: string): Promise<void> {
    const o = this.#options;
    if (o.state(true) !== connectivityState.READY) {
      this.#close(`no connection to the backend: calls timed out (${firstPart(details)}) waiting for one`, true);
      return;
    }
    const noAnswer = o.probe ? await o.probe(suspicion.signal) : undefined;
    if (this.#suspicion !== suspicion) return; // settled meanwhile (an answer, a close, the stop)
    if (noAnswer === undefined) this.#settleSuspicion(false);
    else
      this.#close(
        `no answer from the backend: calls timed out (${firstPart(details)}), and a probe call got no answer either (${firstPart(noAnswer)})`,
        true,
      );
  }

  /** Ends the suspected outage: `outage` is what the records waiting for the verdict get. */
  #settleSuspicion(outage: boolean): void {
    const suspicion = this.#suspicion;
    if (!suspicion) return;
    this.#suspicion = undefined;
    suspicion.settle(outage);
  }

  /** `silent`: see `#silent`. */
  #close(reason: string, silent = false): void {
    this.#settleSuspicion(true);
    this.#reason = reason;
    if (this.#closedAt !== undefined) return;
    this.#closedAt = this.#options.now();
    this.#silent = silent;
    if (this.#stopped) return;
    this.#pauses++;
    this.#probeWaitMs = this.#options.initialProbeMs;
    this.#lastProbeFailedAt = undefined;
    this.#options.onChange?.({type: 'down', reason});
    this.#kick();
  }

  #open(): void {
    if (this.#closedAt === undefined) return;
    const pausedFor = (this.#stoppedAt ?? this.#options.now()) - this.#closedAt!;
    this.#closedAt = undefined;
    this.#silent = false;
    this.#reason = undefined;
    if (this.#stopped) return;
    this.#pausedMs += pausedFor;
    this.#options.onChange?.({type: 'up', pausedMs: pausedFor});
    this.#release(true);
  }

  #probeFailed(): void {
    this.#probing = false;
    this.#lastProbeFailedAt = this.#options.now();
    this.#probeWaitMs = Math.min(this.#options.maxProbeMs, this.#probeWaitMs * 2);
  }

  #release(send: boolean): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve(send);
  }

  /** Starts the probe loop if it is not running. */
  #kick(): void {
    if (this.#stopped) return;
    this.#loop ??= this.#probeLoop().finally(() => (this.#loop = undefined));
  }

  async #probeLoop(): Promise<void> {
    const o = this.#options;
    while (this.#closedAt !== undefined && !this.#stopped) {
      const now = o.now();
      if (o.maxOutageMs > 0 && now - this.#closedAt >= o.maxOutageMs) {
        this.#gaveUp = true;
        const pausedMs = now - this.#closedAt;
        const reason = `the backend was unreachable for ${formatSeconds(pausedMs)} (maxOutage): ${this.#reason ?? 'no answer'}`;
        this.stop();
        o.onChange?.({type: 'gave-up', pausedMs, reason});
        return;
      }
      const untilGiveUp = o.maxOutageMs > 0 ? this.#closedAt + o.maxOutageMs - now : Infinity;
      const silent = this.#silent && o.probe !== undefined;
      if (!silent && (this.#probing || this.#waiters.length === 0)) {
        // A probe is out (its answer opens or re-closes the gate), or no record waits to be one.
        await this.#sleep(Math.min(this.#probeWaitMs, untilGiveUp));
        if (
          this.#closedAt !== undefined &&
          !this.#probing &&
          this.#waiters.length === 0 &&
          o.state(true) === connectivityState.READY &&
          this.#lastProbeFailedAt === undefined
        ) {
          // Connected again and nobody to probe with: open, the next record is the probe.
          this.#open();
          return;
        }
        continue;
      }
      const state = o.state(true);
      if (state !== connectivityState.READY) {
        await new Promise<void>((resolve) => o.watch(state, Date.now() + Math.min(this.#probeWaitMs, untilGiveUp), resolve));
        if (o.state(false) !== connectivityState.READY) this.#probeWaitMs = Math.min(o.maxProbeMs, this.#probeWaitMs * 2);
        continue;
      }
      if (this.#lastProbeFailedAt !== undefined) {
        const wait = this.#lastProbeFailedAt + this.#probeWaitMs - o.now();
        if (wait > 0) {
          await this.#sleep(Math.min(wait, untilGiveUp));
          continue;
        }
      }
      if (silent) {
        // READY, on a network that was silent: the probe call's answer decides.
        const noAnswer = await this.#probeCall(untilGiveUp);
        if (this.#closedAt === undefined || this.#stopped) continue;
        if (noAnswer === undefined) this.#open();
        else this.#probeFailed();
        continue;
      }
      // READY: one record goes out as the probe; its answer decides.
      this.#probing = true;
      this.#waiters.shift()!(true);
    }
  }

  /** The probe call, cut short by `stop()` or after `limitMs` (the time left before giving up). */
  async #probeCall(limitMs: number): Promise<string | undefined> {
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.#stopAbort.signal.addEventListener('abort', onStop, {once: true});
    const timer = Number.isFinite(limitMs) ? setTimeout(onStop, Math.max(1, limitMs)) : undefined;
    try {
      return await this.#options.probe!(abort.signal);
    } finally {
      clearTimeout(timer);
      this.#stopAbort.signal.removeEventListener('abort', onStop);
    }
  }

  /** A wait that `stop()` cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          this.#timers.delete(timer);
          resolve();
        },
        Math.max(1, ms),
      );
      this.#timers.set(timer, resolve);
    });
  }
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
