import {spawn, spawnSync, type ChildProcess} from 'node:child_process';
import {existsSync, rmSync} from 'node:fs';
import path from 'node:path';
import {createInterface} from 'node:readline';
import {fileURLToPath} from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
/** The server runs on this core, the clients on the other one. */
const SERVER_CORE = 0;
const CLIENT_CORE = 1;
/** No child runs longer than this, whatever happens. */
const CHILD_TIMEOUT_MS = 15 * 60_000;

export const HAS_TASKSET = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
export const PYTHON = '/usr/bin/python3';

/** `command args` pinned to `core` with taskset when there is one. */
function pinned(core: number, command: string, args: readonly string[]): [string, string[]] {
  return HAS_TASKSET ? ['taskset', ['-c', String(core), command, ...args]] : [command, [...args]];
}

const BUILD_DIR = path.join(BENCH_DIR, '.data', 'build', 'bench');
let compiled = false;

/**
 * Compiles the bench children and the sources they import (bench/tsconfig.json) to plain JS, so the
 * measured processes run what users run: no tsx loader, whose thread alone adds ~35 MB of RSS.
 * Type errors still emit; only a failure to emit falls back to tsx. Returns a note for the report.
 */
export function compileChildren(): string {
  const tsc = path.join(BENCH_DIR, '..', 'node_modules', 'typescript', 'bin', 'tsc');
  rmSync(path.dirname(BUILD_DIR), {recursive: true, force: true});
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(BENCH_DIR, 'tsconfig.json')], {encoding: 'utf8', timeout: 180_000});
  compiled = existsSync(path.join(BUILD_DIR, 'client.js')) && existsSync(path.join(BUILD_DIR, 'server.js')) && result.error === undefined;
  if (!compiled) return 'children run through tsx (tsc did not emit): RSS includes ~35 MB of tsx loader';
  return result.status === 0
    ? 'children compiled with tsc (plain node)'
    : 'children compiled with tsc (plain node; tsc reported type errors)';
}

function nodeArgs(script: string, args: readonly string[]): string[] {
  return compiled
    ? [path.join(BUILD_DIR, script.replace(/\.ts$/, '.js')), ...args]
    : ['--import=tsx/esm', path.join(BENCH_DIR, script), ...args];
}

export interface BenchServer {
  readonly address: string;
  readonly pid: number;
  /** Stops the server and resolves with its final stats line. */
  stop(): Promise<unknown>;
}

/** Starts bench/server.ts (demo server options as JSON) in its own process on the server core; resolves once it is bound. */
export function startServer(options: Readonly<Record<string, unknown>> = {}): Promise<BenchServer> {
  return startServerProcess(...pinned(SERVER_CORE, process.execPath, nodeArgs('server.ts', [JSON.stringify(options)])));
}

const GO_BUILD_DIR = path.join(BENCH_DIR, '.data', 'go-server');

/**
 * Builds bench/go-server (offline, Debian's golang-go and golang-google-grpc-dev) once per bench
 * run. Returns the binary, or why there is none: the Go rows are then skipped with that note.
 */
export function buildGoServer(): {binary: string} | {skipped: string} {
  const result = spawnSync('sh', [path.join(BENCH_DIR, 'go-server', 'build.sh'), GO_BUILD_DIR], {encoding: 'utf8', timeout: 600_000});
  const binary = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status === 0 && existsSync(binary)) return {binary};
  const why = result.stderr.trim().split('\n').pop() || `build.sh exited ${result.status ?? result.signal}`;
  return {skipped: result.status === 3 ? why : `the Go server did not build: ${why}`};
}

/** Starts the Go peer server (built by `buildGoServer`) on the server core. */
export function startGoServer(binary: string): Promise<BenchServer> {
  return startServerProcess(...pinned(SERVER_CORE, binary, []));
}

/** A server process that prints its address as its first line and its stats after `stop` on stdin. */
async function startServerProcess(command: string, args: string[]): Promise<BenchServer> {
  const child = spawn(command, args, {stdio: ['pipe', 'pipe', 'inherit']});
  const lines = createInterface({input: child.stdout!})[Symbol.asyncIterator]();
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const first = await lines.next();
  clearTimeout(timer);
  if (first.done) throw new Error('bench server exited before binding');
  const {address} = JSON.parse(first.value) as {address: string};
  let stopping: Promise<unknown> | undefined;
  return {
    address,
    pid: child.pid!,
    stop: () =>
      (stopping ??= (async () => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.stdin!.end('stop\n');
        const last = await lines.next();
        await exited(child);
        clearTimeout(kill);
        return last.done ? undefined : (JSON.parse(last.value) as unknown);
      })()),
  };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** The fields every client prints (python prints the first four). */
export interface ClientResult {
  readonly calls: number;
  readonly ok: number;
  readonly ms: number;
  readonly rate: number;
  /** Calls made, retries included (`batch`). */
  readonly attempts?: number;
  /** Calls/s over the second half of the calls, after most of V8's warm-up. */
  readonly secondHalfRate?: number;
  readonly cpuUsPerCall?: number;
  readonly maxRssMb?: number;
  readonly skipped?: string;
}

/**
 * Runs one client on the client core (any core with `anyCore`: worker threads) and parses its one JSON line; rejects on a non-zero exit or
 * timeout. `nodeFlags` go to node before the script (e.g. `--max-semi-space-size=2`).
 */
export async function runClient(
  kind: 'node' | 'python',
  args: readonly string[],
  nodeFlags: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
  options: {readonly anyCore?: boolean} = {},
): Promise<ClientResult> {
  const [command, argv]: [string, string[]] =
    kind === 'node'
      ? options.anyCore
        ? [process.execPath, [...nodeFlags, ...nodeArgs('client.ts', args)]]
        : pinned(CLIENT_CORE, process.execPath, [...nodeFlags, ...nodeArgs('client.ts', args)])
      : pinned(CLIENT_CORE, PYTHON, [path.join(BENCH_DIR, 'aio_client.py'), ...args]);
  const child = spawn(command, argv, {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}});
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  const code = await exited(child);
  clearTimeout(timer);
  const line = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`${kind} client ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`);
  return JSON.parse(line) as ClientResult;
}

export function hasPython(): boolean {
  return existsSync(PYTHON);
}
