import path from 'node:path';
import type {TestContext} from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {PACKAGE_ROOT} from '../../src/util/paths.js';

export const LEDGER_PROTO = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'protos', 'ledger.proto');
export const LEDGER_METHOD = 'ledger.v1.Ledger/ListEntries';

export interface LedgerServer {
  readonly address: string;
  /** Calls received, in all and per account (a record re-sent counts twice). */
  readonly stats: {calls: number; byAccount: Map<string, number>};
}

/**
 * A gRPC server (grpc-js, 127.0.0.1:0) with a server-streaming method: `ListEntries` streams
 * `count` entries for the account, one per millisecond, so a run killed mid-way cuts streams.
 */
export async function startLedgerServer(t: TestContext): Promise<LedgerServer> {
  const definition = protoLoader.loadSync(LEDGER_PROTO, {keepCase: true, defaults: true});
  const ledger = (grpc.loadPackageDefinition(definition) as unknown as {ledger: {v1: {Ledger: grpc.ServiceClientConstructor}}}).ledger.v1
    .Ledger;
  const stats = {calls: 0, byAccount: new Map<string, number>()};
  const server = new grpc.Server();
  server.addService(ledger.service, {
    ListEntries(call: grpc.ServerWritableStream<{account: string; count: number}, unknown>) {
      stats.calls++;
      const {account, count} = call.request;
      stats.byAccount.set(account, (stats.byAccount.get(account) ?? 0) + 1);
      let index = 0;
      let cancelled = false;
      call.on('cancelled', () => (cancelled = true));
      const next = () => {
        if (cancelled) return;
        if (index >= count) return void call.end();
        call.write({account, index: index++});
        setTimeout(next, 1);
      };
      next();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  t.after(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()));
  return {address: `127.0.0.1:${port}`, stats};
}
