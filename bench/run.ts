/**
 * `npm run bench`: grpc-batch against a hand-written grpc-js pump and a Python grpc.aio client,
 * side by side in one run, over one demo server in its own process. See bench/README.md.
 *
 * Flags: --quick (small sizes, one repeat), --only a,b,c,flow,stream,threads,durability,scale,cold, --repeat N, --no-python.
 */
import {spawnSync} from 'node:child_process';
import {parseArgs} from 'node:util';
import {COLD_HEADER, coldStartTable, measureColdStart} from './cold-start.js';
import {ensureInput} from './data.js';
import {scaleSection} from './scale.js';
import {
  buildGoServer,
  compileChildren,
  HAS_TASKSET,
  hasPython,
  runClient,
  startGoServer,
  startServer,
  type BenchServer,
  type ClientResult,
} from './procs.js';

const {values: flags} = parseArgs({
  options: {
    quick: {type: 'boolean', default: false},
    only: {type: 'string', default: 'a,b,c,flow,stream,threads,durability,scale,cold'},
    repeat: {type: 'string'},
    'no-python': {type: 'boolean', default: false},
  },
});
const quick = flags.quick!;
const only = new Set(flags.only!.split(',').map((s) => s.trim()));
for (const key of only)
  if (!['a', 'b', 'c', 'flow', 'stream', 'threads', 'durability', 'scale', 'cold'].includes(key))
    throw new TypeError(`Expected \`--only\` to list a, b, c, flow, stream, threads, durability, scale or cold, got \`${key}\``);
const repeat = Number(flags.repeat ?? (quick ? 1 : 3));
if (!Number.isInteger(repeat) || repeat < 1 || repeat > 20)
  throw new TypeError(`Expected \`--repeat\` to be an integer from 1 to 20, got \`${flags.repeat}\``);

const SIZES = quick
  ? {
      latencyRecords: 3_000,
      sequentialCalls: 50,
      cpuRecords: 10_000,
      rssRecords: [20_000, 200_000],
      flowRecords: 4_000,
      streamRecords: 5_000,
      threadRecords: 20_000,
      scaleRecords: 5_000,
    }
  : {
      latencyRecords: 10_000,
      sequentialCalls: 250,
      cpuRecords: 30_000,
      rssRecords: [100_000, 1_000_000],
      flowRecords: 20_000,
      streamRecords: 30_000,
      threadRecords: 100_000,
      scaleRecords: 50_000,
    };
/** The issue's target for (stream): a bidi method's records/s over the unary method's, both through grpc-batch. */
const BIDI_TARGET = 2.5;
const LATENCY_MS = 20;
const TARGET = 0.9;

const python = !flags['no-python'] && hasPython();
const out = (text = '') => process.stdout.write(`${text}\n`);
const note = (text: string) => process.stderr.write(`${text}\n`);

interface Row {
  readonly label: string;
  readonly run: () => Promise<ClientResult>;
}

interface Measured {
  readonly label: string;
  readonly rates: number[];
  /** Calls/s over the second half of each run's calls. */
  readonly halves: number[];
  /** Client CPU per call, in µs: less sensitive to a busy machine than calls/s. */
  readonly cpu: number[];
  readonly ok: boolean;
  readonly skipped?: string;
  readonly last?: ClientResult;
}

/** Runs every row `repeat` times, interleaved (row 1, row 2, ..., row 1, ...), so drift hits all rows alike. */
async function measure(rows: readonly Row[], times: number): Promise<Measured[]> {
  const results: Measured[] = rows.map((row) => ({label: row.label, rates: [], halves: [], cpu: [], ok: true}));
  for (let round = 0; round < times; round++) {
    for (const [index, row] of rows.entries()) {
      const current = results[index]!;
      if (current.skipped) continue;
      note(`  ${row.label} (${round + 1}/${times})`);
      const result = await row.run();
      if (result.skipped) {
        results[index] = {...current, skipped: result.skipped};
        continue;
      }
      results[index] = {
        ...current,
        rates: [...current.rates, result.rate],
        halves: result.secondHalfRate === undefined ? current.halves : [...current.halves, result.secondHalfRate],
        cpu: result.cpuUsPerCall === undefined ? current.cpu : [...current.cpu, result.cpuUsPerCall],
        ok: current.ok && result.ok === result.calls,
        last: result,
      };
    }
  }
  return results;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : Math.round((sorted[middle - 1]! + sorted[middle]!) / 2);
}

const cpuOf = (m: Measured) => (m.cpu.length > 0 ? fmt(median(m.cpu)) : 'n/a');
const rateOf = (m: Measured | undefined) => (m && m.rates.length > 0 ? median(m.rates) : undefined);
const halfRateOf = (m: Measured) => (m.halves.length > 0 ? median(m.halves) : undefined);
const fmt = (n: number | undefined, digits = 0) =>
  n === undefined ? 'n/a' : n.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits});
const spread = (m: Measured) => (m.rates.length > 1 ? `${fmt(Math.min(...m.rates))}-${fmt(Math.max(...m.rates))}` : '');

function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  out(line(header));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) out(line(row));
}

note(compileChildren());
const server = await startServer();
const stopServer = () => void server.stop();
process.once('SIGINT', stopServer);
process.once('SIGTERM', stopServer);
note(
  `bench server ${server.address} (pid ${server.pid})${HAS_TASKSET ? ', server on core 0, clients on core 1' : ', taskset not found: not pinned'}`,
);
/** A node client (mode, then its arguments after the address), started with `flags` for node. */
const nodeWith =
  (flags: readonly string[], ...args: (string | number)[]) =>
  () =>
    runClient('node', [args[0]!, server.address, ...args.slice(1)].map(String), flags);
const node = (...args: (string | number)[]) => nodeWith([], ...args);
const aio =
  (latency: number, calls: number, concurrency: number, address = server.address) =>
  () =>
    python
      ? runClient('python', [address, latency, calls, concurrency].map(String))
      : Promise.resolve({
          calls,
          ok: 0,
          ms: 0,
          rate: 0,
          skipped: flags['no-python'] ? 'left out (--no-python)' : '/usr/bin/python3 not found',
        });

let ceiling: number | undefined;
try {
  out(`grpc-batch bench: Node ${process.version}, ${repeat} interleaved run(s) per row, median calls/s (min-max)`);
  if (only.has('b')) {
    const records = SIZES.cpuRecords;
    const input = await ensureInput(records, 0);
    note(`(b) CPU-bound, ${records} calls at 0 ms`);
    const h2Job = {BENCH_JOB: JSON.stringify({transport: 'h2'})};
    const [pump, pumpCall, py, h2, batch, pumpH2, batchH2] = await measure(
      [
        {label: 'grpc-js pump, 100 in flight, one client', run: node('pump', 0, records, 100)},
        {label: 'same pump over grpc-batch callUnary', run: node('pump-call', 0, records, 100)},
        {label: 'python grpc.aio, 100 in flight', run: aio(0, records, 100)},
        {label: 'Node http2 by hand (no grpc-js), 100 in flight', run: node('h2-pump', 0, records, 100)},
        {label: 'grpc-batch, concurrency 100', run: node('batch', 0, records, 100, input)},
        {label: 'same pump over the h2 transport (callUnaryH2)', run: node('pump-h2', 0, records, 100)},
        {
          label: 'grpc-batch, concurrency 100, transport: h2',
          run: () => runClient('node', ['batch', server.address, 0, records, 100, input].map(String), [], h2Job),
        },
      ],
      repeat,
    );
    ceiling = rateOf(pump);
    out();
    out(
      `(b) CPU-bound: ${records} calls, 0 ms server latency; ratio = calls/s over the grpc-js pump's (the ceiling); target: grpc-batch >= ${TARGET}`,
    );
    const pumpCpu = pump!.cpu.length > 0 ? median(pump!.cpu) : undefined;
    table(
      ['row', 'calls/s', 'min-max', 'x pump', 'CPU µs/call', 'CPU x pump', 'all OK'],
      [pump!, pumpCall!, py!, h2!, batch!, pumpH2!, batchH2!].map((m) =>
        m.skipped
          ? [m.label, 'skipped', m.skipped, '', '', '', '']
          : [
              m.label,
              fmt(rateOf(m)),
              spread(m),
              fmt(rateOf(m)! / ceiling!, 2),
              cpuOf(m),
              pumpCpu && m.cpu.length > 0 ? fmt(median(m.cpu) / pumpCpu, 2) : 'n/a',
              m.ok ? 'yes' : 'NO',
            ],
      ),
    );
    out("the h2 rows run against the grpc-js demo server on core 0: its cost per call bounds calls/s; CPU µs/call is the client's alone");
  }
  if (only.has('a')) {
    const records = SIZES.latencyRecords;
    const input = await ensureInput(records, LATENCY_MS);
    note(`(a) latency-bound, ${records} calls at ${LATENCY_MS} ms`);
    const rows = [
      {
        label: `sequential awaited calls (${SIZES.sequentialCalls}-call sample)`,
        concurrency: 1,
        run: node('sequential', LATENCY_MS, SIZES.sequentialCalls, 1),
      },
      {label: 'grpc-js pump, 100 in flight', concurrency: 100, run: node('pump', LATENCY_MS, records, 100)},
      {label: 'python grpc.aio, 100 in flight', concurrency: 100, run: aio(LATENCY_MS, records, 100)},
      {label: 'Node http2 by hand (no grpc-js), 100 in flight', concurrency: 100, run: node('h2-pump', LATENCY_MS, records, 100)},
      {label: 'grpc-batch, concurrency 100', concurrency: 100, run: node('batch', LATENCY_MS, records, 100, input)},
      {
        label: 'grpc-batch, concurrency 100, --max-semi-space-size=2',
        concurrency: 100,
        run: nodeWith(['--max-semi-space-size=2'], 'batch', LATENCY_MS, records, 100, input),
      },
      {label: 'grpc-batch, concurrency 1000', concurrency: 1000, run: node('batch', LATENCY_MS, records, 1000, input)},
    ];
    // The ceiling for runs of this size: the (b) pump at 0 ms over the same number of calls, so that
    // V8's warm-up weighs on the ceiling as on the rows (over (b)'s 3x more calls it weighs less).
    const [sameSize, ...measured] = await measure(
      [{label: `grpc-js pump at 0 ms, ${records} calls (the ceiling for this size)`, run: node('pump', 0, records, 100)}, ...rows],
      repeat,
    );
    const sizeCeiling = rateOf(sameSize);
    const sizeCeilingHalf = halfRateOf(sameSize!);
    out();
    out(
      `(a) latency-bound: ${records} calls, ${LATENCY_MS} ms server latency; bound = concurrency / ${LATENCY_MS} ms; ` +
        `ceiling = the grpc-js pump at 0 ms over the same ${records} calls = ${fmt(sizeCeiling)} (2nd half ${fmt(sizeCeilingHalf)}); ` +
        `(b)'s pump over ${SIZES.cpuRecords} calls = ${fmt(ceiling)}; target: grpc-batch >= ${TARGET} x min(bound, ceiling)`,
    );
    table(
      [
        'row',
        'calls/s',
        'min-max',
        'bound',
        'x bound',
        'x min(bound, ceiling)',
        'x min(bound, (b) pump)',
        '2nd half calls/s',
        '2nd half x min',
        'CPU µs/call',
        'all OK',
      ],
      measured.map((m, i) => {
        const bound = (rows[i]!.concurrency * 1000) / LATENCY_MS;
        const rate = rateOf(m);
        const halfRate = halfRateOf(m);
        const ratio = (value: number | undefined, over: number | undefined) =>
          value && over ? fmt(value / Math.min(bound, over), 2) : 'n/a';
        if (m.skipped) return [m.label, 'skipped', m.skipped, '', '', '', '', '', '', '', ''];
        return [
          m.label,
          fmt(rate),
          spread(m),
          fmt(bound),
          fmt(rate! / bound, 2),
          ratio(rate, sizeCeiling),
          ceiling ? ratio(rate, ceiling) : 'n/a (run b)',
          fmt(halfRate),
          ratio(halfRate, sizeCeilingHalf),
          cpuOf(m),
          m.ok ? 'yes' : 'NO',
        ];
      }),
    );
    out(
      "2nd half: calls/s over the second half of each run's calls, after most of V8's warm-up (JIT compilation shares the client's core), over the ceiling's own 2nd half",
    );
  }
  if (only.has('c')) {
    const rows: string[][] = [];
    const peaks: number[] = [];
    for (const records of SIZES.rssRecords) {
      const input = await ensureInput(records, 0);
      note(`(c) peak RSS, grpc-batch over ${records} records`);
      const result = await node('batch', 0, records, 100, input)();
      peaks.push(result.maxRssMb!);
      rows.push([
        `grpc-batch, ${records.toLocaleString('en-US')} records, concurrency 100`,
        fmt(result.maxRssMb),
        fmt(result.rate),
        `${fmt(result.ok)}/${fmt(result.calls)}`,
        result.ok === result.calls ? 'yes' : 'NO',
      ]);
    }
    out();
    out(
      `(c) memory: peak RSS (maxRSS of the child process) over a JSONL input, results file written; target: < 200 MB at 1M, flat with size`,
    );
    table(['row', 'peak RSS MB', 'calls/s', 'OK', 'all OK'], rows);
    out(
      `growth from ${SIZES.rssRecords[0]!.toLocaleString('en-US')} to ${SIZES.rssRecords[1]!.toLocaleString('en-US')} records: x${fmt(peaks[1]! / peaks[0]!, 2)} RSS for x${SIZES.rssRecords[1]! / SIZES.rssRecords[0]!} records`,
    );
  }
  if (only.has('durability')) {
    // Durability: the same run with no checkpoints (one fsync at the end), with a checkpoint every
    // second as `grpc-batch run --state` takes (fsync of failures and results before each), and
    // every 100 ms (ten times the fsyncs) to make the cost visible.
    const records = SIZES.latencyRecords;
    const input = await ensureInput(records, LATENCY_MS);
    note(`(durability), ${records} calls at ${LATENCY_MS} ms`);
    const [none, everySecond, every100] = await measure(
      [
        {label: 'grpc-batch, concurrency 100, no checkpoints (fsync at the end)', run: node('batch', LATENCY_MS, records, 100, input)},
        {
          label: 'grpc-batch, concurrency 100, checkpoint + fsync every 1 s (the default)',
          run: node('batch-checkpoint-1000', LATENCY_MS, records, 100, input),
        },
        {
          label: 'grpc-batch, concurrency 100, checkpoint + fsync every 100 ms',
          run: node('batch-checkpoint-100', LATENCY_MS, records, 100, input),
        },
      ],
      repeat,
    );
    const base = rateOf(none);
    out();
    out(`(durability): ${records} calls, ${LATENCY_MS} ms server latency; ratio = calls/s over no checkpoints`);
    table(
      ['row', 'calls/s', 'min-max', 'x none', 'CPU µs/call', 'all OK'],
      [none!, everySecond!, every100!].map((m) =>
        m.skipped
          ? [m.label, 'skipped', m.skipped, '', '', '']
          : [m.label, fmt(rateOf(m)), spread(m), base ? fmt(rateOf(m)! / base, 2) : 'n/a', cpuOf(m), m.ok ? 'yes' : 'NO'],
      ),
    );
  }
  if (only.has('flow')) await flowRows();
  if (only.has('stream')) await streamingSection();
  if (only.has('threads')) await threadsSection();
  if (only.has('cold')) {
    // (cold) the CLI from dist/ (built first, as `npm run build`), 10 interleaved runs per row (--quick 3).
    note('(cold) CLI start-up: building dist/');
    const build = spawnSync('npm', ['run', 'build', '--silent'], {stdio: 'inherit'});
    if (build.status !== 0) throw new Error('npm run build failed');
    const times = quick ? 3 : Math.max(10, repeat);
    out();
    out(
      `(cold) CLI start-up: CPU seconds (user + sys) over bare node -e 0, median of ${times} interleaved runs; files opened (strace); targets from issue 17`,
    );
    table([...COLD_HEADER], coldStartTable(measureColdStart(server.address, times)));
  }
  if (only.has('scale'))
    await scaleSection({
      records: SIZES.scaleRecords,
      target: server.address,
      input: await ensureInput(SIZES.scaleRecords, 0),
      out,
      note,
      table,
    });
} finally {
  const stats = await server.stop();
  note(`server stats: ${JSON.stringify(stats)}`);
}

/**
 * Flow control: a backend that sheds with RESOURCE_EXHAUSTED above 40 calls in flight, 20 ms a call
 * (capacity 2,000 calls/s). grpc-batch with RESOURCE_EXHAUSTED retryable: a fixed concurrency at the
 * cap (400), a fixed concurrency at the backend's capacity (40, which a user would have to know),
 * and `adaptive: true` under the cap of 400. Shed calls = attempts - records.
 */
async function flowRows(): Promise<void> {
  const records = SIZES.flowRecords;
  const capacity = 40;
  const latency = 20;
  const input = await ensureInput(records, 0);
  const shedding = await startServer({shedAbove: capacity, latencyMs: latency});
  const retry = {maxAttempts: 50, initialBackoff: '20ms', maxBackoff: '500ms', retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED']};
  const batchWith = (concurrency: number, extra: Record<string, unknown>) => () =>
    runClient('node', ['batch', shedding.address, 0, records, concurrency, input].map(String), [], {
      BENCH_JOB: JSON.stringify({retry, ...extra}),
    });
  try {
    note(`(flow) shedding backend: ${records} records, shed above ${capacity} in flight, ${latency} ms a call`);
    const measured = await measure(
      [
        {label: 'grpc-batch, concurrency 400 (the cap), fixed', run: batchWith(400, {})},
        {label: `grpc-batch, concurrency ${capacity} (the backend's capacity), fixed`, run: batchWith(capacity, {})},
        {label: 'grpc-batch, concurrency 400, adaptive', run: batchWith(400, {adaptive: true})},
      ],
      repeat,
    );
    const bound = (capacity * 1000) / latency;
    out();
    out(
      `(flow) shedding backend: ${records} records; capacity ${capacity} in flight x ${latency} ms = ${fmt(bound)} records/s; shed = calls beyond one per record (RESOURCE_EXHAUSTED)`,
    );
    table(
      ['row', 'records/s', 'min-max', 'x capacity', 'shed calls', 'shed per record', 'CPU µs/call', 'all OK'],
      measured.map((m) => {
        const shed = m.last?.attempts !== undefined ? m.last.attempts - m.last.calls : undefined;
        return [
          m.label,
          fmt(rateOf(m)),
          spread(m),
          fmt(rateOf(m)! / bound, 2),
          fmt(shed),
          fmt(shed === undefined ? undefined : shed / records, 2),
          cpuOf(m),
          m.ok ? 'yes' : 'NO',
        ];
      }),
    );
    out('CPU µs/call: client CPU per record here, its shed calls and retries included');
  } finally {
    await shedding.stop();
  }
}

/**
 * (stream) streaming methods: grpc-batch over the unary Process, the bidi ProcessStream and the
 * client-streaming ProcessBatch of the same service, against the Go peer server (cheap, so the
 * client is the limit) and the grpc-js demo server. Ratio = records/s over grpc-batch's unary row
 * against the same server.
 */
async function streamingSection(): Promise<void> {
  const records = SIZES.streamRecords;
  const input = await ensureInput(records, 0);
  const go = buildGoServer();
  const goServer: BenchServer | undefined = 'binary' in go ? await startGoServer(go.binary) : undefined;
  if (goServer) note(`Go peer server ${goServer.address} (pid ${goServer.pid})`);
  else note(`(stream) Go rows skipped: ${'skipped' in go ? go.skipped : ''}`);
  const BIDI = 'demo.v1.DemoService/ProcessStream';
  const BATCH = 'demo.v1.DemoService/ProcessBatch';
  const rowsFor = (label: string, address: string | undefined, skipped: string | undefined) => {
    const client =
      (args: (string | number)[], keys: object = {}) =>
      () =>
        address
          ? runClient('node', [args[0]!, address, ...args.slice(1), input].map(String), [], {BENCH_JOB: JSON.stringify(keys)})
          : Promise.resolve({calls: records, ok: 0, ms: 0, rate: 0, skipped: skipped ?? 'no server'});
    return [
      {label: `${label}: grpc-batch, unary Process, concurrency 100`, run: client(['batch', 0, records, 100])},
      {
        label: `${label}: grpc-batch, bidi ProcessStream, concurrency 100 (streams: default = 100)`,
        run: client(['batch', 0, records, 100], {method: BIDI}),
      },
      {
        label: `${label}: grpc-batch, bidi ProcessStream, concurrency 100, streams 4`,
        run: client(['batch', 0, records, 100], {method: BIDI, streams: 4}),
      },
      {
        label: `${label}: grpc-batch, bidi ProcessStream, concurrency 1000, streams 4`,
        run: client(['batch', 0, records, 1000], {method: BIDI, streams: 4}),
      },
      {
        label: `${label}: grpc-batch, client-streaming ProcessBatch, concurrency 200, batchSize 100`,
        run: client(['batch', 0, records, 200], {method: BATCH, batchSize: 100}),
      },
      {
        label: `${label}: BidiSender pump (no per-record work), 100 in flight, streams 4`,
        run: client(['pump-sender', 0, records, 100], {method: BIDI, streams: 4}),
      },
    ];
  };
  const goRows = rowsFor('Go', goServer?.address, 'skipped' in go ? go.skipped : undefined);
  const nodeRows = rowsFor('grpc-js', server.address, undefined);
  try {
    note(`(stream) streaming methods, ${records} records at 0 ms`);
    const measured = await measure([...goRows, ...nodeRows], repeat);
    out();
    out(
      `(stream) streaming methods: ${records} records at 0 ms; ratio = records/s over grpc-batch's unary row against the same server; target: a bidi row >= ${BIDI_TARGET} x unary`,
    );
    const unaryOf = (index: number) => rateOf(measured[index < goRows.length ? 0 : goRows.length]);
    table(
      ['row', 'records/s', 'min-max', 'x unary', 'CPU µs/record', 'all OK'],
      measured.map((m, i) =>
        m.skipped
          ? [m.label, 'skipped', m.skipped, '', '', '']
          : [m.label, fmt(rateOf(m)), spread(m), fmt(rateOf(m)! / unaryOf(i)!, 2), cpuOf(m), m.ok ? 'yes' : 'NO'],
      ),
    );
  } finally {
    if (goServer) note(`Go server stats: ${JSON.stringify(await goServer.stop())}`);
  }
}

/**
 * Worker threads (`workers: N | auto`) against the Go peer server pinned to core 0 (cheap, so the
 * client is the limit; the grpc-js demo server when Go is absent). The grpc-batch clients may use
 * every core here (threads are the point); python grpc.aio stays on the client core (one thread).
 * Ratio = records/s over the workers: 1 row of the same concurrency and latency.
 */
async function threadsSection(): Promise<void> {
  const records = SIZES.threadRecords;
  const go = buildGoServer();
  const goServer: BenchServer | undefined = 'binary' in go ? await startGoServer(go.binary) : undefined;
  const target = goServer ?? server;
  note(
    goServer
      ? `(threads) against the Go peer server ${goServer.address}`
      : `(threads) Go absent (${'skipped' in go ? go.skipped : ''}): against the grpc-js demo server`,
  );
  const batchRow = (latency: number, concurrency: number, workers: number | 'auto', input: string): Row => ({
    label: `grpc-batch, ${latency} ms, concurrency ${concurrency}, workers ${workers}`,
    run: () =>
      runClient(
        'node',
        ['batch', target.address, latency, records, concurrency, input].map(String),
        [],
        {BENCH_JOB: JSON.stringify({workers})},
        {anyCore: true},
      ),
  });
  try {
    const sets: {latency: number; concurrency: number}[] = [
      {latency: 0, concurrency: 200},
      {latency: LATENCY_MS, concurrency: 100},
      {latency: LATENCY_MS, concurrency: 1000},
    ];
    const tableRows: string[][] = [];
    for (const {latency, concurrency} of sets) {
      const input = await ensureInput(records, latency);
      note(`(threads) ${records} records at ${latency} ms, concurrency ${concurrency}`);
      const rows: Row[] = [
        batchRow(latency, concurrency, 1, input),
        batchRow(latency, concurrency, 2, input),
        batchRow(latency, concurrency, 'auto', input),
      ];
      if (latency === 0)
        rows.push({
          label: `python grpc.aio, ${latency} ms, ${concurrency} in flight (one core)`,
          run: aio(latency, records, concurrency, target.address),
        });
      const measured = await measure(rows, repeat);
      const one = rateOf(measured[0]);
      const bound = latency > 0 ? (concurrency * 1000) / latency : undefined;
      for (const m of measured) {
        tableRows.push(
          m.skipped
            ? [m.label, 'skipped', m.skipped, '', '', '', '']
            : [
                m.label,
                fmt(rateOf(m)),
                spread(m),
                fmt(rateOf(m)! / one!, 2),
                bound ? fmt(rateOf(m)! / bound, 2) : '',
                cpuOf(m),
                m.ok ? 'yes' : 'NO',
              ],
        );
      }
    }
    out();
    out(
      `(threads) worker threads: ${records} records; x 1 thread = records/s over the workers-1 row of the same set; x bound = over concurrency / latency; targets: auto >= 1.4 x 1 thread at 0 ms with 200 in flight; >= 0.75 of the bound at 20 ms with 100 in flight`,
    );
    table(['row', 'records/s', 'min-max', 'x 1 thread', 'x bound', 'CPU µs/call', 'all OK'], tableRows);
  } finally {
    if (goServer) note(`Go server stats: ${JSON.stringify(await goServer.stop())}`);
  }
}
