// The `code` of a Node system error ('ENOENT', 'EPERM', ...), or undefined for anything else:
// one narrowing instead of a cast at every catch.
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The codes along err's `cause` chain, outermost first (undici wraps socket errors). */
export function causeCodes(err: unknown, maxDepth = 6): string[] {
  const codes: string[] = [];
  let e: unknown = err;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < maxDepth; depth++) {
    const code = errnoCode(e);
    if (code !== undefined) codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}
