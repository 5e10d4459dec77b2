/**
 * A cron expression in words, for `grpc-batch list`: "every 15 minutes", "at 02:30 on weekdays".
 * Common shapes get a sentence; anything else is spelled field by field.
 */

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTH_NAMES = [
  '',
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

export function describeSchedule(expression: string): string {
  const fields = (NICKNAMES[expression.trim().toLowerCase()] ?? expression).trim().split(/\s+/);
  const [second, minute, hour, dom, month, dow] = fields.length === 6 ? fields : ['0', ...fields];
  if (!second || !minute || !hour || !dom || !month || !dow) return expression;
  const time = timeOfDay(second, minute, hour);
  const day = days(dom, dow);
  const parts = [time, day === 'every day' && /^every|of every/.test(time) ? '' : day, months(month)].filter(Boolean);
  return parts.join(' ');
}

function timeOfDay(second: string, minute: string, hour: string): string {
  const isNumber = (v: string) => /^\d+$/.test(v);
  const step = (v: string) => /^\*\/(\d+)$/.exec(v)?.[1];
  if (second === '*') return withHours('every second', hour);
  if (step(second)) return withHours(`every ${step(second)} seconds`, hour, minute);
  const sec = second === '0' ? '' : `:${second.padStart(2, '0')}`;
  if (minute === '*') return withHours(sec ? `every minute at second ${second}` : 'every minute', hour);
  if (step(minute)) return withHours(`every ${step(minute)} minutes`, hour);
  if (isNumber(minute) && isNumber(hour)) return `at ${hour.padStart(2, '0')}:${minute.padStart(2, '0')}${sec}`;
  if (isNumber(minute) && hour === '*') return `at minute ${minute}${sec ? ` second ${second}` : ''} of every hour`;
  if (isNumber(minute) && step(hour)) return `at minute ${minute} of every ${step(hour)} hours`;
  return `at minute ${minute}${sec ? ` second ${second}` : ''} of hour ${hour}`;
}

function withHours(text: string, hour: string, minute = '*'): string {
  const minutes = minute === '*' ? '' : ` of minute ${minute}`;
  if (hour === '*') return text + minutes;
  return `${text}${minutes} during hour ${hour}`;
}

function days(dom: string, dow: string): string {
  const anyDom = dom === '*' || dom === '?';
  const anyDow = dow === '*' || dow === '?';
  const dayText = anyDow
    ? ''
    : dow === '1-5' || dow.toUpperCase() === 'MON-FRI'
      ? 'on weekdays'
      : dow === '0,6' || dow === '6,0'
        ? 'on weekends'
        : `on ${dayList(dow)}`;
  const domText = anyDom ? '' : dom === 'L' ? 'on the last day of the month' : `on day ${dom} of the month`;
  if (!dayText && !domText) return 'every day';
  return [domText, dayText].filter(Boolean).join(' and ');
}

function dayList(dow: string): string {
  return dow
    .split(',')
    .map((part) =>
      part
        .split('-')
        .map((d) => (/^\d$/.test(d) ? DAY_NAMES[Number(d)]! : d))
        .join(' to '),
    )
    .join(', ');
}

function months(month: string): string {
  if (month === '*') return '';
  return `in ${month
    .split(',')
    .map((part) =>
      part
        .split('-')
        .map((m) => (/^\d+$/.test(m) ? (MONTH_NAMES[Number(m)] ?? m) : m))
        .join(' to '),
    )
    .join(', ')}`;
}
