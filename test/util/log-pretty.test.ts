import assert from 'node:assert/strict';
import {test} from 'node:test';
import {createPrettyLogger, formatLogLine} from '../../src/util/log.js';

test('--pretty turns each JSON log line into one readable line with job, run id, event and the other fields', () => {
  const lines: string[] = [];
  const log = createPrettyLogger({level: 'info', write: (line) => lines.push(line)});
  log.info({job: 'nightly', runId: '20261125T214500Z-3f9a1c', event: 'run:started', trigger: 'schedule'}, 'schedule run started');
  log.debug({event: 'hidden'}, 'below the level');
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /^\d{2}:\d{2}:\d{2}\.\d{3} INFO  nightly 20261125T214500Z-3f9a1c run:started\s+schedule run started trigger=schedule\n$/,
  );
  assert.equal(formatLogLine('not json'), 'not json');
});
