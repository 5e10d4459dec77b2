/**
 * `node --import=tsx/esm bench/state-lock.ts`: how long a state write blocks the event loop while
 * another process holds the database's write lock, for a busy timeout of BUSY_TIMEOUT_MS (ours)
 * against the 10 s grpc-batch used before. better-sqlite3 waits on the JavaScript thread, so the
 * wait is the event loop's stall. Prints the loop's longest stall and how many writes landed.
 */
import {spawn} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {createRequire} from 'node:module';
import Database from 'better-sqlite3';
import {BUSY_TIMEOUT_MS} from '../src/state/store.js';

const requireCjs = createRequire(import.meta.url);
const HOLD_MS = 2000;
const dir = mkdtempSync(path.join(tmpdir(), 'grpc-batch-bench-lock-'));
const file = path.join(dir, 'state.db');
const setup = new Database(file);
setup.pragma('journal_mode = WAL');
setup.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)');
setup.close();

async function measure(busyTimeoutMs: number): Promise<{maxStallMs: number; landed: number; busy: number}> {
  const holder = spawn(
    process.execPath,
    [
      '-e',
      `const D = require(${JSON.stringify(requireCjs.resolve('better-sqlite3'))}); const db = new D(${JSON.stringify(file)}); db.exec('BEGIN IMMEDIATE'); db.exec('INSERT INTO t (v) VALUES (0)'); console.log('locked'); setTimeout(() => { db.exec('COMMIT'); db.close(); }, ${HOLD_MS});`,
    ],
    {stdio: ['ignore', 'pipe', 'inherit']},
  );
  const closed = new Promise<number | null>((resolve) => holder.once('close', resolve));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    void closed.then((code) => reject(new Error(`the lock holder exited ${code}`)));
  });
  const db = new Database(file, {timeout: busyTimeoutMs});
  // Each write runs on the event loop's thread: its duration is the loop's stall.
  let maxStallMs = 0;
  let landed = 0;
  let busy = 0;
  const started = Date.now();
  // A checkpoint every 100 ms for the lock's time and one second more.
  while (Date.now() - started < HOLD_MS + 1000) {
    const before = performance.now();
    try {
      db.prepare('INSERT INTO t (v) VALUES (?)').run(Date.now());
      landed++;
    } catch {
      busy++;
    }
    maxStallMs = Math.max(maxStallMs, performance.now() - before);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  db.close();
  await closed;
  return {maxStallMs: Math.round(maxStallMs), landed, busy};
}

async function main(): Promise<void> {
  try {
    for (const timeout of [BUSY_TIMEOUT_MS, 10_000]) {
      const result = await measure(timeout);
      process.stdout.write(
        `busy timeout ${timeout} ms, lock held ${HOLD_MS} ms: longest event-loop stall ${result.maxStallMs} ms; writes landed ${result.landed}, skipped as busy ${result.busy}\n`,
      );
    }
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exitCode = 1;
});
