import {spawn} from 'node:child_process';
import {writeFileSync} from 'node:fs';
import path from 'node:path';
import type {TestContext} from 'node:test';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/paths.js';
import {CLI_ENTRY} from './cli.js';

const TSX_ESM = import.meta.resolve('tsx/esm');

export type LogLine = {event?: string; job?: string; runId?: string; component?: string; [key: string]: unknown};

export interface Daemon {
  readonly lines: LogLine[];
  /** Resolves with the first log line (seen or to come) that matches. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  signal(signal: NodeJS.Signals): void;
  readonly exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>;
}

/** Spawns `grpc-batch daemon ...args` and parses its JSON log lines; SIGKILLed at the end of the test if still up. */
export function startDaemon(t: TestContext, args: readonly string[], cwd: string, extraEnv: Readonly<Record<string, string>> = {}): Daemon {
  const env = {...process.env, NODE_TEST_CONTEXT: undefined, NODE_OPTIONS: undefined, GRPC_BATCH_LOG: 'info', ...extraEnv} as NodeJS.ProcessEnv;
  const child = spawn(process.execPath, [`--import=${TSX_ESM}`, CLI_ENTRY, 'daemon', ...args], {cwd, env, stdio: ['ignore', 'ignore', 'pipe']});
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
      for (const waiter of waiters) if (waiter.match(line)) (waiters.delete(waiter), waiter.resolve(line));
    }
  });
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('close', (code, signal) => resolve({code, signal})));
  t.after(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
  return {
    lines,
    exited,
    signal: (signal) => void child.kill(signal),
    waitFor(match, timeoutMs = 15_000) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line in ${timeoutMs} ms; got:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
        waiters.add({match, resolve: (line) => (clearTimeout(timer), resolve(line))});
        void exited.then(() => setTimeout(() => reject(new Error(`the daemon exited; log:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)), 50));
      });
    },
  };
}

/** A demo-service job file in `dir`. */
export function writeDaemonJob(dir: string, name: string, target: string, extra: Record<string, unknown> = {}): string {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({name, target, proto: DEMO_PROTO, method: DEMO_METHOD, input: 'input.jsonl', output: 'out/{name}-{runId}.jsonl', failures: 'out/{name}-{runId}.failed.jsonl', timezone: 'UTC', ...extra}, null, 2));
  return file;
}

export const event = (name: string, job?: string) => (line: LogLine) => line.event === name && line.component === undefined && (job === undefined || line.job === job);

/** The operations endpoint's base URL, once the scheduler is running. */
export async function httpAddress(daemon: Daemon): Promise<string> {
  await daemon.waitFor(event('scheduler:started'));
  return `http://${(await daemon.waitFor(event('http:listening'))).address as string}`;
}

