import protobuf from 'protobufjs';

/** A loaded schema: the types, and where they came from (for `validate` and messages). */
export interface Schema {
  readonly root: protobuf.Root;
  /** `2 proto files`, `protoset json.protoset`, `server reflection (v1) at 127.0.0.1:50051`. */
  readonly origin: string;
  /** Every service the source knows of, fully-qualified (for "did you mean" and `describe`). */
  readonly services: readonly string[];
}

/** Why a schema or a method could not be loaded; `key` is the job key to blame. */
export class SchemaError extends Error {
  readonly key: string;
  constructor(key: string, message: string, options?: {cause?: unknown}) {
    super(message, options);
    this.key = key;
  }
}

/** Every service in a root, fully-qualified without the leading dot. */
export function servicesOf(root: protobuf.Namespace): string[] {
  const out: string[] = [];
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Service) out.push(nested.fullName.slice(1));
      if ((nested as protobuf.NamespaceBase).nestedArray) walk(nested as protobuf.NamespaceBase);
    }
  };
  walk(root);
  return out.sort();
}
