/**
 * Soak benchmark for the daemon: `npm run bench:soak -- --minutes 10`.
 *
 * Starts the demo server on 127.0.0.1:0 in this process, then the daemon CLI (its own process,
 * from source through tsx) with a job that fires every second against it, and scrapes the daemon's
 * /metrics: RSS, heap, active handles and open file descriptors after a warm-up and at the end,
 * with runs and calls counted. Stops the daemon with SIGTERM (it must exit 0) and the server.
 *
 * Flags: --minutes N (default 10), --records N per run (default 200), --latency MS per call (default 2),
 * --warmup S seconds before the first sample (default 10).
 */
import {spawn} from 'node:child_process';
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {parseArgs} from 'node:util';
import {startDemoServer} from '../src/demo/server.js';
import {DEMO_METHOD, DEMO_PROTO, PACKAGE_ROOT} from '../src/util/paths.js';

const {values} = parseArgs({
  options: {
    minutes: {type: 'string', default: '10'},
    records: {type: 'string', default: '200'},
    latency: {type: 'string', default: '2'},
    warmup: {type: 'string', default: '10'},
  },
});
const minutes = Number(values.minutes);
const records = Number(values.records);
const latencyMs = Number(values.latency);
const warmupMs = Number(values.warmup) * 1000;
/** Samples printed while it runs. */
const SAMPLE_EVERY_MS = 30_000;

const dir = mkdtempSync(path.join(tmpdir(), 'grpc-batch-soak-'));
const server = await startDemoServer();
writeFileSync(
  path.join(dir, 'input.jsonl'),
  Array.from({length: records}, (_, i) => JSON.stringify({id: `r${i}`, latencyMs})).join('\n') + '\n',
);
writeFileSync(
  path.join(dir, 'soak.json'),
  JSON.stringify({
    name: 'soak',
    target: server.address,
    proto: DEMO_PROTO,
    method: DEMO_METHOD,
    input: 'input.jsonl',
    concurrency: 50,
    // Fixed file names: overlap skip means one run at a time, and the disk does not fill up.
    output: 'out/results.jsonl',
    failures: 'out/failed.jsonl',
    schedule: '* * * * * *',
    timezone: 'UTC',
    overlap: 'skip',
  }),
);

const child = spawn(
  process.execPath,
  [
    '--import=tsx/esm',
    path.join(PACKAGE_ROOT, 'bin', 'grpc-batch.ts'),
    'daemon',
    path.join(dir, 'soak.json'),
    '--state',
    path.join(dir, 'state.db'),
    '--http',
    '127.0.0.1:0',
    '--grace',
    '10s',
  ],
  {
    cwd: PACKAGE_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {...process.env, GRPC_BATCH_LOG: 'info'},
  },
);
let address: string | undefined;
let errors = 0;
let buffer = '';
child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
  buffer += chunk;
  const lines = buffer.split('\n');
  buffer = lines.pop()!;
  for (const line of lines) {
    const entry = JSON.parse(line) as {event?: string; address?: string; level?: number};
    if (entry.event === 'http:listening') address = entry.address;
    if ((entry.level ?? 0) >= 50) errors++;
  }
});
const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
while (!address) await sleep(100);

interface Sample {
  readonly atS: number;
  readonly rssMb: number;
  readonly heapUsedMb: number;
  readonly handles: number;
  readonly fds: number;
  readonly runs: number;
  readonly calls: number;
}
const started = Date.now();
async function sample(): Promise<Sample> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const value = (pattern: RegExp) => [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
  return {
    atS: Math.round((Date.now() - started) / 1000),
    rssMb: round(value(/^grpc_batch_process_resident_memory_bytes (\S+)$/gm) / 2 ** 20),
    heapUsedMb: round(value(/^grpc_batch_nodejs_heap_size_used_bytes (\S+)$/gm) / 2 ** 20),
    handles: value(/^grpc_batch_nodejs_active_handles_total (\S+)$/gm),
    fds: value(/^grpc_batch_process_open_fds (\S+)$/gm),
    runs: value(/^grpc_batch_runs_total\{[^}]*outcome="(?:succeeded|failed|cancelled|error)"\} (\S+)$/gm),
    calls: value(/^grpc_batch_calls_total\{[^}]*\} (\S+)$/gm),
  };
}
const round = (n: number) => Math.round(n * 10) / 10;

await sleep(warmupMs);
const first = await sample();
console.log(JSON.stringify({sample: 'start', ...first}));
const end = started + minutes * 60_000;
while (Date.now() < end) {
  await sleep(Math.min(SAMPLE_EVERY_MS, end - Date.now()));
  console.log(JSON.stringify({sample: 'progress', ...(await sample())}));
}
const last = await sample();
child.kill('SIGTERM');
const code = await exited;
await server.stop();
console.log(
  JSON.stringify(
    {
      result: 'soak',
      minutes,
      recordsPerRun: records,
      daemonExit: code,
      errorLogLines: errors,
      serverCalls: server.stats.calls,
      runs: last.runs,
      calls: last.calls,
      start: {rssMb: first.rssMb, heapUsedMb: first.heapUsedMb, handles: first.handles, fds: first.fds},
      end: {rssMb: last.rssMb, heapUsedMb: last.heapUsedMb, handles: last.handles, fds: last.fds},
    },
    null,
    2,
  ),
);
rmSync(dir, {recursive: true, force: true});
process.exitCode = code === 0 ? 0 : 1;
