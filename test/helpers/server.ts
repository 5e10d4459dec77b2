import type {TestContext} from 'node:test';
import {startDemoServer, type DemoServer, type DemoServerOptions} from '../../src/demo/server.js';

/** Starts the demo server on 127.0.0.1:0 and stops it when the test ends. */
export async function startServer(t: TestContext, options: DemoServerOptions = {}): Promise<DemoServer> {
  const server = await startDemoServer(options);
  t.after(() => server.stop(200));
  return server;
}
