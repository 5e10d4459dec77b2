import {Command} from 'commander';
import {formatIssue, ValidationError} from '../../src/errors.js';
import {checkInput} from '../../src/jobs/check.js';
import {loadJob} from '../../src/jobs/load.js';
import {parseSizeFlag} from '../flags.js';

export const validate = new Command('validate')
  .description('check a job file and every input record; send nothing (exit 2 on any problem)')
  .argument('<job>', 'job file')
  .option('-i, --input <file>', 'JSONL input file to check instead of the job\'s input')
  .option('--max-line-bytes <size>', 'longest input line, e.g. 16MiB (overrides maxLineBytes)', parseSizeFlag)
  .action(async (jobFile: string, flags: {input?: string; maxLineBytes?: number}) => {
    const job = await loadJob(jobFile, flags);
    for (const warning of job.warnings) process.stderr.write(`warning: ${formatIssue(warning)}\n`);
    const check = await checkInput(job);
    for (const warning of check.warnings) process.stderr.write(`warning: ${formatIssue(warning)}\n`);
    if (check.invalid > 0) {
      const more = check.invalid - check.issues.length;
      throw new ValidationError(more > 0 ? [...check.issues, {file: check.label, path: '', message: `${more} more invalid records`}] : check.issues);
    }
    process.stdout.write(`${job.spec.file}: ok: ${job.method.name} on ${job.spec.target} (schema: ${job.method.origin}), ${check.total} records valid\n`);
  });
