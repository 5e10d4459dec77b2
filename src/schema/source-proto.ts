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
    const missing = /ENOENT: no such file or directory, open '([^']+)'/.exec((error as Error).message);
    if (missing) {
      const wanted = importedAs(missing[1]!, includeDirs);
      throw new SchemaError(
        'proto',
        `imports "${wanted}", which is not in ${includeDirs.join(' or ')}: add the folder that holds ${wanted} to importPaths (e.g. importPaths: [./vendor])`,
        {cause: error},
      );
    }
    throw new SchemaError('proto', `does not parse: ${(error as Error).message}`, {cause: error});
  }
  const origin =
    absolute.length === 1 ? `proto ${path.relative(process.cwd(), absolute[0]!) || absolute[0]}` : `${absolute.length} proto files`;
  return {root, origin, services: servicesOf(root)};
}

/** The import path as the proto wrote it (`common/types.proto`), from the file path a loader could not open. */
function importedAs(opened: string, includeDirs: readonly string[]): string {
  for (const dir of includeDirs) {
    const relative = path.relative(dir, opened);
    if (!relative.startsWith('..') && !path.isAbsolute(relative)) return relative.split(path.sep).join('/');
  }
  return opened;
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
