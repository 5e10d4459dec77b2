import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {mkdirSync, readdirSync, readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {test} from 'node:test';
import {DEMO_METHOD, DEMO_PROTO, PACKAGE_ROOT} from '../../src/util/paths.js';
import {runCli} from '../helpers/cli.js';
import {event, httpAddress, startDaemon} from '../helpers/daemon.js';
import {tempDir, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';

/** The `args:` lists of the README's Kubernetes manifests, in order (the Deployment's, then the CronJob's). */
function readmeArgs(): string[][] {
  const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### Kubernetes');
  const section = readme.slice(start, readme.indexOf('\n## ', start)); // up to the next section (scale-out has its own manifests)
  return [...section.matchAll(/^\s*args: (\[.*\])$/gm)].map((m) => JSON.parse(m[1]!) as string[]);
}

test("the README's Kubernetes Deployment and CronJob work as written: jobs and working folder read-only, results under /state", async (t) => {
  const args = readmeArgs();
  assert.equal(args.length, 2, 'a Deployment and a CronJob');
  const server = await startServer(t);
  const dir = tempDir(t);
  const jobs = path.join(dir, 'jobs');
  const state = path.join(dir, 'state');
  const workdir = path.join(dir, 'workdir');
  for (const folder of [jobs, state, workdir]) mkdirSync(folder);
  writeJsonl(path.join(jobs, 'input.jsonl'), [{id: 'a'}, {id: 'b'}, {id: 'c'}]);
  // The ConfigMap's job: no output keys, so the default files are used.
  writeFileSync(
    path.join(jobs, 'nightly.yaml'),
    `name: nightly-sync\ntarget: ${server.address}\nproto: ${DEMO_PROTO}\nmethod: ${DEMO_METHOD}\ninput: input.jsonl\n`,
  );
  const mounted: string[] = [];
  for (const folder of [jobs, workdir]) {
    const ro = spawnSync('mount', ['-o', 'bind,ro', folder, folder]);
    if (ro.status !== 0) {
      for (const m of mounted) spawnSync('umount', [m]);
      return t.skip(`cannot make read-only bind mounts here (${ro.stderr.toString().trim()}): needs root`);
    }
    mounted.push(folder);
  }
  try {
    // The pod's paths, mapped to this test's folders; the ops port on loopback, a free one.
    const map = (arg: string) =>
      arg
        .replace(/^\/jobs/, jobs)
        .replace(/^\/state/, state)
        .replace('0.0.0.0:9464', '127.0.0.1:0');
    const [deployment, cronJob] = args.map((list) => list.map(map)) as [string[], string[]];
    assert.equal(deployment[0], 'daemon');
    const daemon = startDaemon(t, deployment.slice(1), workdir);
    const base = await httpAddress(daemon);
    const answer = await fetch(`${base}/jobs/nightly-sync/run`, {method: 'POST'});
    assert.equal(answer.status, 202, await answer.text());
    const finished = await daemon.waitFor(event('run:finished', 'nightly-sync'), 30_000);
    assert.equal(finished['status'], 'succeeded', JSON.stringify(daemon.lines));
    daemon.signal('SIGTERM');
    assert.equal((await daemon.exited).code, 0);

    assert.equal(cronJob[0], 'run');
    const once = await runCli(cronJob, {cwd: workdir});
    assert.equal(once.code, 0, once.stderr);
    assert.equal((JSON.parse(once.stdout) as {ok: number}).ok, 3);
    assert.equal(
      readdirSync(path.join(state, 'out')).filter((f) => f.endsWith('.jsonl') && !f.includes('failed')).length,
      2,
      'both runs wrote their results under /state/out',
    );
    assert.equal(server.stats.calls, 6);
  } finally {
    for (const m of mounted) spawnSync('umount', [m]);
  }
});
