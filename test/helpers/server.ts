import assert from 'node:assert/strict';
import type {TestContext} from 'node:test';
import {startDemoServer, type DemoServer, type DemoServerOptions} from '../../src/demo/server.js';
import type {Transport} from './job.js';

/** Starts the demo server on 127.0.0.1:0 and stops it when the test ends. */
export async function startServer(t: TestContext, options: DemoServerOptions = {}): Promise<DemoServer> {
  const server = await startDemoServer(options);
  t.after(() => server.stop(200));
  return server;
}

/** Asserts the server's last call came over `transport` (the h2 transport's user-agent names it): a loop over transports cannot test one of them twice. */
export function assertCameOver(server: DemoServer, transport: Transport): void {
  const agent = String(server.stats.lastMetadata?.['user-agent'] ?? '');
  assert.equal(/grpc-batch-h2\//.test(agent), transport === 'h2', `the calls should have come over ${transport}; user-agent: ${agent}`);
}
