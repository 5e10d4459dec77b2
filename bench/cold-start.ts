/**
 * (cold) What starting the CLI costs: CPU seconds (user + sys, from `/usr/bin/time`) of
 * `grpc-batch --version`, `--help`, `validate` of a one-record job with a `.proto`, and a
 * one-record `run`, each over bare `node -e 0`, from `dist/` as users run it. Also the files each
 * opens (`strace -f -e trace=openat`, when strace is there). See bench/README.md.
 *
 * Alone: `node --import=tsx/esm bench/cold-start.ts [--repeat N]` (builds dist/ first).
 */
import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'bin', 'grpc-batch.js');
const DEMO_PROTO = path.join(ROOT, 'proto', 'demo', 'v1', 'demo.proto');
const TIME = '/usr/bin/time';

/** The targets, CPU seconds over bare `node -e 0`. */
export const COLD_TARGETS = {version: 0.1, help: 0.1, validate: 0.35, run: 0.45} as const;

interface ColdRow {
  readonly key: keyof typeof COLD_TARGETS | 'node';
  readonly label: string;
  readonly args: readonly string[];
}

export interface ColdResult {
  readonly label: string;
  /** Median CPU seconds over bare node (for the `node -e 0` row: its own). */
  readonly overNode: number;
  readonly min: number;
  readonly max: number;
  readonly target?: number;
  /** Files opened (successful openat), or undefined without strace. */
  readonly files?: number;
  readonly ok: boolean;
}

/** CPU seconds (user + sys) of one run of node with `args`, and whether it exited 0. */
function cpuOf(args: readonly string[], cwd: string): {cpu: number; ok: boolean; stderr: string} {
  const result = spawnSync(TIME, ['-f', 'CPU %U %S', process.execPath, ...args], {cwd, encoding: 'utf8', timeout: 120_000});
  const match = /CPU (\d+\.\d+) (\d+\.\d+)\s*$/.exec(result.stderr ?? '');
  if (!match) throw new Error(`no time line from ${args.join(' ')}: ${result.stderr}`);
  return {cpu: Number(match[1]) + Number(match[2]), ok: result.status === 0, stderr: result.stderr};
}

function filesOpened(args: readonly string[], cwd: string): number | undefined {
  const trace = path.join(cwd, 'strace.out');
  const result = spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat', '-o', trace, process.execPath, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (result.error || !existsSync(trace)) return undefined;
  const lines = readFileSync(trace, 'utf8')
    .split('\n')
    .filter((l) => l.includes('openat(') && !/= -1 /.test(l));
  rmSync(trace, {force: true});
  return lines.length;
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Runs each row `repeat` times, interleaved, against a demo server at `target`. */
export function measureColdStart(target: string, repeat: number): ColdResult[] {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build first`);
  const dir = mkdtempSync(path.join(tmpdir(), 'gb-cold-'));
  try {
    writeFileSync(path.join(dir, 'one.jsonl'), '{"id":"a"}\n');
    writeFileSync(
      path.join(dir, 'job.yaml'),
      [
        'name: cold',
        `target: ${target}`,
        `proto: ${DEMO_PROTO}`,
        'method: demo.v1.DemoService/Process',
        'input: one.jsonl',
        'output: out/{name}-{runId}.jsonl',
        'failures: out/{name}-{runId}.failures.jsonl',
        '',
      ].join('\n'),
    );
    const rows: ColdRow[] = [
      {key: 'node', label: 'node -e 0 (bare node)', args: ['-e', '0']},
      {key: 'version', label: 'grpc-batch --version', args: [CLI, '--version']},
      {key: 'help', label: 'grpc-batch --help', args: [CLI, '--help']},
      {key: 'validate', label: 'grpc-batch validate (1 record, .proto)', args: [CLI, 'validate', 'job.yaml']},
      {key: 'run', label: 'grpc-batch run (1 record, .proto)', args: [CLI, 'run', 'job.yaml', '--no-progress', '--json']},
    ];
    const cpu = rows.map(() => [] as number[]);
    const ok = rows.map(() => true);
    for (let round = 0; round < repeat; round++) {
      for (const [i, row] of rows.entries()) {
        const one = cpuOf(row.args, dir);
        cpu[i]!.push(one.cpu);
        if (!one.ok) {
          ok[i] = false;
          process.stderr.write(`${row.label} failed:\n${one.stderr}\n`);
        }
      }
    }
    const bare = median(cpu[0]!);
    return rows.map((row, i) => {
      const own = row.key === 'node' ? 0 : bare;
      const files = filesOpened(row.args, dir);
      return {
        label: row.label,
        overNode: median(cpu[i]!) - own,
        min: Math.min(...cpu[i]!) - own,
        max: Math.max(...cpu[i]!) - own,
        ...(row.key === 'node' ? {} : {target: COLD_TARGETS[row.key]}),
        ...(files === undefined ? {} : {files}),
        ok: ok[i]!,
      };
    });
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

/** The rows as table cells: row, CPU s over node (median), min-max, target, met, files opened. */
export function coldStartTable(results: readonly ColdResult[]): string[][] {
  const s = (n: number) => n.toFixed(3);
  return results.map((r) => [
    r.label,
    r.target === undefined ? `${s(r.overNode)} (itself)` : `+${s(r.overNode)}`,
    `${s(r.min)}-${s(r.max)}`,
    r.target === undefined ? '' : `+${r.target.toFixed(2)}`,
    r.target === undefined ? '' : r.overNode <= r.target ? 'yes' : 'NO',
    r.files === undefined ? 'n/a' : String(r.files),
    r.ok ? 'yes' : 'NO',
  ]);
}

export const COLD_HEADER = ['row', 'CPU s over node', 'min-max', 'target', 'met', 'files opened', 'exit 0'] as const;

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const {values} = parseArgs({options: {repeat: {type: 'string', default: '10'}, 'no-build': {type: 'boolean', default: false}}});
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 50)
    throw new TypeError(`Expected \`--repeat\` to be an integer from 1 to 50, got \`${values.repeat}\``);
  if (!values['no-build']) {
    const build = spawnSync('npm', ['run', 'build', '--silent'], {cwd: ROOT, stdio: 'inherit'});
    if (build.status !== 0) throw new Error('npm run build failed');
  }
  const {startServer} = await import('./procs.js'); // the demo server in a process of its own
  const server = await startServer();
  try {
    const results = measureColdStart(server.address, repeat);
    const header = [...COLD_HEADER];
    const rows = coldStartTable(results);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    process.stdout.write(
      `(cold) CPU seconds (user+sys) over bare node -e 0, median of ${repeat}, Node ${process.version}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`,
    );
  } finally {
    await server.stop();
  }
}
