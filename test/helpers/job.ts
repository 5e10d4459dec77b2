import {mkdtempSync, writeFileSync, readFileSync, existsSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import type {TestContext} from 'node:test';
import {rmSync} from 'node:fs';
import {DEMO_METHOD, DEMO_PROTO} from '../../src/util/paths.js';

/** A temporary folder removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'grpc-batch-test-'));
  t.after(() => rmSync(dir, {recursive: true, force: true}));
  return dir;
}

/** Writes records as JSONL. */
export function writeJsonl(file: string, records: readonly unknown[]): string {
  writeFileSync(file, records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return file;
}

export function readJsonlFile(file: string): unknown[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

/** Writes a job file for the demo service in `dir` and returns its path. */
export function writeJob(dir: string, target: string, extra: Record<string, unknown> = {}, name = 'job.yaml'): string {
  const job = {
    name: 'test',
    target,
    proto: DEMO_PROTO,
    method: DEMO_METHOD,
    input: 'input.jsonl',
    output: 'out/results.jsonl',
    failures: 'out/failed.jsonl',
    ...extra,
  };
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(job, null, 2));
  return file;
}

/**
 * The transports the contract tests run on (issue 18), the ones a job may choose: a test covered on
 * both is written once inside `for (const transport of TRANSPORTS)`, with the transport in its name
 * and in its job (`writeJob(dir, target, {transport})`).
 */
export {TRANSPORTS, type TransportName as Transport} from '../../src/rpc/h2-transport.js';
