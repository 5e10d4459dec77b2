import {createHash} from 'node:crypto';
import {readFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import type {ValidateFunction} from 'ajv';
import {PACKAGE_ROOT} from '../util/paths.js';

const SCHEMA_FILE = path.join(PACKAGE_ROOT, 'schema', 'job.schema.json');
/** Written by scripts/job-validator.mjs (`npm run build`, `prepare`): the schema compiled ahead of time. */
const PRECOMPILED_FILE = path.join(PACKAGE_ROOT, 'schema', 'job.schema.validate.cjs');
/** The options scripts/job-validator.mjs compiles with. */
const AJV_OPTIONS = {allErrors: true, strict: false, verbose: true};

const require = createRequire(import.meta.url);
const text = readFileSync(SCHEMA_FILE, 'utf8');

/** schema/job.schema.json, parsed. */
export const JOB_SCHEMA = JSON.parse(text) as {properties: Record<string, {properties?: Record<string, unknown>}>};

/**
 * Ajv's check of schema/job.schema.json: the code generated at build time when it was generated from
 * this very schema file (loading Ajv's compiler and compiling cost a tenth of a second at each start),
 * else compiled now (a checkout not built since the schema changed). Both report the same errors.
 */
export const checkJobSchema: ValidateFunction = precompiled() ?? compile();

function precompiled(): ValidateFunction | undefined {
  let generated: ValidateFunction & {schemaSha256?: string};
  try {
    generated = require(PRECOMPILED_FILE) as typeof generated;
  } catch {
    return undefined; // not generated yet
  }
  return generated.schemaSha256 === createHash('sha256').update(text).digest('hex') ? generated : undefined;
}

function compile(): ValidateFunction {
  const {Ajv} = require('ajv') as typeof import('ajv');
  return new Ajv(AJV_OPTIONS).compile(JOB_SCHEMA);
}
