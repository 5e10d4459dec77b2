import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';
import {PACKAGE_ROOT} from '../../src/paths.js';

const TSX_ESM = import.meta.resolve('tsx/esm');
const CLI_ENTRY = path.join(PACKAGE_ROOT, 'bin', 'grpc-batch.ts');

export interface CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves when the process exits, with what it printed. */
  readonly done: Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string}>;
}

/** Starts the CLI (from source, through tsx) and returns at once, so a test can signal it mid-run. Killed after `timeoutMs`. */
export function spawnCli(args: readonly string[], options: {cwd?: string; env?: Record<string, string>; timeoutMs?: number} = {}): CliProcess {
  const env: NodeJS.ProcessEnv = {...process.env, GRPC_BATCH_LOG: 'warn', ...options.env};
  delete env['NODE_TEST_CONTEXT'];
  delete env['NODE_OPTIONS'];
  const child = spawn(process.execPath, [`--import=${TSX_ESM}`, CLI_ENTRY, ...args], {cwd: options.cwd ?? PACKAGE_ROOT, env, stdio: 'pipe'});
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string}>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({code, signal, stdout, stderr});
    });
  });
  return {child, done};
}

/** Polls `condition` every 10 ms until it holds, or throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
