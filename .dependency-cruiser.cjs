/**
 * The house's layering, checked by `npm test` (test/house/layers.test.ts) and `npm run lint:deps`.
 * Folders in the order data flows: each may import only from itself and the folders before it.
 * A record's path reads io (source) -> engine -> rpc -> engine -> io (sink).
 */
const LAYERS = [
  ['errors', '^src/(errors[.]ts|stop-reason[.]ts|types/)'],
  ['util', '^src/util/'], // durations, sizes, logs, locks, cores, cron and time zones
  ['codec', '^src/codec/'], // proto3 JSON both ways, statuses as data
  ['schema', '^src/schema/'], // .proto files, protosets, descriptors, the method handle
  ['rpc', '^src/rpc/'], // transport only: channels, calls, streams, retry, outage gate, the h2 transport
  ['io', '^src/io/'], // record sources (JSONL, modules) and result sinks (results, failures)
  ['config', '^src/config/'], // the job: declaration, loading, validation, overrides
  ['engine', '^src/engine/'], // plan, prepare, pipeline, stats, executors (inline, threads)
  ['state', '^src/state/'], // the state database, leases
  ['runner', '^src/runner/'], // THE run: lock -> record -> engine -> end -> release
  ['scheduler', '^src/scheduler/'],
  ['ops', '^src/ops/'], // /healthz and /metrics
  ['scale', '^src/scale/'], // BullMQ and Redis, loaded only with --redis
  ['demo', '^src/demo/'],
  ['index', '^src/index[.]ts$'],
  ['bin', '^bin/'],
];

const forbidden = [
  {
    name: 'no-circular',
    comment: 'No import cycles, type-only imports included.',
    severity: 'error',
    from: {},
    to: {circular: true},
  },
  {
    name: 'no-unknown-folder',
    comment: 'Every file of src/ is in one of the layers (add a new folder to LAYERS in its place).',
    severity: 'error',
    from: {path: '^src/', pathNot: LAYERS.map(([, path]) => `(${path})`).join('|')},
    to: {},
  },
  ...LAYERS.slice(0, -1).map(([name, path], index) => ({
    name: `layer-${name}`,
    comment: `${name} imports only from itself and the layers before it (${
      LAYERS.slice(0, index)
        .map(([n]) => n)
        .join(', ') || 'none'
    }).`,
    severity: 'error',
    from: {path},
    to: {
      path: LAYERS.slice(index + 1)
        .map(([, p]) => `(${p})`)
        .join('|'),
    },
  })),
];

module.exports = {
  forbidden,
  options: {
    doNotFollow: {path: 'node_modules'},
    tsPreCompilationDeps: true,
    tsConfig: {fileName: 'tsconfig.json'},
    exclude: {path: '(^|/)(dist|node_modules)/'},
  },
};
