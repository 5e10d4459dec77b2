import {connectivityState} from '@grpc/grpc-js';

/**
 * Outage = pause, not failure. The gate is open while the backend answers. When it stops answering
 * (the connection is lost or refused, or nothing but UNAVAILABLE comes back for a while), the gate
 * closes: no record is sent, the records at the gate wait, and the gate probes the backend with
 * backoff (waiting for the channel to be READY, then letting one record through). The first OK
 * opens it again. After `maxOutageMs` of outage it gives up: the run stops, resumable.
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
const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;

export class OutageGate {
  readonly #options: Required<Omit<OutageGateOptions, 'onChange'>> & Pick<OutageGateOptions, 'onChange'>;
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

  constructor(options: OutageGateOptions) {
    this.#options = {
      maxOutageMs: DEFAULT_MAX_OUTAGE_MS,
      burstMs: 1000,
      burstCount: 5,
      initialProbeMs: 200,
      maxProbeMs: 5000,
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
   * such a failure does not count against the record's attempts, and the record goes back to the gate.
   */
  onFailure(code: number, details: string, connectionLost: boolean): boolean {
    if (connectionLost) {
      if (this.#probing) this.#probeFailed();
      this.#close(details);
      return true;
    }
    if (code === DEADLINE_EXCEEDED) {
      // No answer in time: no sign either way, unless it was the probe.
      if (this.#probing) this.#probeFailed();
      return this.#closedAt !== undefined;
    }
    if (code !== UNAVAILABLE) {
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

  status(): OutageStatus {
    const now = this.#stoppedAt ?? this.#options.now();
    const current = this.#closedAt === undefined ? 0 : now - this.#closedAt;
    return {paused: this.#closedAt !== undefined, pausedForMs: current, reason: this.#reason, pauses: this.#pauses, pausedMs: this.#pausedMs + current};
  }

  /**
   * The run is stopping: records at the gate, and any that come to it while it is shut, leave
   * without sending (`false`); records go on through an open gate. The probing ends. Idempotent.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stoppedAt = this.#options.now();
    this.#release(false);
    for (const [timer, resolve] of this.#timers) {
      clearTimeout(timer);
      resolve();
    }
    this.#timers.clear();
  }

  #close(reason: string): void {
    this.#reason = reason;
    if (this.#closedAt !== undefined) return;
    this.#closedAt = this.#options.now();
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
      if (this.#probing || this.#waiters.length === 0) {
        // A probe is out (its answer opens or re-closes the gate), or no record waits to be one.
        await this.#sleep(Math.min(this.#probeWaitMs, untilGiveUp));
        if (this.#closedAt !== undefined && !this.#probing && this.#waiters.length === 0 && o.state(true) === connectivityState.READY && this.#lastProbeFailedAt === undefined) {
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
      // READY: one record goes out as the probe; its answer decides.
      this.#probing = true;
      this.#waiters.shift()!(true);
    }
  }

  /** A wait that `stop()` cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, Math.max(1, ms));
      this.#timers.set(timer, resolve);
    });
  }
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
