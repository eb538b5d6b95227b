// A strict reader of the Prometheus text exposition format (what /metrics serves and what
// node_exporter's textfile collector reads): every line is a HELP, a TYPE or a sample, every
// sample belongs to a family TYPEd before it; anything else throws.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
  /** Sum of the samples named `name` whose labels include `where`. */
  sum(name: string, where?: Record<string, string>): number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|\\+Inf|-Inf|NaN))$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    let m = new RegExp(`^# HELP (${NAME}) .*$`).exec(line);
    if (m) continue;
    m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (m) {
      if (types.has(m[1]!)) throw new Error(`family ${m[1]} TYPEd twice`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a Prometheus text line: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    if (!types.has(family)) throw new Error(`sample ${name} before its TYPE line`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined && m[2] !== '') {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < m[2].length) {
        const at = LABEL.lastIndex;
        const l = LABEL.exec(m[2]);
        if (!l || l.index !== at) throw new Error(`bad labels in ${JSON.stringify(line)}`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    samples.push({ name, labels, value: Number(m[3]) });
  }
  return {
    types,
    samples,
    sum: (name, where = {}) =>
      samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0),
  };
}
