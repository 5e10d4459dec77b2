/**
 * Instructions per unary call, from `valgrind --tool=callgrind` (every thread, user space): a steady
 * figure on a busy machine, where CPU µs move with the load. For each client, two runs under
 * callgrind, W warm-up calls and W + N calls; (instructions of the second - of the first) / N is the
 * cost of a warm call, start-up and warm-up taken out. The server (the grpc-js demo server, in its own
 * process on core 0, not under valgrind) is shared. See bench/README.md.
 *
 * Usage: node --import=tsx/esm bench/callgrind.ts [--warmup 1000] [--calls 3000] [--only pump,pump-h2]
 */
import {spawnSync} from 'node:child_process';
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import {compileChildren, startServer} from './procs.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const {values: flags} = parseArgs({
  options: {
    warmup: {type: 'string', default: '1000'},
    calls: {type: 'string', default: '3000'},
    only: {type: 'string', default: 'pump,pump-h2'},
  },
});
const warmup = Number(flags.warmup);
const measured = Number(flags.calls);
const modes = flags.only!.split(',');
const LABELS: Record<string, string> = {
  pump: 'grpc-js pump (makeUnaryRequest), 100 in flight',
  'pump-call': 'grpc-batch callUnary over grpc-js',
  'pump-h2': 'grpc-batch h2 transport (callUnaryH2), 100 in flight',
  'h2-pump': 'node:http2 by hand',
};

if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind not found: apt-get install valgrind');
process.stderr.write(`${compileChildren()}\n`);
const client = path.join(BENCH_DIR, '.data', 'build', 'bench', 'client.js');
const server = await startServer();

/** Total instructions (Ir) of a client run of `calls` calls under callgrind, all threads. */
function instructions(mode: string, calls: number): number {
  const dir = mkdtempSync(path.join(tmpdir(), 'callgrind-'));
  try {
    const result = spawnSync(
      'taskset',
      [
        '-c',
        '1',
        'valgrind',
        '--tool=callgrind',
        '--smc-check=all-non-file',
        '--separate-threads=no',
        `--callgrind-out-file=${dir}/out.%p`,
        process.execPath,
        client,
        mode,
        server.address,
        '0',
        String(calls),
        '100',
      ],
      {encoding: 'utf8', timeout: 30 * 60_000},
    );
    if (result.status !== 0) throw new Error(`callgrind ${mode} ${calls}: exit ${result.status}: ${result.stderr.slice(-2000)}`);
    let total = 0;
    for (const file of readdirSync(dir)) {
      const summary = /^(?:summary|totals): (\d+)/m.exec(readFileSync(path.join(dir, file), 'utf8'));
      if (summary) total += Number(summary[1]);
    }
    return total;
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

try {
  const rows: [string, number][] = [];
  for (const mode of modes) {
    process.stderr.write(`  ${mode}: ${warmup} and ${warmup + measured} calls under callgrind\n`);
    const base = instructions(mode, warmup);
    const full = instructions(mode, warmup + measured);
    rows.push([mode, (full - base) / measured]);
  }
  const reference = rows[0]![1];
  process.stdout.write(
    `instructions per call (callgrind, all threads), ${measured} warm calls after ${warmup}, 0 ms grpc-js server on core 0\n`,
  );
  for (const [mode, perCall] of rows)
    process.stdout.write(
      `${(LABELS[mode] ?? mode).padEnd(55)} ${Math.round(perCall).toLocaleString('en-US').padStart(10)}  x${(perCall / reference).toFixed(3)}\n`,
    );
} finally {
  await server.stop();
}
