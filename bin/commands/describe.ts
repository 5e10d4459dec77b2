import {existsSync} from 'node:fs';
import path from 'node:path';
import {Command} from 'commander';
import {UsageError, ValidationError} from '../../src/errors.js';
import {parseDuration} from '../../src/util/duration.js';
import type {TlsSpec} from '../../src/rpc/credentials.js';
import {collectHeaderFlag, parseDurationFlag} from '../flags.js';

interface DescribeFlags {
  readonly proto: string[];
  readonly importPath: string[];
  readonly protoset: string[];
  readonly header: string[];
  readonly tls?: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly serverName?: string;
  readonly deadline: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export const describe = new Command('describe')
  .description('list the services of a server (reflection) or of proto/protoset files, or show one service, method, message or enum')
  .argument('[target]', 'server address, host:port (not needed with --proto or --protoset)')
  .argument('[symbol]', 'package.Service, package.Service/Method, package.Message or package.Enum')
  .option('--proto <file>', '.proto file to read instead of asking the server (repeatable)', collect, [])
  .option('--import-path <dir>', "folder searched for the protos' imports (repeatable)", collect, [])
  .option('--protoset <file>', 'FileDescriptorSet file to read instead of asking the server (repeatable)', collect, [])
  .option('-H, --header <"name: value">', 'metadata sent with the reflection calls (repeatable)', collectHeaderFlag, [])
  .option('--tls', 'TLS with the system roots (implied by --ca, --cert, --key)')
  .option('--ca <file>', 'PEM file of the CA that signed the server certificate')
  .option('--cert <file>', 'PEM client certificate, for mutual TLS (with --key)')
  .option('--key <file>', 'PEM client key, for mutual TLS (with --cert)')
  .option('--server-name <name>', 'name to check the server certificate against')
  .option('-d, --deadline <duration>', 'deadline of the reflection exchange', parseDurationFlag, '10s')
  .action(async (first: string | undefined, second: string | undefined, flags: DescribeFlags) => {
    const [{describeSymbol}, {SchemaError}] = await Promise.all([
      import('../../src/schema/describe.js'),
      import('../../src/schema/schema.js'),
    ]);
    const fromFiles = flags.proto.length > 0 || flags.protoset.length > 0;
    if (flags.proto.length > 0 && flags.protoset.length > 0) throw new UsageError('give --proto or --protoset, not both');
    // A target has a colon (host:port, unix:/path); a symbol never has one.
    const args = [first, second].filter((a): a is string => a !== undefined);
    const target = args.find((a) => a.includes(':'));
    const symbol = args.find((a) => a !== target);
    if (args.length === 2 && (!target || !symbol))
      throw new UsageError(`expected TARGET (host:port) and SYMBOL, got "${args[0]}" and "${args[1]}"`);
    try {
      if (fromFiles) {
        for (const file of [...flags.proto, ...flags.protoset])
          if (!existsSync(file)) throw new UsageError(`file not found: ${path.resolve(file)}`);
        const schema =
          flags.proto.length > 0
            ? (await import('../../src/schema/source-proto.js')).loadProtoFiles(flags.proto, flags.importPath)
            : (await import('../../src/schema/source-protoset.js')).loadProtosets(flags.protoset);
        print(symbol ? describeSymbol(schema.root, symbol) : schema.services.join('\n'));
        return;
      }
      if (!target) throw new UsageError('expected a TARGET (host:port) to ask by server reflection, or --proto / --protoset files');
      await describeByReflection(target, symbol, flags);
    } catch (error) {
      if (error instanceof SchemaError) {
        const where = error.key === 'target' ? (target ?? '') : error.key === 'protoset' ? '--protoset' : '--proto';
        throw new ValidationError([{file: where, path: '', message: await inDescribeWords(error, target, flags)}], {
          title: `cannot describe ${symbol ?? (target && !fromFiles ? target : 'the files')}`,
        });
      }
      if (error instanceof Error && !(error instanceof UsageError) && /^unknown symbol/.test(error.message))
        throw new UsageError(error.message);
      throw error;
    }
  });

/**
 * A schema error in describe's words: its flags, not the job keys that `run` would name, and for a
 * failed reflection call the cleaned details and the hint `run` gives for them (a CA to trust, a
 * client certificate to give, an expired server certificate...).
 */
async function inDescribeWords(error: Error & {key: string}, target: string | undefined, flags: DescribeFlags): Promise<string> {
  const cause = error.cause as {code?: unknown; details?: unknown} | undefined;
  if (error.key === 'target' && target && typeof cause?.code === 'number' && typeof cause.details === 'string') {
    const [{cleanDetails, hintFor}, {statusName}] = await Promise.all([
      import('../../src/rpc/explain.js'),
      import('../../src/codec/status.js'),
    ]);
    const tls = Boolean(flags.tls || flags.ca || flags.cert || flags.key);
    const hint = hintFor(cause.code, cause.details, {target, tls, words: 'describe', deadlineMs: parseDuration(flags.deadline) ?? 10_000});
    return `server reflection at ${target} failed: ${cause.code} ${statusName(cause.code)}: ${cleanDetails(cause.details)}${hint ? ` (hint: ${hint})` : ''}; give --proto or --protoset to work without it`;
  }
  return error.message
    .replace('no proto or protoset is given', 'no --proto or --protoset is given')
    .replace('(give proto: or protoset: to work without it)', '(give --proto or --protoset to work without it)')
    .replace('give proto: (with importPaths) or protoset:', 'give --proto (with --import-path) or --protoset')
    .replace(/to importPaths \(e\.g\. importPaths: \[\.\/vendor\]\)/, 'with --import-path (e.g. --import-path ./vendor)');
}

async function describeByReflection(target: string, symbol: string | undefined, flags: DescribeFlags): Promise<void> {
  const tls: TlsSpec | undefined =
    flags.tls || flags.ca || flags.cert || flags.key
      ? {
          ...(flags.ca ? {ca: flags.ca} : {}),
          ...(flags.cert ? {cert: flags.cert} : {}),
          ...(flags.key ? {key: flags.key} : {}),
          ...(flags.serverName ? {serverName: flags.serverName} : {}),
        }
      : undefined;
  if (Boolean(flags.cert) !== Boolean(flags.key)) throw new UsageError('mutual TLS needs both --cert and --key');
  const [{ReflectionClient}, {rootFromDescriptors}, {describeSymbol, normaliseSymbol}] = await Promise.all([
    import('../../src/rpc/reflection-client.js'),
    import('../../src/schema/descriptor-root.js'),
    import('../../src/schema/describe.js'),
  ]);
  const metadata: Record<string, string> = {};
  for (const header of flags.header) {
    const colon = header.indexOf(':');
    metadata[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
  }
  const client = new ReflectionClient({
    target,
    tls,
    ...(flags.serverName ? {channelOptions: {'grpc.ssl_target_name_override': flags.serverName}} : {}),
    metadata,
    deadlineMs: parseDuration(flags.deadline) ?? 10_000,
  });
  try {
    if (!symbol) {
      print((await client.listServices()).join('\n'));
      return;
    }
    const name = normaliseSymbol(symbol);
    // A method is found through its service.
    const files =
      (await client.filesFor(name)) ?? (name.includes('.') ? await client.filesFor(name.slice(0, name.lastIndexOf('.'))) : undefined);
    if (!files) {
      const services = await client.listServices();
      throw new UsageError(`unknown symbol "${symbol}" at ${target}; its services: ${services.join(', ') || 'none'}`);
    }
    print(describeSymbol(rootFromDescriptors(files), name));
  } finally {
    client.close();
  }
}

function print(text: string): void {
  process.stdout.write(text ? `${text}\n` : '');
}
