import type {JobSpec} from '../config/spec.js';

/**
 * What a run chose where the job left it open, named in `run:started` and the summary: how many
 * worker threads (`workers: auto` resolved), where the schema came from, and how the calls go out.
 */
export interface RunChoices {
  /** Threads sending the calls: 1 = the main thread. */
  readonly workers: number;
  /** `workers` as the job gave it (`auto` by default). */
  readonly workersSetting: number | 'auto';
  /** Who makes the calls: this process's main thread, its worker threads, or `grpc-batch worker`s over Redis (`--redis`). */
  readonly executor: 'main thread' | 'worker threads' | 'queue';
  /** Where the method's schema came from. */
  readonly schema: 'proto' | 'protoset' | 'reflection';
  /** The calls' transport: the library, its security and its connections. */
  readonly transport: {
    readonly library: 'grpc-js' | 'h2';
    readonly security: 'plaintext' | 'TLS' | 'mutual TLS';
    readonly channels: number;
  };
}

/** The choices of a run of `spec`; `queued`: its calls are made by remote workers (`--redis`). */
export function runChoices(spec: JobSpec, queued: boolean): RunChoices {
  return {
    workers: queued ? 0 : spec.workers,
    workersSetting: spec.workersSetting ?? spec.workers,
    executor: queued ? 'queue' : spec.workers > 1 ? 'worker threads' : 'main thread',
    schema: spec.proto.length > 0 ? 'proto' : spec.protoset.length > 0 ? 'protoset' : 'reflection',
    transport: {library: spec.transport, security: !spec.tls ? 'plaintext' : spec.tls.cert ? 'mutual TLS' : 'TLS', channels: spec.channels},
  };
}

/** One line: `2 worker threads (workers: auto), schema from proto files, grpc-js plaintext over 1 channel`. */
export function describeChoices(choices: RunChoices): string {
  const setting = choices.workersSetting === 'auto' ? ' (workers: auto)' : '';
  const who =
    choices.executor === 'queue'
      ? 'grpc-batch workers over Redis'
      : choices.executor === 'main thread'
        ? `the main thread${setting}`
        : `${choices.workers} worker threads${setting}`;
  const schema = choices.schema === 'reflection' ? 'server reflection' : choices.schema === 'proto' ? 'proto files' : 'protoset files';
  const {security, channels} = choices.transport;
  return `${who}, schema from ${schema}, ${choices.transport.library} ${security} over ${channels} channel${channels === 1 ? '' : 's'}${choices.executor === 'worker threads' ? ' each' : ''}`;
}
