/**
 * The bench server: the demo server in its own process (pinned to a core by bench/run.ts).
 * Prints `{"address": ...}` as one line on stdout once bound; stops when stdin closes or on SIGTERM,
 * and prints the server's stats as one more line before exiting. An argument, JSON, holds demo server
 * options (`{"shedAbove": 40, "latencyMs": 20}`).
 */
import {startDemoServer, type DemoServerOptions} from '../src/demo/server.js';

const server = await startDemoServer(JSON.parse(process.argv[2] || '{}') as DemoServerOptions);
process.stdout.write(`${JSON.stringify({address: server.address, pid: process.pid})}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  const {calls, maxInFlight, byStatus, shed} = server.stats;
  await server.stop(500);
  process.stdout.write(`${JSON.stringify({calls, maxInFlight, byStatus, shed})}\n`);
  process.exit(0);
};
process.stdin.on('data', (chunk: Buffer) => {
  if (chunk.includes('reset')) server.reset();
  if (chunk.includes('stop')) void stop();
});
process.stdin.on('end', () => void stop());
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
