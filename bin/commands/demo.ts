import {mkdtempSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {Command} from 'commander';
import {formatDuration, parseDuration} from '../../src/util/duration.js';
import {EXIT, InterruptedError} from '../../src/errors.js';
import type {LoadedJob} from '../../src/config/load.js';
import type {LogFormat} from '../../src/util/log.js';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {setExitCode} from '../exit.js';
import {logFormatOption, parseDurationFlag, parseIntFlag} from '../flags.js';

/** Sequential calls timed to estimate what the one-at-a-time script would take. */
const SEQUENTIAL_SAMPLE = 200;

export const demo = new Command('demo')
  .description('start a demo server on a free loopback port and run a job against it, with progress and summary')
  .option('-n, --records <n>', 'records in the generated input', parseIntFlag(1), 20_000)
  .option('--latency <duration>', 'simulated server latency per call', parseDurationFlag, '5ms')
  .option('-c, --concurrency <n>', 'most calls in flight', parseIntFlag(1), 200)
  .option('--json', 'print the summary as one JSON object on stdout')
  .addOption(logFormatOption())
  .action(async (flags: {records: number; latency: string | number; concurrency: number; json?: boolean; logFormat?: LogFormat}) => {
    const [{startDemoServer}, {loadJob}, {formatSummary}, {run}, {openRunConsole}] = await Promise.all([
      import('../../src/demo/server.js'),
      import('../../src/config/load.js'),
      import('../../src/engine/print.js'),
      import('../../src/runner/runner.js'),
      import('../run-console.js'),
    ]);
    const {log, progress, progressIntervalMs, close} = openRunConsole({
      ...flags,
      json: false,
      progressInterval: process.stderr.isTTY ? '200ms' : '2s',
    });
    const latencyMs = parseDuration(flags.latency)!;
    const server = await startDemoServer();
    const dir = mkdtempSync(path.join(tmpdir(), 'grpc-batch-demo-'));
    try {
      const input = path.join(dir, 'requests.jsonl');
      writeFileSync(input, generateInput(flags.records, latencyMs));
      const jobFile = path.join(dir, 'demo.yaml');
      writeFileSync(
        jobFile,
        [
          'name: demo',
          `target: ${server.address}`,
          `proto: ${DEMO_PROTO}`,
          `method: ${DEMO_METHOD}`,
          'input: requests.jsonl',
          `concurrency: ${flags.concurrency}`,
          'deadline: 5s',
          'retry: {maxAttempts: 4, initialBackoff: 20ms, maxBackoff: 200ms, retryableStatusCodes: [UNAVAILABLE]}',
          'metadata: {x-demo-echo: hello}',
          '',
        ].join('\n'),
      );
      process.stderr.write(
        `demo server on ${server.address}; ${flags.records} records, ${latencyMs}ms each, ${flags.concurrency} in flight\n`,
      );
      process.stderr.write(`job file ${jobFile}\n`);

      const job = await loadJob(jobFile, {outDir: path.join(dir, 'out')});
      const sequentialMs = await timeSequential(server.address, job.method, latencyMs);

      const stop = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => stop.abort(signal);
      process.once('SIGINT', onSignal);
      // Through the run facade, unrecorded: the demo's run lives in a temporary folder, and leaves no history.
      const summary = await run(job, {
        state: false,
        signal: stop.signal,
        logger: log,
        progressIntervalMs,
        ...(progress ? {onProgress: (p) => progress.update(p)} : {}),
      });
      close();
      process.off('SIGINT', onSignal);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({...summary, sequentialEstimateMs: Math.round(sequentialMs * flags.records)})}\n`);
      } else {
        process.stdout.write(`${formatSummary(summary)}\n`);
        const estimate = sequentialMs * flags.records;
        process.stdout.write(
          `\nOne call at a time (measured on ${SEQUENTIAL_SAMPLE} calls: ${sequentialMs.toFixed(2)}ms each), the same ${flags.records} records would take about ${formatDuration(estimate)}; grpc-batch took ${formatDuration(summary.durationMs)} (${(estimate / Math.max(1, summary.durationMs)).toFixed(0)}x faster).\n` +
            `The failed records are the ones the demo input asks to fail for good; the transient UNAVAILABLEs were retried to OK.\n`,
        );
      }
      if (stop.signal.aborted) throw new InterruptedError(stop.signal.reason as NodeJS.Signals);
      if (summary.status !== 'succeeded') setExitCode(EXIT.OK); // failures are part of the demo
    } finally {
      close();
      await server.stop(100);
    }
  });

/** Mostly plain records; 2% fail once or twice with UNAVAILABLE (retries fix them); 0.1% fail for good. */
export function generateInput(records: number, latencyMs: number): string {
  const lines: string[] = [];
  for (let i = 1; i <= records; i++) {
    const request: Record<string, unknown> = {id: `user-${i}`, payload: `record ${i}`, latencyMs};
    if (i % 1000 === 500)
      request['failCode'] = 3; // INVALID_ARGUMENT: not retryable
    else if (i % 50 === 7) request['failFirstAttempts'] = 1 + (i % 2);
    lines.push(JSON.stringify(request));
  }
  return lines.join('\n') + '\n';
}

async function timeSequential(address: string, method: LoadedJob['method'], latencyMs: number): Promise<number> {
  const [{callUnary}, {ChannelPool}] = await Promise.all([import('../../src/rpc/call.js'), import('../../src/rpc/channel.js')]);
  const pool = new ChannelPool({target: address});
  try {
    const request = method.encodeRequest({id: 'sequential', latencyMs});
    await callUnary(pool.pick(), method, request, {deadlineMs: 5000}); // connect first
    const started = performance.now();
    for (let i = 0; i < SEQUENTIAL_SAMPLE; i++) await callUnary(pool.pick(), method, request, {deadlineMs: 5000});
    return (performance.now() - started) / SEQUENTIAL_SAMPLE;
  } finally {
    pool.close();
  }
}
