import * as grpc from '@grpc/grpc-js';
import {createCredentials, type TlsSpec} from './credentials.js';
import {H2Channel} from './h2-channel.js';
import {createH2Context, h2ChannelOptions, type H2CallContext, type TransportName} from './h2-transport.js';

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
  /** `h2`: unary calls over grpc-batch's own HTTP/2 client (h2-transport.ts). @default 'grpc-js' */
  readonly transport?: TransportName | undefined;
}

/** What the connectivity methods read: a grpc-js channel or an `h2` one. */
interface Watchable {
  getConnectivityState(tryToConnect: boolean): grpc.connectivityState;
  watchConnectivityState(current: grpc.connectivityState, deadline: number, callback: () => void): void;
}

/**
 * The run's channels: one grpc-js client (one channel) by default, shared by every call.
 * With `channels: N`, N clients each with their own subchannel pool, so N real connections
 * (grpc-js otherwise shares one connection between clients with the same target and options).
 */
export class ChannelPool {
  readonly #clients: grpc.Client[];
  /** `h2` transport: one context (channel) per connection instead of grpc-js clients. */
  readonly #h2: H2CallContext[];
  readonly #watchables: Watchable[];
  readonly transport: TransportName;
  #next = 0;
  #closed = false;

  constructor(options: ChannelPoolOptions) {
    const count = options.channels ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new TypeError(`Expected \`channels\` to be an integer from 1 and up, got \`${count}\` (${typeof count})`);
    }
    this.transport = options.transport ?? 'grpc-js';
    const channelOptions = channelArgs(options.channelOptions ?? {});
    if (this.transport === 'h2') {
      const settings = h2ChannelOptions(options.target, options.tls, channelOptions);
      this.#clients = [];
      this.#h2 = Array.from({length: count}, () => createH2Context(new H2Channel(settings), channelOptions));
      this.#watchables = this.#h2.map((context) => context.channel);
      return;
    }
    const credentials = createCredentials(options.tls);
    this.#clients = Array.from(
      {length: count},
      (_, index) =>
        new grpc.Client(options.target, credentials, {
          ...channelOptions,
          ...(count > 1 ? {'grpc.use_local_subchannel_pool': 1, 'grpc-batch.channel_index': index} : {}),
        }),
    );
    this.#h2 = [];
    this.#watchables = this.#clients.map((client) => client.getChannel());
  }

  /** The next `h2` channel, round robin (transport `h2` only). */
  pickH2(): H2CallContext {
    const context = this.#h2[this.#next]!;
    this.#next = (this.#next + 1) % this.#h2.length;
    return context;
  }

  /** The next client, round robin. */
  pick(): grpc.Client {
    if (this.transport === 'h2') throw new TypeError('Expected a grpc-js pool: the h2 transport sends unary calls only (pickH2)');
    const client = this.#clients[this.#next]!;
    this.#next = (this.#next + 1) % this.#clients.length;
    return client;
  }

  get size(): number {
    return this.#watchables.length;
  }

  /**
   * The best connectivity of the channels (READY if any is), for the outage gate. `tryToConnect`
   * starts connecting an IDLE channel.
   */
  connectivity(tryToConnect: boolean): grpc.connectivityState {
    let best = grpc.connectivityState.SHUTDOWN;
    for (const channel of this.#watchables) {
      const state = channel.getConnectivityState(tryToConnect);
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
    for (const channel of this.#watchables) {
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
    const channels: {waitForReady(deadline: number, callback: (error?: Error) => void): void}[] = [
      ...this.#clients,
      ...this.#h2.map((context) => context.channel),
    ];
    await Promise.all(
      channels.map(
        (channel) => new Promise<void>((resolve, reject) => channel.waitForReady(deadline, (error) => (error ? reject(error) : resolve()))),
      ),
    );
  }

  /** Closes every channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const client of this.#clients) client.close();
    for (const context of this.#h2) context.channel.close();
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
