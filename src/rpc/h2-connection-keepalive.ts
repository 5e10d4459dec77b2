import type {H2ConnectionOptions} from './h2-stream.js';

/** How long a keepalive PING may go unanswered by default (grpc-js's default). */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000;

/** What the keepalive needs of its connection. */
export interface KeepaliveHost {
  /** Streams open now. */
  openStreams(): number;
  /** Frames a PING (payload of zeroes). */
  ping(): void;
  /** The PING went unanswered: the connection ends with this reason. */
  unanswered(reason: string): void;
}

/**
 * Keepalive pings of an `h2` connection (gRPC's keepalive: `grpc.keepalive_time_ms`,
 * `grpc.keepalive_timeout_ms`, `grpc.keepalive_permit_without_calls`): a PING every `keepaliveTimeMs`
 * while calls are open (or always), and the connection dropped when one is not acked in time.
 */
export class H2Keepalive {
  readonly #options: H2ConnectionOptions;
  readonly #host: KeepaliveHost;
  #everyTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(options: H2ConnectionOptions, host: KeepaliveHost) {
    this.#options = options;
    this.#host = host;
  }

  /** Starts pinging (once the server's SETTINGS came); nothing when keepalive is off. */
  start(): void {
    const every = this.#options.keepaliveTimeMs ?? 0;
    if (every <= 0) return;
    const timeoutMs = this.#options.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
    this.#everyTimer = setInterval(() => {
      if (this.#pingTimer || (!this.#options.keepaliveWithoutCalls && this.#host.openStreams() === 0)) return;
      this.#host.ping();
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = undefined;
        this.#host.unanswered(`keepalive ping not answered in ${timeoutMs}ms`);
      }, timeoutMs);
      this.#pingTimer.unref();
    }, every);
    this.#everyTimer.unref();
  }

  /** A PING ack came. */
  acked(): void {
    if (this.#pingTimer) clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  stop(): void {
    if (this.#everyTimer) clearInterval(this.#everyTimer);
    if (this.#pingTimer) clearTimeout(this.#pingTimer);
    this.#everyTimer = undefined;
    this.#pingTimer = undefined;
  }
}
