import net from 'node:net';
import type {TestContext} from 'node:test';

/**
 * A TCP proxy on 127.0.0.1:0 in front of a real server, that can cut the network silently.
 * `partition()` stops forwarding in both directions while every socket stays open (no FIN, no RST:
 * bytes wait in the kernels' buffers, as they wait in retransmission queues when packets are
 * dropped), and new connections are accepted and then get nothing. `heal()` forwards again,
 * waiting bytes first, and connects the connections accepted meanwhile: as TCP delivers what it
 * retransmits once a partition heals.
 */
export interface PartitionProxy {
  readonly port: number;
  /** `127.0.0.1:PORT`, for a job's target. */
  readonly address: string;
  /** Connections accepted so far. */
  readonly connections: number;
  readonly partitioned: boolean;
  partition(): void;
  heal(): void;
  /** Closes the listener and every socket. Idempotent. */
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  upstream: net.Socket | undefined;
}

/** Starts a proxy to `127.0.0.1:upstreamPort`, closed when the test ends. */
export async function startPartitionProxy(t: TestContext, upstreamPort: number): Promise<PartitionProxy> {
  const pairs = new Set<Pair>();
  let partitioned = false;
  let connections = 0;

  const connect = (pair: Pair) => {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    pair.upstream = upstream;
    const end = () => {
      pair.client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    // By hand rather than pipe(): pipe() resumes a source on the other side's 'drain', which would
    // leak bytes through a partition.
    pair.client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => pair.client.write(chunk));
    pair.client.on('end', () => upstream.end());
    upstream.on('end', () => pair.client.end());
    pair.client.on('close', end);
    upstream.on('close', end);
    upstream.on('error', () => undefined);
    if (partitioned) upstream.pause();
  };

  const server = net.createServer({pauseOnConnect: true}, (client) => {
    connections++;
    client.on('error', () => undefined);
    const pair: Pair = {client, upstream: undefined};
    pairs.add(pair);
    if (partitioned) return; // accepted, and silent until the heal
    connect(pair);
    client.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  let closed: Promise<void> | undefined;
  const proxy: PartitionProxy = {
    port,
    address: `127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    get partitioned() {
      return partitioned;
    },
    partition() {
      partitioned = true;
      for (const pair of pairs) {
        pair.client.pause();
        pair.upstream?.pause();
      }
    },
    heal() {
      partitioned = false;
      for (const pair of pairs) {
        if (!pair.upstream) connect(pair);
        pair.upstream!.resume();
        pair.client.resume();
      }
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.client.destroy();
          pair.upstream?.destroy();
        }
        pairs.clear();
        server.close(() => resolve());
      });
      return closed;
    },
  };
  t.after(() => proxy.close());
  return proxy;
}

/**
 * A TCP port that accepts connections and never says a word (no HTTP/2 SETTINGS), keeping them
 * open: what a wedged server, or a TCP load balancer in front of nothing, looks like.
 */
export async function startSilentPort(
  t: TestContext,
  port = 0,
): Promise<{readonly port: number; readonly connections: number; close(): Promise<void>}> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer({pauseOnConnect: true}, (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  let closed: Promise<void> | undefined;
  const silent = {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closed;
    },
  };
  t.after(() => silent.close());
  return silent;
}
