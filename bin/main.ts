import {readFileSync} from 'node:fs';
import path from 'node:path';
import {Command, CommanderError} from 'commander';
import {EXIT, GbError, InterruptedError, IoError, QueueError, ValidationError} from '../src/errors.js';
import {PACKAGE_ROOT} from '../src/util/paths.js';
import {daemon} from './commands/daemon.js';
import {demo} from './commands/demo.js';
import {describe} from './commands/describe.js';
import {history} from './commands/history.js';
import {list} from './commands/list.js';
import {run} from './commands/run.js';
import {validate} from './commands/validate.js';
import {worker} from './commands/worker.js';
import {requestedExitCode} from './exit.js';

const {version} = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {version: string};

const program = new Command('grpc-batch')
  .description('Fan out one unary gRPC call per record: bounded, retried, observable, with nothing lost.')
  .version(version)
  .showHelpAfterError('(run with --help for usage)')
  .addCommand(run)
  .addCommand(validate)
  .addCommand(describe)
  .addCommand(demo)
  .addCommand(daemon)
  .addCommand(list)
  .addCommand(history)
  .addCommand(worker);
for (const command of [program, ...program.commands]) command.exitOverride().showHelpAfterError('(run with --help for usage)');

let code: number;
try {
  await program.parseAsync();
  code = requestedExitCode();
} catch (error) {
  code = exitCodeFor(error);
  report(error);
}
process.exit(code);

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT.USAGE;
  if (error instanceof GbError) return error.exitCode;
  return EXIT.INTERNAL;
}

function report(error: unknown): void {
  if (error instanceof CommanderError) return; // commander printed it already
  if (error instanceof InterruptedError) {
    process.stderr.write(`grpc-batch: ${error.message}\n`);
  } else if (error instanceof ValidationError) {
    process.stderr.write(`grpc-batch: ${error.title}:\n${error.issues.map((i) => `  ${formatLine(i)}`).join('\n')}\n`);
  } else if (error instanceof GbError && (error.exitCode !== EXIT.INTERNAL || error instanceof IoError || error instanceof QueueError)) {
    process.stderr.write(`grpc-batch: ${error.message}\n`);
  } else {
    const detail = error instanceof Error ? (process.env['GRPC_BATCH_DEBUG'] ? error.stack : error.message) : String(error);
    process.stderr.write(
      `grpc-batch: ${detail}\n(this is a bug or an I/O failure; GRPC_BATCH_DEBUG=1 shows the stack; grpc-batch ${version}, node ${process.version})\n`,
    );
  }
  if (error instanceof GbError) for (const step of error.next) process.stderr.write(`next: ${step.command}\n      ${step.why}\n`);
}

function formatLine(issue: {file: string; path: string; message: string}): string {
  return issue.path ? `${issue.file}: ${issue.path}: ${issue.message}` : `${issue.file}: ${issue.message}`;
}
