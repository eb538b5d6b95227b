// Parses WWW-Authenticate (RFC 7235): one header may hold several challenges, each a scheme
// followed by comma-separated `name=value` params whose values may be quoted strings with
// backslash escapes — and Bearer scopes contain commas (`repository:a:pull,push`). Pure.

export interface Challenge {
  /** Lower case: 'basic', 'bearer', ... */
  scheme: string;
  /** Param names in lower case: realm, service, scope, error, ... */
  params: Record<string, string>;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

class Scanner {
  pos = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  skipSpace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  /** Skips white space and commas (empty list elements are allowed by RFC 7230 §7). */
  skipSeparators(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos++;
  }
  token(): string {
    const start = this.pos;
    while (!this.done && TCHAR.test(this.peek())) this.pos++;
    return this.s.slice(start, this.pos);
  }
  /** A quoted string starting at '"'; an unterminated one runs to the end. */
  quoted(): string {
    this.pos++; // opening quote
    let out = '';
    while (!this.done) {
      const c = this.s[this.pos++]!;
      if (c === '"') return out;
      if (c === '\\' && !this.done) out += this.s[this.pos++];
      else out += c;
    }
    return out;
  }
}

/** Parses one or more WWW-Authenticate header values into challenges, in order. Never throws. */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) parseOne(value, out);
  return out;
}

function parseOne(value: string, out: Challenge[]): void {
  const sc = new Scanner(value);
  let current: Challenge | undefined;
  while (true) {
    sc.skipSeparators();
    if (sc.done) return;
    const name = sc.token();
    if (name === '') {
      // Garbage: skip one character so we always make progress.
      sc.pos++;
      continue;
    }
    sc.skipSpace();
    if (sc.peek() === '=') {
      sc.pos++;
      sc.skipSpace();
      let v: string;
      if (sc.peek() === '"') v = sc.quoted();
      else {
        const vs = sc.pos;
        while (!sc.done && sc.peek() !== ',' && sc.peek() !== ' ' && sc.peek() !== '\t') sc.pos++;
        v = sc.s.slice(vs, sc.pos);
      }
      // A param before any scheme has nothing to belong to: dropped.
      if (current) current.params[name.toLowerCase()] = v;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
    // Skip a token68 credential (`Negotiate abc==`): it ends at a comma or the end.
    const t68 = /^[A-Za-z0-9\-._~+/]+=*[ \t]*(?=,|$)/.exec(sc.s.slice(sc.pos));
    if (t68) sc.pos += t68[0].length;
  }
}

/** The first challenge with this scheme ('basic', 'bearer'), if any. */
export function findChallenge(challenges: Challenge[], scheme: string): Challenge | undefined {
  return challenges.find((c) => c.scheme === scheme.toLowerCase());
}
