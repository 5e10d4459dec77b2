import assert from 'node:assert/strict';
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {PACKAGE_ROOT} from '../../../src/util/paths.js';
import {waitFor} from '../../helpers/cli.js';
import {event, startDaemon, writeDaemonJob} from '../../helpers/daemon.js';
import {tempDir, writeJsonl} from '../../helpers/job.js';

/** A proto of thousands of messages around the demo service: a job that takes seconds to load. */
function writeSlowProto(dir: string): string {
  const messages = Array.from(
    {length: 4000},
    (_, i) => `message M${i} { ${Array.from({length: 12}, (_, j) => `string f${j} = ${j + 1};`).join(' ')} }`,
  );
  const file = path.join(dir, 'big.proto');
  writeFileSync(file, ['syntax = "proto3";', 'package big.v1;', 'import "demo/v1/demo.proto";', ...messages].join('\n'));
  return file;
}

/** Whether the process catches SIGHUP (its handler is installed), from /proc/PID/status. */
function catchesSighup(pid: number): boolean {
  try {
    const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) & 1n) === 1n;
  } catch {
    return false;
  }
}

test('a SIGHUP during start-up is queued, not fatal: the job files are reloaded once the daemon is up', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  writeDaemonJob(dir, 'yearly', '127.0.0.1:1', {
    schedule: '0 0 1 1 *',
    proto: writeSlowProto(dir),
    importPaths: [path.join(PACKAGE_ROOT, 'proto')],
  });
  const daemon = startDaemon(t, [dir, '--state', path.join(dir, 'state.db')], dir);
  // The first moment the process can take a SIGHUP: its handler is in place (modules still loading).
  await waitFor(() => catchesSighup(daemon.pid), 20_000, 'the SIGHUP handler');
  daemon.signal('SIGHUP');
  const sentBeforeStart = !daemon.lines.some(event('scheduler:started'));
  await daemon.waitFor(event('scheduler:started'));
  const reloaded = await daemon.waitFor(event('jobs:reloaded'));
  assert.ok(sentBeforeStart, 'the SIGHUP came before the scheduler started');
  assert.deepEqual(reloaded.kept, ['yearly']);
  assert.ok(daemon.lines.findIndex(event('jobs:reloaded')) > daemon.lines.findIndex(event('scheduler:started')));
  daemon.signal('SIGTERM');
  assert.deepEqual(await daemon.exited, {code: 0, signal: null}, 'not killed by the SIGHUP (exit 129)');
});

test('a SIGHUP during a reload is queued: a second reload runs when the first ends and sees the newer files', async (t) => {
  const dir = tempDir(t);
  writeJsonl(path.join(dir, 'input.jsonl'), [{id: 'a'}]);
  const slow = {schedule: '0 0 1 1 *', proto: writeSlowProto(dir), importPaths: [path.join(PACKAGE_ROOT, 'proto')]};
  writeDaemonJob(dir, 'yearly', '127.0.0.1:1', slow);
  const daemon = startDaemon(t, [dir, '--state', path.join(dir, 'state.db')], dir);
  await daemon.waitFor(event('scheduler:started'));
  daemon.signal('SIGHUP');
  await daemon.waitFor(event('daemon:reloading'));
  writeDaemonJob(dir, 'added', '127.0.0.1:1', {schedule: '0 0 1 1 *'});
  daemon.signal('SIGHUP'); // the first reload is still parsing the slow proto
  await daemon.waitFor(event('daemon:reload-queued'));
  await waitFor(() => daemon.lines.filter(event('jobs:reloaded')).length === 2, 30_000, 'two reloads');
  const [first, second] = daemon.lines.filter(event('jobs:reloaded'));
  assert.ok(!(first!.added as string[]).includes('added') || (second!.kept as string[]).includes('added'));
  assert.ok([...(second!.added as string[]), ...(second!.kept as string[])].includes('added'), 'the queued reload read the new file');
  daemon.signal('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
});
