/**
 * Writes schema/job.schema.json, the JSON Schema of a job shipped for editors and compiled by Ajv,
 * from the declaration in src/config/job-keys.ts. `npm run schema` writes it; `--check` exits 1 when
 * the file differs (test/config/job-keys.test.ts checks the same).
 */
import {readFileSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {Type} from '@sinclair/typebox';
import {JOB_KEYS, type KeyDeclaration} from '../src/config/job-keys.js';

export const SCHEMA_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'schema', 'job.schema.json');

/** One key's schema: the declared one (or a map of its keys), then its default and doc. */
function keySchema(declaration: KeyDeclaration): Record<string, unknown> {
  const base = declaration.schema ? declaration.schema(Type) : mapSchema(declaration.keys ?? {});
  return {
    ...base,
    ...(declaration.default !== undefined ? {default: declaration.default} : {}),
    ...(declaration.doc !== undefined ? {description: declaration.doc} : {}),
  };
}

function mapSchema(keys: Readonly<Record<string, KeyDeclaration>>): Record<string, unknown> {
  const required = Object.entries(keys)
    .filter(([, d]) => d.required)
    .map(([k]) => k);
  return {
    type: 'object',
    additionalProperties: false,
    ...(required.length ? {required} : {}),
    properties: Object.fromEntries(Object.entries(keys).map(([key, declaration]) => [key, keySchema(declaration)])),
  };
}

/** The schema of a job, as a JSON object. */
export function jobSchema(): Record<string, unknown> {
  const {type, additionalProperties, required, properties} = mapSchema(JOB_KEYS);
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://grpc-batch.dev/schema/job.schema.json',
    title: 'grpc-batch job',
    description:
      "One gRPC unary method called once per input record. Relative paths are resolved from the job file's folder. Any string may use ${VAR} or ${VAR:-default} from the environment.",
    type,
    additionalProperties,
    required,
    properties,
    definitions: {
      duration: {
        description: 'A duration like 500ms, 10s, 1m30s or 1h (units from largest to smallest), or a number of milliseconds.',
        anyOf: [
          {type: 'string', pattern: '^\\s*(\\d+(\\.\\d+)?(h|m|s|ms))+\\s*$'},
          {type: 'number', minimum: 0},
        ],
      },
    },
  };
}

/** The file's text: TypeBox's symbols dropped, two-space indent, a final newline. */
export function jobSchemaText(): string {
  return `${JSON.stringify(jobSchema(), null, 2)}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = jobSchemaText();
  if (process.argv.includes('--check')) {
    if (readFileSync(SCHEMA_FILE, 'utf8') !== text) {
      process.stderr.write(`${SCHEMA_FILE} differs from src/config/job-keys.ts: run npm run schema\n`);
      process.exit(1);
    }
  } else writeFileSync(SCHEMA_FILE, text);
}
