import assert from 'node:assert/strict';
import {spawn, execFileSync} from 'node:child_process';
import {createWriteStream, readFileSync} from 'node:fs';
import path from 'node:path';
import {test, type TestContext} from 'node:test';
import {CLI_COMMAND, runCli, waitFor} from '../../helpers/cli.js';
import {StateStore} from '../../../src/state/store.js';
import {readJsonlFile, tempDir, writeJob, writeJsonl} from '../../helpers/job.js';
import {startServer} from '../../helpers/server.js';

// Far more than a pipe holds (64 KiB): two readers of one pipe would split it.
const RECORDS = 10_000;
const CLI = CLI_COMMAND.map((word) => `"${word}"`).join(' ');

/** Every record was sent exactly once and has one result line. */
function assertEverySentOnce(ids: readonly string[], resultsFile: string): void {
  const seen = new Map<string, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.equal(seen.size, RECORDS, `${seen.size} of ${RECORDS} records reached the server`);
  assert.ok(
    [...seen.values()].every((n) => n === 1),
    'no record was sent twice',
  );
  const lines = readJsonlFile(resultsFile) as {line: number; status: string}[];
  assert.equal(lines.length, RECORDS);
  assert.ok(lines.every((r) => r.status === 'OK'));
}

/** Runs a bash command line (the CLI inside it), as a user's shell would. */
async function runShell(t: TestContext, line: string): Promise<{code: number | null; stdout: string; stderr: string}> {
  const env = {...process.env, NODE_TEST_CONTEXT: undefined, NODE_OPTIONS: undefined, GRPC_BATCH_LOG: 'warn'} as NodeJS.ProcessEnv;
  const child = spawn('bash', ['-c', line], {env, stdio: ['ignore', 'pipe', 'pipe']});
  t.after(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return {code, stdout, stderr};
}

function writeInput(dir: string): string {
  return writeJsonl(
    path.join(dir, 'input.jsonl'),
    Array.from({length: RECORDS}, (_, i) => ({id: `r${i + 1}`})),
  );
}

test('input from process substitution (-i <(cat in.jsonl)) is read once: every record sent', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const input = writeInput(dir);
  const job = writeJob(dir, server.address, {concurrency: 50});
  // bash makes the <(...) pipe, as a user's shell does.
  const {code, stdout, stderr} = await runShell(
    t,
    `exec ${CLI} run "${job}" --json --no-progress --state "${dir}/state.db" -i <(cat "${input}")`,
  );
  assert.equal(code, 0, stderr);
  const summary = JSON.parse(stdout) as {total: number; ok: number; output: string};
  assert.equal(summary.total, RECORDS);
  assert.equal(summary.ok, RECORDS);
  assertEverySentOnce(server.stats.ids, summary.output);
});

test('input from a FIFO written while the run reads it: every record sent, none spliced', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const input = writeInput(dir);
  const fifo = path.join(dir, 'in.fifo');
  execFileSync('mkfifo', [fifo]);
  const job = writeJob(dir, server.address, {concurrency: 50});
  const running = runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db'), '-i', fifo], {timeoutMs: 60_000});
  // The writer: opening a FIFO for writing waits for its reader, as `cat in.jsonl > in.fifo` does.
  const writer = createWriteStream(fifo);
  writer.end(readFileSync(input));
  const result = await running;
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {total: number; ok: number; invalid: number; output: string};
  assert.equal(summary.invalid, 0, 'no line was split between two readers');
  assert.equal(summary.total, RECORDS);
  assertEverySentOnce(server.stats.ids, summary.output);
});

test('input from -i /dev/stdin (a shell pipe): every record sent', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const input = writeInput(dir);
  const job = writeJob(dir, server.address, {concurrency: 50});
  const result = await runShell(
    t,
    `cat "${input}" | exec ${CLI} run "${job}" --json --no-progress --state "${dir}/state.db" -i /dev/stdin`,
  );
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout) as {total: number; ok: number; output: string};
  assert.equal(summary.total, RECORDS);
  assertEverySentOnce(server.stats.ids, summary.output);
});

test('input from -i /dev/stdin when standard input is a socket (as a supervisor gives it): every record sent', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const input = writeInput(dir);
  const job = writeJob(dir, server.address, {concurrency: 50});
  const result = await runCli(['run', job, '--json', '--no-progress', '--state', path.join(dir, 'state.db'), '-i', '/dev/stdin'], {
    stdin: readFileSync(input),
    timeoutMs: 60_000,
  });
  assert.equal(result.code, 0, result.stderr);
  assertEverySentOnce(server.stats.ids, (JSON.parse(result.stdout) as {output: string}).output);
});

test('a run that read a pipe is refused by --resume, with why: its records are gone', async (t) => {
  const server = await startServer(t);
  const dir = tempDir(t);
  const fifo = path.join(dir, 'in.fifo');
  execFileSync('mkfifo', [fifo]);
  const job = writeJob(dir, server.address, {concurrency: 2});
  const state = path.join(dir, 'state.db');
  const running = runCli(['run', job, '--json', '--no-progress', '--state', state, '-i', fifo], {timeoutMs: 60_000});
  const writer = createWriteStream(fifo);
  // A record that never answers, then the writer stays open: the run is killed mid-way.
  writer.write(`${JSON.stringify({id: 'a', latencyMs: 60_000})}\n`);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await waitFor(() => server.stats.calls === 1, 30_000, 'the first call');
  const store = StateStore.open(state, {readonly: true});
  const runs = store.listRuns();
  store.close();
  process.kill(runs[0]!.pid, 'SIGKILL');
  writer.destroy();
  await running;
  const resumed = await runCli(['run', job, '--json', '--no-progress', '--state', state, '-i', fifo, '--resume']);
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.match(resumed.stderr, /in\.fifo, a pipe or device: its records are gone and it cannot be resumed; save the input to a file/);
});
