import assert from 'node:assert/strict';
import {createHash} from 'node:crypto';
import {existsSync, readFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import {test} from 'node:test';
import {Ajv, type ValidateFunction} from 'ajv';
import {checkJobSchema, JOB_SCHEMA} from '../../src/config/job-schema.js';
import {PACKAGE_ROOT} from '../../src/util/paths.js';

const SCHEMA_FILE = path.join(PACKAGE_ROOT, 'schema', 'job.schema.json');
const GENERATED = path.join(PACKAGE_ROOT, 'schema', 'job.schema.validate.cjs');

/** Jobs that break the schema in each way validate.ts turns into a message. */
const JOBS: readonly unknown[] = [
  {target: 'localhost:50051', method: 'demo.v1.DemoService/Process'},
  {method: 'demo.v1.DemoService/Process', concurency: 3},
  {target: 7, method: 'demo.v1.DemoService/Process', concurrency: 0, deadline: '3 sec', name: 'a b'},
  {target: 'x:1', method: 'a/b', proto: [], retry: {maxAttempts: 'three', bogus: 1}, workers: 'many', maxLineBytes: true},
  {target: 'x:1', method: 'a/b', transport: 'http3', metadata: {k: [1]}, tls: {ca: 3}, schedule: {cron: 5}},
];

function errorsOf(check: ValidateFunction, job: unknown): unknown {
  check(job);
  return check.errors ?? null;
}

test('the job schema check made at build time reports what Ajv compiling the schema now reports', (t) => {
  if (!existsSync(GENERATED)) {
    t.skip('schema/job.schema.validate.cjs is not there: run `npm run build` (it generates it)');
    return;
  }
  const generated = createRequire(import.meta.url)(GENERATED) as ValidateFunction & {schemaSha256: string};
  const schemaText = readFileSync(SCHEMA_FILE, 'utf8');
  if (generated.schemaSha256 !== createHash('sha256').update(schemaText).digest('hex')) {
    t.skip('schema/job.schema.validate.cjs was made from another schema/job.schema.json: run `npm run build`');
    return;
  }
  assert.equal(checkJobSchema, generated, 'a fresh generated check is the one used');
  const compiled = new Ajv({allErrors: true, strict: false, verbose: true}).compile(JSON.parse(schemaText));
  for (const job of JOBS) assert.deepEqual(errorsOf(generated, job), errorsOf(compiled, job), JSON.stringify(job));
  assert.equal(errorsOf(generated, JOBS[0]), null, 'a valid job passes');
  assert.ok((errorsOf(generated, JOBS[3]) as unknown[]).length >= 4, 'every error is reported (allErrors)');
});

test('JOB_SCHEMA is schema/job.schema.json', () => {
  assert.deepEqual(JOB_SCHEMA, JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
});
