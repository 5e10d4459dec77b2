import {createServer, type IncomingMessage} from 'node:http';
import net from 'node:net';
import type {Duplex} from 'node:stream';
import type {TestContext} from 'node:test';
import {startPartitionProxy, type PartitionProxy} from './partition-proxy.js';

/**
 * An HTTP CONNECT proxy (what grpc-js uses when `grpc_proxy` is set in a process's environment) in
 * front of a `PartitionProxy` to `127.0.0.1:upstreamPort`, whatever target is asked: one process's
 * own path to a backend, which `partition()` cuts silently while every other process still reaches
 * it directly. Closed when the test ends.
 */
export async function startConnectProxy(
  t: TestContext,
  upstreamPort: number,
): Promise<PartitionProxy & {readonly url: string; readonly tunnels: number}> {
  const partition = await startPartitionProxy(t, upstreamPort);
  const sockets = new Set<net.Socket | Duplex>();
  let tunnels = 0;
  const server = createServer((_req, res) => res.writeHead(405).end('CONNECT only\n'));
  server.on('connect', (_req: IncomingMessage, client: Duplex, head: Buffer) => {
    tunnels++;
    sockets.add(client);
    client.on('error', () => undefined);
    const upstream = net.connect(partition.port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    get port() {
      return partition.port;
    },
    get address() {
      return partition.address;
    },
    get connections() {
      return partition.connections;
    },
    get partitioned() {
      return partition.partitioned;
    },
    partition: () => partition.partition(),
    heal: () => partition.heal(),
    close: () => partition.close(),
    url: `http://127.0.0.1:${port}`,
    get tunnels() {
      return tunnels;
    },
  };
}
