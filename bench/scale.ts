/**
 * (scale) `npm run bench -- --only scale`: one run through the Redis queue with 1, 2 and 3 local
 * `grpc-batch worker` processes against one server, beside the same run on one process. It
 * reports calls/s, the CPU each process spent per record, the queue's overhead per record (all
 * processes' CPU over the local run's), and the scaling a machine with more cores would see: on
 * this 2-core machine the workers share the cores with the coordinator, Redis and the server, so
 * measured calls/s show the queue's cost more than its scaling. The projection is W workers of the
 * measured CPU per record, each on its own core, bounded by the coordinator's CPU per record.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {readFileSync, mkdtempSync, writeFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {Queue} from 'bullmq';
import {Redis} from 'ioredis';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'bin', 'grpc-batch.js');
const REDIS_URL = process.env['GRPC_BATCH_REDIS'] ?? 'redis://127.0.0.1:6379';
const TICKS_PER_S = 100; // CLK_TCK on Linux

/** CPU time of a process so far, ms (utime + stime from /proc). */
function cpuMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

function startCli(
  args: readonly string[],
  cwd: string,
): {child: ChildProcess; stderr: () => string; stdout: () => string; exited: Promise<number | null>} {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {...process.env, GRPC_BATCH_LOG: 'info'},
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-200_000)));
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return {child, stderr: () => stderr, stdout: () => stdout, exited: new Promise((resolve) => child.on('close', (code) => resolve(code)))};
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`bench (scale): timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface ScaleRow {
  readonly workers: number;
  readonly rate: number;
  /** The coordinator's CPU per record, from its run:started on (its start-up left out). */
  readonly coordinatorUs: number;
  /** Each worker's CPU per record it ran (from its chunk:done lines). */
  readonly workerUs: number[];
  /** Every process's CPU during the run, per record of the run. */
  readonly totalUs: number;
  readonly ok: boolean;
}

/** One run of `records` with `workers` worker processes (0: a plain local run), CPU sampled per process. */
async function runOnce(
  workers: number,
  input: string,
  target: string,
  records: number,
  concurrency: number,
  chunkSize: number,
): Promise<ScaleRow> {
  const dir = mkdtempSync(path.join(tmpdir(), 'grpc-batch-bench-scale-'));
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(REDIS_URL, {maxRetriesPerRequest: null});
  const procs: ReturnType<typeof startCli>[] = [];
  try {
    writeFileSync(
      path.join(dir, 'job.json'),
      JSON.stringify({
        name: 'scale',
        target,
        proto: path.join(ROOT, 'proto/demo/v1/demo.proto'),
        method: 'demo.v1.DemoService/Process',
        input,
        concurrency,
        output: 'out/results.jsonl',
      }),
    );
    for (let i = 0; i < workers; i++) procs.push(startCli(['worker', '--redis', REDIS_URL, '--prefix', prefix, '--chunks', '8'], dir));
    await until(() => procs.every((p) => p.stderr().includes('worker:started')), 60_000, 'the workers');
    const before = procs.map((p) => cpuMs(p.child.pid!) ?? 0);
    const args = [
      'run',
      'job.json',
      '--json',
      '--no-progress',
      '--state',
      path.join(dir, 'state.db'),
      ...(workers > 0 ? ['--redis', REDIS_URL, '--prefix', prefix, '--chunk-size', String(chunkSize)] : []),
    ];
    const coordinator = startCli(args, dir);
    let coordinatorCpu = 0;
    let atStart: number | undefined;
    const sampler = setInterval(() => {
      coordinatorCpu = cpuMs(coordinator.child.pid!) ?? coordinatorCpu;
      if (atStart === undefined && coordinator.stderr().includes('"event":"run:started"')) atStart = coordinatorCpu;
    }, 20);
    const code = await coordinator.exited;
    clearInterval(sampler);
    const after = procs.map((p) => cpuMs(p.child.pid!) ?? 0);
    const ran = procs.map((p) => [...p.stderr().matchAll(/"event":"chunk:done","records":(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0));
    const coordinatorMs = coordinatorCpu - (atStart ?? 0);
    const workersMs = after.reduce((n, cpu, i) => n + cpu - before[i]!, 0);
    const summary = JSON.parse(coordinator.stdout().trim().split('\n').pop() ?? '{}') as {ok?: number; durationMs?: number};
    if (code !== 0 && code !== 1) throw new Error(`bench (scale): the run exited ${code}: ${coordinator.stderr().slice(-2000)}`);
    return {
      workers,
      rate: summary.durationMs ? (records * 1000) / summary.durationMs : 0,
      coordinatorUs: (coordinatorMs * 1000) / records,
      workerUs: after.map((cpu, i) => (ran[i]! > 0 ? ((cpu - before[i]!) * 1000) / ran[i]! : 0)),
      totalUs: ((coordinatorMs + workersMs) * 1000) / records,
      ok: summary.ok === records,
    };
  } finally {
    for (const p of procs) p.child.kill('SIGKILL');
    const queue = new Queue('chunks', {connection: redis, prefix});
    await queue.obliterate({force: true}).catch(() => undefined);
    await queue.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    rmSync(dir, {recursive: true, force: true});
  }
}

/** The (scale) section: prints its table through `table`. */
export async function scaleSection(options: {
  records: number;
  target: string;
  input: string;
  out: (text?: string) => void;
  note: (text: string) => void;
  table: (header: readonly string[], rows: readonly (readonly string[])[]) => void;
}): Promise<void> {
  const {records, target, input, out, note, table} = options;
  const redis = new Redis(REDIS_URL, {maxRetriesPerRequest: 0, lazyConnect: true});
  const reachable = await redis.connect().then(
    () => redis.ping(),
    () => undefined,
  );
  redis.disconnect();
  if (!reachable) {
    out(`(scale) skipped: no Redis at ${REDIS_URL}`);
    return;
  }
  note('(scale) building dist/ (the CLI runs as users run it: plain node)');
  const built = spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')],
    {encoding: 'utf8', timeout: 300_000},
  );
  if (built.status !== 0) throw new Error(`bench (scale): tsc failed: ${built.stdout}${built.stderr}`);
  const concurrency = 100;
  const chunkSize = 1000;
  const rows: ScaleRow[] = [];
  for (const workers of [0, 1, 2, 3]) {
    note(
      `(scale) ${records} records, concurrency ${concurrency}, ${workers === 0 ? 'one process (no queue)' : `${workers} worker process(es), chunks of ${chunkSize}`}`,
    );
    rows.push(await runOnce(workers, input, target, records, concurrency, chunkSize));
  }
  const local = rows[0]!;
  const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits});
  const tableRows = rows.map((row) => {
    const busy = row.workerUs.filter((u) => u > 0);
    const perWorker = busy.length > 0 ? busy.reduce((a, b) => a + b, 0) / busy.length : undefined;
    // W workers, each on a core of its own at the CPU per record measured here, the coordinator on one more.
    const projected = perWorker ? Math.min((row.workers * 1e6) / perWorker, 1e6 / row.coordinatorUs) : undefined;
    return [
      row.workers === 0 ? 'one process, no queue' : `${row.workers} worker(s) + coordinator`,
      fmt(row.rate),
      fmt(row.coordinatorUs, 1),
      row.workers > 0 ? row.workerUs.map((u) => fmt(u, 1)).join(' / ') : '',
      fmt(row.totalUs, 1),
      row.workers > 0 ? fmt(row.totalUs - local.totalUs, 1) : '',
      projected ? fmt(projected) : '',
      row.ok ? 'yes' : 'NO',
    ];
  });
  out();
  out(
    `(scale) distributed runs: ${records} records at 0 ms, concurrency ${concurrency}, one demo server, the machine's Redis. CPU µs/record: the coordinator's (from its run:started on), each worker's per record it ran, all of them per record of the run; overhead = all over the one-process run's; projected rec/s = min(W cores / a worker's µs per record, 1 core / the coordinator's): what W workers on cores of their own would give`,
  );
  table(
    ['row', 'records/s', 'coord µs/rec', 'worker µs/rec (each)', 'all µs/rec', 'overhead µs/rec', 'projected rec/s', 'all OK'],
    tableRows,
  );
}
