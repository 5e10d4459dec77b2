import {spawn} from 'node:child_process';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import type {TestContext} from 'node:test';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';
import {CLI_COMMAND} from './cli.js';

export type LogLine = {event?: string; job?: string; runId?: string; component?: string; [key: string]: unknown};

export interface Daemon {
  readonly pid: number;
  readonly lines: LogLine[];
  /** Resolves with the first log line (seen or to come) that matches. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  signal(signal: NodeJS.Signals): void;
  readonly exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>;
}

/**
 * Spawns `grpc-batch daemon ...args` (inside `wrap`, e.g. `unshare ... sh -c 'exec "$@"' --`) and
 * parses its JSON log lines; SIGKILLed at the end of the test if still up.
 */
export function startDaemon(
  t: TestContext,
  args: readonly string[],
  cwd: string,
  options: {wrap?: readonly string[]; env?: Record<string, string>} = {},
): Daemon {
  const env = {
    ...process.env,
    NODE_TEST_CONTEXT: undefined,
    NODE_OPTIONS: undefined,
    GRPC_BATCH_LOG: 'info',
    ...options.env,
  } as NodeJS.ProcessEnv;
  const command = [...CLI_COMMAND, 'daemon', ...args];
  const [file, ...rest] = options.wrap ? [...options.wrap, ...command] : command;
  const child = spawn(file!, rest, {cwd, env, stdio: ['ignore', 'ignore', 'pipe']});
  const lines: LogLine[] = [];
  const waiters = new Set<{match: (line: LogLine) => boolean; resolve: (line: LogLine) => void}>();
  let buffer = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    for (const text of parts) {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = {event: 'text', text};
      }
      lines.push(line);
      for (const waiter of waiters) if (waiter.match(line)) waiters.delete(waiter), waiter.resolve(line);
    }
  });
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) =>
    child.on('close', (code, signal) => resolve({code, signal})),
  );
  t.after(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
  const dump = () => lines.map((l) => JSON.stringify(l)).join('\n');
  return {
    pid: child.pid!,
    lines,
    exited,
    // Inside a wrapper (unshare ignores SIGTERM), the signal goes to the daemon itself: its child.
    signal: (signal) => void (options.wrap ? process.kill(innermost(child.pid!), signal) : child.kill(signal)),
    waitFor(match, timeoutMs = 20_000) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line in ${timeoutMs} ms; got:\n${dump()}`)), timeoutMs);
        waiters.add({match, resolve: (line) => (clearTimeout(timer), resolve(line))});
        void exited.then(() => setTimeout(() => reject(new Error(`the daemon exited; log:\n${dump()}`)), 50));
      });
    },
  };
}

/** A demo-service job file in `dir`. */
export function writeDaemonJob(dir: string, name: string, target: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        name,
        target,
        proto: DEMO_PROTO,
        method: DEMO_METHOD,
        input: 'input.jsonl',
        output: 'out/{name}-{runId}.jsonl',
        failures: 'out/{name}-{runId}.failed.jsonl',
        timezone: 'UTC',
        ...extra,
      },
      null,
      2,
    ),
  );
  return file;
}

/** A scheduler event logged by the daemon itself (not from inside a run). */
export const event = (name: string, job?: string) => (line: LogLine) =>
  line.event === name && line.component === undefined && (job === undefined || line.job === job);

/** The operations endpoint's base URL, once the scheduler is running. */
export async function httpAddress(daemon: Daemon): Promise<string> {
  await daemon.waitFor(event('scheduler:started'));
  return `http://${(await daemon.waitFor(event('http:listening'))).address as string}`;
}

/** `unshare` as a container runtime does it: own hostname, own PID namespace (the daemon is PID 1). */
export function podWrap(hostname: string): string[] {
  return ['unshare', '--uts', '--pid', '--fork', '--kill-child=SIGKILL', 'sh', '-c', `hostname ${hostname} && exec "$@"`, 'pod'];
}

/** The last descendant of `pid` down its first children (the program a wrapper ran), seen from here. */
function innermost(pid: number): number {
  for (;;) {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return pid;
    }
    if (children.length === 0) return pid;
    pid = Number(children[0]);
  }
}
