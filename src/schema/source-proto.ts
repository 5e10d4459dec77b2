import {existsSync, statSync} from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import {SchemaError, servicesOf, type Schema} from './schema.js';

/**
 * .proto files -> a Schema, parsed with protobufjs (names as written: `keepCase`). Imports are
 * looked for in each file's own folder, then in `importPaths`; the well-known types
 * (google/protobuf/*.proto) are built in.
 */
export function loadProtoFiles(files: readonly string[], importPaths: readonly string[] = []): Schema {
  const absolute = files.map((file) => path.resolve(file));
  for (const file of absolute) {
    if (!existsSync(file)) throw new SchemaError('proto', `file not found: ${file}`);
    if (statSync(file).isDirectory()) throw new SchemaError('proto', `expected a .proto file, got a folder: ${file}`);
  }
  const includeDirs = [...new Set(absolute.map((file) => path.dirname(file))), ...importPaths.map((p) => path.resolve(p))];
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => resolveImport(origin, target, includeDirs);
  try {
    root.loadSync(absolute, {keepCase: true});
    root.resolveAll();
  } catch (error) {
    throw new SchemaError('proto', `does not parse: ${(error as Error).message}`, {cause: error});
  }
  const origin = absolute.length === 1 ? `proto ${path.relative(process.cwd(), absolute[0]!) || absolute[0]}` : `${absolute.length} proto files`;
  return {root, origin, services: servicesOf(root)};
}

function resolveImport(origin: string, target: string, includeDirs: readonly string[]): string {
  if (path.isAbsolute(target)) return target;
  for (const dir of includeDirs) {
    const candidate = path.join(dir, target);
    if (existsSync(candidate)) return candidate;
  }
  // Well-known types (google/protobuf/*.proto) are built into protobufjs.
  return origin ? path.resolve(path.dirname(origin), target) : target;
}
