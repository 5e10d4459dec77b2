/** "did you mean" for misspelled keys and names (Damerau-Levenshtein, at most a third of the length). */
export function suggest(input: string, candidates: Iterable<string>): string | undefined {
  candidates = [...candidates];
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = input.toLowerCase();
  for (const candidate of candidates) {
    const d = distance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.floor(input.length / 3));
  if (bestDistance <= limit) return best;
  // A name cut short or given by one of its words: DEADLINE for DEADLINE_EXCEEDED, EXHAUSTED for RESOURCE_EXHAUSTED.
  if (lower.length < 4) return undefined;
  const all = [...candidates];
  const byPrefix = all.filter((c) => c.toLowerCase().startsWith(lower));
  if (byPrefix.length === 1) return byPrefix[0];
  const byWord = all.filter((c) => c.toLowerCase().split(/[_.-]/).includes(lower));
  return byWord.length === 1 ? byWord[0] : undefined;
}

export function didYouMean(input: string, candidates: Iterable<string>): string {
  const hit = suggest(input, candidates);
  return hit ? ` (did you mean "${hit}"?)` : '';
}

function distance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({length: rows}, (_, i) => Array.from({length: cols}, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
  }
  return d[a.length]![b.length]!;
}
