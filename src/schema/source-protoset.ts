import {readFileSync, statSync} from 'node:fs';
import path from 'node:path';
import {decodeDescriptorSet, rootFromDescriptors, type FileDescriptor} from './descriptor-root.js';
import {SchemaError, servicesOf, type Schema} from './schema.js';

/** The start of a .proto source: comments, then a first statement. */
const PROTO_SOURCE =
  /^(?:\s|\/\/[^\n]*\n|\/\*[^*]*\*+(?:[^/*][^*]*\*+)*\/)*(?:syntax|edition|package|import|option|message|enum|service)\b/;

/**
 * FileDescriptorSet files (`protoc --include_imports --descriptor_set_out=x.protoset`,
 * `buf build -o x.binpb`) -> a Schema. Several sets may be given; a file in more than one is read once.
 */
export function loadProtosets(files: readonly string[]): Schema {
  const descriptors: FileDescriptor[] = [];
  for (const file of files.map((f) => path.resolve(f))) {
    let bytes: Buffer;
    try {
      if (statSync(file).isDirectory()) throw new SchemaError('protoset', `expected a descriptor set file, got a folder: ${file}`);
      bytes = readFileSync(file);
    } catch (error) {
      if (error instanceof SchemaError) throw error;
      throw new SchemaError(
        'protoset',
        (error as NodeJS.ErrnoException).code === 'ENOENT' ? `file not found: ${file}` : `cannot read ${file}: ${(error as Error).message}`,
      );
    }
    try {
      descriptors.push(...decodeDescriptorSet(bytes));
    } catch (error) {
      const hint = PROTO_SOURCE.test(bytes.subarray(0, 4096).toString('latin1'))
        ? ' (it looks like a .proto source: give it as proto:)'
        : '';
      throw new SchemaError(
        'protoset',
        `${file} is not a FileDescriptorSet (protoc --descriptor_set_out, buf build -o)${hint}: ${(error as Error).message}`,
      );
    }
  }
  let root: ReturnType<typeof rootFromDescriptors>;
  try {
    root = rootFromDescriptors(descriptors);
  } catch (error) {
    throw new SchemaError(
      'protoset',
      `the descriptor set is incomplete or invalid: ${(error as Error).message} (build it with protoc --include_imports so that imported files are in it)`,
      {cause: error},
    );
  }
  const names = files.map((f) => path.relative(process.cwd(), path.resolve(f)) || f);
  return {root, origin: `protoset ${names.join(', ')}`, services: servicesOf(root)};
}
