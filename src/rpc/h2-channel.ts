import {readFileSync} from 'node:fs';
import {connect as netConnect, isIP, type Socket} from 'node:net';
import {connect as tlsConnect, type TLSSocket} from 'node:tls';
import {connectivityState} from '@grpc/grpc-js';
import type {TlsSpec} from './credentials.js';
import {H2Connection, type H2ConnectionOwner} from './h2-connection.js';
import type {H2Stream} from './h2-stream.js';
import {parseH2Target, resolveH2Target, type H2Address, type H2Target} from './h2-target.js';

/** gRPC connection backoff (doc/connection-backoff.md): 1 s, x1.6, jitter 0.2, 120 s at most, 20 s to connect. */
export const INITIAL_BACKOFF_MS = 1000;
export const BACKOFF_MULTIPLIER = 1.6;
export const BACKOFF_JITTER = 0.2;
export const MAX_BACKOFF_MS = 120_000;
export const CONNECT_TIMEOUT_MS = 20_000;

/** A call as the channel queues, routes, times out and fails it. */
export interface H2ChannelCall extends H2Stream {
  /** Wait for a connection rather than fail while the channel is in TRANSIENT_FAILURE. */
  readonly waitForReady: boolean;
  /** The connection the stream went to (reset goes there). */
  connection: H2Connection | undefined;
  /** No connection could be made. */
  noConnection(details: string): void;
  /** The deadline passed (the sweep calls it). */
  expire(): void;
}

export interface H2ChannelOptions {
  readonly target: string;
  readonly tls?: TlsSpec | undefined;
  /** @default INITIAL_BACKOFF_MS */
  readonly initialBackoffMs?: number;
  /** @default MAX_BACKOFF_MS */
  readonly maxBackoffMs?: number;
  /** @default CONNECT_TIMEOUT_MS */
  readonly connectTimeoutMs?: number;
  readonly keepaliveTimeMs?: number;
  readonly keepaliveTimeoutMs?: number;
  readonly keepaliveWithoutCalls?: boolean;
  /** The first stream id of each connection: tests start near 2^31 to see the ids run out. @default 1 */
  readonly firstStreamId?: number;
}

interface Watcher {
  readonly callback: () => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * A channel of the `h2` transport: one HTTP/2 connection at a time to the target (pick-first over
 * its addresses, every address tried in order, resolved again for each attempt), reconnection with
 * gRPC's backoff, and connectivity states read as grpc-js's are (IDLE, CONNECTING, READY,
 * TRANSIENT_FAILURE, SHUTDOWN). Calls wait while it connects; in TRANSIENT_FAILURE they fail at once
 * with UNAVAILABLE unless they wait for ready. One timer sweeps the deadlines of every call.
 */
export class H2Channel {
  readonly target: H2Target;
  readonly secure: boolean;
  readonly #options: H2ChannelOptions;
  readonly #tls: {ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string | undefined} | undefined;
  #state = connectivityState.IDLE;
  #ready: H2Connection | undefined;
  readonly #connections = new Set<H2Connection>();
  #connecting = false;
  #pending: H2ChannelCall[] = [];
  #lastError = 'no connection attempt yet';
  #backoffMs: number;
  #backoffTimer: NodeJS.Timeout | undefined;
  #keepaliveTimeMs: number;
  readonly #watchers = new Set<Watcher>();
  readonly #timed = new Set<H2ChannelCall>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweepAt = Infinity;

  constructor(options: H2ChannelOptions) {
    const target = parseH2Target(options.target);
    if (typeof target === 'string') throw new TypeError(`h2 transport: target: ${target}`);
    this.target = target;
    this.#options = options;
    this.secure = options.tls !== undefined;
    const tls = options.tls;
    this.#tls = tls
      ? {
          ...(tls.ca ? {ca: readFileSync(tls.ca)} : {}),
          ...(tls.cert ? {cert: readFileSync(tls.cert)} : {}),
          ...(tls.key ? {key: readFileSync(tls.key)} : {}),
          servername: tls.serverName ?? (isIP(target.host) ? undefined : target.host),
        }
      : undefined;
    this.#backoffMs = options.initialBackoffMs ?? INITIAL_BACKOFF_MS;
    this.#keepaliveTimeMs = options.keepaliveTimeMs ?? 0;
  }

  /** Sends the call on the connection, or queues it until there is one. */
  start(call: H2ChannelCall): void {
    call.connection = undefined;
    if (this.#state === connectivityState.SHUTDOWN) return call.noConnection('Channel has been shut down');
    const ready = this.#ready;
    if (ready?.isReady) {
      call.connection = ready;
      ready.start(call);
      return;
    }
    if (this.#state === connectivityState.TRANSIENT_FAILURE && !call.waitForReady) return call.noConnection(this.#noConnectionDetails());
    this.#pending.push(call);
    this.#connect();
  }

  /** Takes the call back: RST_STREAM if it is on a connection. */
  cancel(call: H2ChannelCall): void {
    if (call.connection) call.connection.reset(call);
    else {
      const at = this.#pending.indexOf(call);
      if (at >= 0) this.#pending.splice(at, 1);
    }
    this.untrack(call);
  }

  /** Watches the call's deadline (one timer for all). */
  track(call: H2ChannelCall): void {
    this.#timed.add(call);
    if (call.deadline < this.#sweepAt) this.#armSweep(call.deadline);
  }

  untrack(call: H2ChannelCall): void {
    this.#timed.delete(call);
  }

  getConnectivityState(tryToConnect: boolean): connectivityState {
    if (tryToConnect && this.#state === connectivityState.IDLE) this.#connect();
    return this.#state;
  }

  /** Calls back once the state is not `current`, or at `deadline` (ms since the epoch), as grpc-js's channel does. */
  watchConnectivityState(current: connectivityState, deadline: number, callback: () => void): void {
    if (this.#state !== current) {
      setImmediate(callback);
      return;
    }
    const watcher: Watcher = {callback, timer: undefined};
    const wait = deadline - Date.now();
    if (Number.isFinite(wait)) {
      watcher.timer = setTimeout(
        () => {
          this.#watchers.delete(watcher);
          callback();
        },
        Math.max(0, wait),
      );
    }
    this.#watchers.add(watcher);
  }

  /** Connects and calls back once READY, or with an error at `deadline`. */
  waitForReady(deadline: number, callback: (error?: Error) => void): void {
    const check = () => {
      const state = this.getConnectivityState(true);
      if (state === connectivityState.READY) return callback();
      if (state === connectivityState.SHUTDOWN || Date.now() >= deadline)
        return callback(new Error(`Failed to connect before the deadline: ${this.#lastError}`));
      this.watchConnectivityState(state, deadline, check);
    };
    check();
  }

  /** Closes every connection; calls in flight end, queued ones fail. Idempotent. */
  close(): void {
    if (this.#state === connectivityState.SHUTDOWN) return;
    this.#setState(connectivityState.SHUTDOWN);
    if (this.#backoffTimer) clearTimeout(this.#backoffTimer);
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    for (const connection of this.#connections) connection.close();
    this.#connections.clear();
    this.#ready = undefined;
    this.#failPending('Channel has been shut down', true);
    for (const watcher of this.#watchers) if (watcher.timer) clearTimeout(watcher.timer);
    this.#watchers.clear();
  }

  #noConnectionDetails(): string {
    return `No connection established. Last error: ${this.#lastError}`;
  }

  #setState(state: connectivityState): void {
    if (this.#state === state || this.#state === connectivityState.SHUTDOWN) return;
    this.#state = state;
    const watchers = [...this.#watchers];
    this.#watchers.clear();
    for (const watcher of watchers) {
      if (watcher.timer) clearTimeout(watcher.timer);
      watcher.callback();
    }
  }

  #connect(): void {
    if (this.#connecting || this.#backoffTimer || this.#state === connectivityState.SHUTDOWN || this.#ready?.isReady) return;
    this.#connecting = true;
    if (this.#state !== connectivityState.TRANSIENT_FAILURE) this.#setState(connectivityState.CONNECTING);
    void this.#attempt().then(
      (connection) => {
        this.#connecting = false;
        if (this.#state === connectivityState.SHUTDOWN) return connection.close();
        this.#ready = connection;
        this.#backoffMs = this.#options.initialBackoffMs ?? INITIAL_BACKOFF_MS;
        this.#setState(connectivityState.READY);
        const pending = this.#pending;
        this.#pending = [];
        for (const call of pending) this.start(call);
      },
      (error: Error) => {
        this.#connecting = false;
        if (this.#state === connectivityState.SHUTDOWN) return;
        this.#lastError = error.message;
        this.#setState(connectivityState.TRANSIENT_FAILURE);
        this.#failPending(this.#noConnectionDetails(), false);
        const jitter = 1 + BACKOFF_JITTER * (Math.random() * 2 - 1);
        const wait = this.#backoffMs * jitter;
        this.#backoffMs = Math.min(this.#backoffMs * BACKOFF_MULTIPLIER, this.#options.maxBackoffMs ?? MAX_BACKOFF_MS);
        this.#backoffTimer = setTimeout(() => {
          this.#backoffTimer = undefined;
          this.#connect();
        }, wait);
        this.#backoffTimer.unref();
      },
    );
  }

  /** Fails the queued calls that do not wait for ready (all of them when `all`). */
  #failPending(details: string, all: boolean): void {
    const keep: H2ChannelCall[] = [];
    const fail: H2ChannelCall[] = [];
    for (const call of this.#pending) (all || !call.waitForReady ? fail : keep).push(call);
    this.#pending = keep;
    for (const call of fail) call.noConnection(details);
  }

  /** Pick-first: each address in turn until one gives a connection whose server SETTINGS came. */
  async #attempt(): Promise<H2Connection> {
    const addresses = await resolveH2Target(this.target);
    let last: Error | undefined;
    for (const address of addresses) {
      if (this.#state === connectivityState.SHUTDOWN) break;
      try {
        return await this.#connectTo(address);
      } catch (error) {
        last = error as Error;
      }
    }
    throw last ?? new Error('no address to connect to');
  }

  #connectTo(address: H2Address): Promise<H2Connection> {
    return new Promise((resolve, reject) => {
      const timeoutMs = this.#options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
      let settled = false;
      let connection: H2Connection | undefined;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const where = `${address.host}:${address.port}`;
      const timer = setTimeout(() => fail(new Error(`connect to ${where} timed out after ${timeoutMs}ms`)), timeoutMs);
      const tls = this.#tls;
      const socket: Socket = tls
        ? tlsConnect({host: address.host, port: address.port, ALPNProtocols: ['h2'], ...tls})
        : netConnect({host: address.host, port: address.port});
      socket.once('error', (error) => fail(error));
      socket.once('close', () => fail(new Error(`the connection to ${where} closed before the server's HTTP/2 settings came`)));
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        if (settled) return;
        if (tls && (socket as TLSSocket).alpnProtocol !== 'h2') {
          return fail(
            new Error(
              `the server at ${where} did not agree to HTTP/2 over TLS (ALPN h2; it chose ${(socket as TLSSocket).alpnProtocol || 'none'})`,
            ),
          );
        }
        const owner: H2ConnectionOwner = {
          onReady: (ready) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve(ready);
          },
          onDraining: (draining) => {
            if (this.#ready === draining) {
              this.#ready = undefined;
              this.#setState(connectivityState.IDLE);
              if (this.#pending.length > 0) this.#connect();
            }
          },
          onClosed: (closed, error) => {
            this.#connections.delete(closed);
            if (!settled)
              fail(new Error(`the connection to ${where} closed before the server's HTTP/2 settings came: ${error ?? 'closed'}`));
          },
          onTooManyPings: () => {
            this.#keepaliveTimeMs *= 2;
          },
        };
        connection = new H2Connection(socket, owner, {
          authority: this.target.authority,
          keepaliveTimeMs: this.#keepaliveTimeMs,
          ...(this.#options.keepaliveTimeoutMs !== undefined ? {keepaliveTimeoutMs: this.#options.keepaliveTimeoutMs} : {}),
          ...(this.#options.keepaliveWithoutCalls !== undefined ? {keepaliveWithoutCalls: this.#options.keepaliveWithoutCalls} : {}),
          ...(this.#options.firstStreamId !== undefined ? {firstStreamId: this.#options.firstStreamId} : {}),
        });
        this.#connections.add(connection);
      });
    });
  }

  #armSweep(at: number): void {
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(() => this.#sweep(), Math.max(1, at - Date.now()));
    this.#sweepTimer.unref();
  }

  #sweep(): void {
    this.#sweepTimer = undefined;
    this.#sweepAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const call of this.#timed) {
      if (now >= call.deadline) {
        this.#timed.delete(call);
        call.expire();
      } else if (call.deadline < next) next = call.deadline;
    }
    if (next !== Infinity) this.#armSweep(next);
  }
}
