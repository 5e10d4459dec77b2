import * as grpc from '@grpc/grpc-js';
import {createCredentials, type TlsSpec} from './credentials.js';

/** Options for `createChannelPool`. */
export interface ChannelPoolOptions {
  /** `host:port`, `dns:///host:port`, `unix:/path`: anything grpc-js accepts. */
  readonly target: string;
  readonly tls?: TlsSpec;
  /** grpc-js channel options, checked beforehand by `checkChannelOptions`. @default {} */
  readonly channelOptions?: Readonly<Record<string, unknown>>;
  /**
   * How many channels (HTTP/2 connections) to spread calls over, for servers that cap concurrent
   * streams per connection. Minimum: 1. @default 1
   */
  readonly channels?: number;
}

/**
 * The run's channels: one grpc-js client (one channel) by default, shared by every call.
 * With `channels: N`, N clients each with their own subchannel pool, so N real connections
 * (grpc-js otherwise shares one connection between clients with the same target and options).
 */
export class ChannelPool {
  readonly #clients: grpc.Client[];
  #next = 0;
  #closed = false;

  constructor(options: ChannelPoolOptions) {
    const count = options.channels ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new TypeError(`Expected \`channels\` to be an integer from 1 and up, got \`${count}\` (${typeof count})`);
    }
    const credentials = createCredentials(options.tls);
    const channelOptions = channelArgs(options.channelOptions ?? {});
    this.#clients = Array.from({length: count}, (_, index) => new grpc.Client(options.target, credentials, {
      ...channelOptions,
      ...(count > 1 ? {'grpc.use_local_subchannel_pool': 1, 'grpc-batch.channel_index': index} : {}),
    }));
  }

  /** The next client, round robin. */
  pick(): grpc.Client {
    const client = this.#clients[this.#next]!;
    this.#next = (this.#next + 1) % this.#clients.length;
    return client;
  }

  get size(): number {
    return this.#clients.length;
  }

  /**
   * The best connectivity of the channels (READY if any is), for the outage gate. `tryToConnect`
   * starts connecting an IDLE channel.
   */
  connectivity(tryToConnect: boolean): grpc.connectivityState {
    let best = grpc.connectivityState.SHUTDOWN;
    for (const client of this.#clients) {
      const state = client.getChannel().getConnectivityState(tryToConnect);
      if (state === grpc.connectivityState.READY) return state;
      if (rank(state) > rank(best)) best = state;
    }
    return best;
  }

  /** Calls back once any channel leaves the state it has now, or at `deadline` (ms since the epoch). */
  watchConnectivity(deadline: number, callback: () => void): void {
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      callback();
    };
    for (const client of this.#clients) {
      const channel = client.getChannel();
      const state = channel.getConnectivityState(false);
      if (state === grpc.connectivityState.SHUTDOWN) {
        once();
        return;
      }
      channel.watchConnectivityState(state, deadline, once);
    }
  }

  /** Waits until every channel is connected, or the deadline passes. */
  async waitForReady(deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    await Promise.all(this.#clients.map((client) => new Promise<void>((resolve, reject) =>
      client.waitForReady(deadline, (error) => (error ? reject(error) : resolve())))));
  }

  /** Closes every channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const client of this.#clients) client.close();
  }
}

/** How close a state is to READY. */
function rank(state: grpc.connectivityState): number {
  return [1, 2, 3, 0, -1][state] ?? -1; // IDLE, CONNECTING, READY, TRANSIENT_FAILURE, SHUTDOWN
}

/**
 * Reconnection backoff unless the job sets its own: grpc-js waits up to 120s between connection
 * attempts, so after a long outage a run would notice the backend is back up to two minutes late.
 */
export const DEFAULT_MAX_RECONNECT_BACKOFF_MS = 5000;

/**
 * Keepalive pings unless the job sets its own. grpc-js sends none by default, so a connection whose
 * packets are dropped (a partition, a dead node, a NAT that lost its state: no RST) stays READY for
 * as long as the kernel keeps retransmitting (~15 minutes). With a ping every 60s while calls are in
 * flight, unanswered for 20s (gRPC's own default timeout), such a connection is closed within 80s:
 * its calls end UNAVAILABLE "Connection dropped" (an outage: the run pauses), and the channel
 * connects again. 60s stays clear of servers' ping limits: grpc-go, grpc-java and C-core servers
 * accept any number of pings while they send data or headers, and otherwise one per 5 minutes with
 * 2 strikes, i.e. a GOAWAY "too_many_pings" only after about 4 minutes with calls in flight and not
 * one byte from the server (grpc-js then doubles its interval). No pings without calls
 * (`grpc.keepalive_permit_without_calls` stays 0): those servers refuse them by default.
 */
export const DEFAULT_KEEPALIVE_TIME_MS = 60_000;
/** How long a keepalive ping may go unanswered before the connection is closed (gRPC's default). */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000;

/** The grpc-js options of a job's `channelOptions`, with the run's defaults under those it does not set. */
export function channelArgs(options: Readonly<Record<string, unknown>>): grpc.ChannelOptions {
  const out: Record<string, unknown> = {
    'grpc.max_reconnect_backoff_ms': DEFAULT_MAX_RECONNECT_BACKOFF_MS,
    'grpc.keepalive_time_ms': DEFAULT_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': DEFAULT_KEEPALIVE_TIMEOUT_MS,
  };
  for (const [key, value] of Object.entries(options)) {
    // A service config may be written as a YAML/JSON object; grpc-js wants a JSON string.
    out[key] = key === 'grpc.service_config' && value !== null && typeof value === 'object' ? JSON.stringify(value) : value;
  }
  const initial = out['grpc.initial_reconnect_backoff_ms'];
  if (!('grpc.max_reconnect_backoff_ms' in options) && typeof initial === 'number' && initial > DEFAULT_MAX_RECONNECT_BACKOFF_MS) {
    out['grpc.max_reconnect_backoff_ms'] = initial;
  }
  return out as grpc.ChannelOptions;
}
